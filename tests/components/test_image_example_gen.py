"""ImageExampleGen: pure record functions, the executor on real Beam, the component."""

import json
import os
import shutil

import pytest
from PIL import Image
import tensorflow as tf
from google.protobuf import message
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components import examples_io
from components.image_example_gen import component
from components.image_example_gen import executor
from components.image_example_gen import layout
from components.image_example_gen import records
from components.image_example_gen import spec
from components.image_example_gen import summary
from models import features
from models import image_header
from tests import data

CLASS_NAMES = ['cats', 'dogs']


def run_executor(root, out_dir, **kwargs):
    """Runs Executor.Do as the launcher would, with exec properties from the component."""
    gen = component.ImageExampleGen(str(root), kwargs.pop('class_names', CLASS_NAMES), **kwargs)
    exec_properties = {k: proto_utils.proto_to_json(v) if isinstance(v, message.Message) else v
                       for k, v in gen.exec_properties.items() if v is not None}
    examples = standard_artifacts.Examples()
    examples.uri = str(out_dir)
    executor.Executor().Do({}, {'examples': [examples]}, exec_properties)
    return examples


def read_examples(examples, split):
    uri = artifact_utils.get_split_uri([examples], split)
    files = tf.io.gfile.glob(os.path.join(uri, '*.gz'))
    out = []
    for record in tf.data.TFRecordDataset(files, compression_type='GZIP'):
        out.append(tf.train.Example.FromString(record.numpy()))
    return out


def feature(example, key):
    f = example.features.feature[key]
    return f.bytes_list.value[0] if f.HasField('bytes_list') else f.int64_list.value[0]


def report_of(examples):
    with open(os.path.join(examples.uri, spec.REPORT_FILE)) as f:
        return json.load(f)


def test_inspect_image_reads_every_format_as_rgb():
    source = data.photos('train', 'cats', 1)[0]
    width, height = Image.open(source).size
    for name, payload in data.odd_good_files(source).items():
        info = records.inspect_image(payload)
        assert (info.height, info.width) == (height, width), name
        decoded = tf.io.decode_image(payload, channels=3, expand_animations=False)
        assert decoded.shape == (height, width, 3), name
    assert records.inspect_image(data.odd_good_files(source)['grey.jpg']).channels == 1
    assert records.inspect_image(data.odd_good_files(source)['alpha.png']).channels == 4
    assert records.inspect_image(data.odd_good_files(source)['cmyk.jpg']).format == 'jpeg'


@pytest.mark.parametrize('name,reason', [
    ('truncated.jpg', 'cannot decode JPEG'),
    ('empty.jpg', 'empty file'),
    ('text.jpg', 'not a readable image'),
])
def test_inspect_image_names_the_reason(name, reason):
    payload = data.bad_files(data.photos('train', 'cats', 1)[0])[name]
    with pytest.raises(image_header.BadImageError, match=reason):
        records.inspect_image(payload)


def test_inspect_image_says_what_the_decoder_of_the_signature_found():
    png = data.encode(Image.open(data.photos('train', 'cats', 1)[0]), 'PNG')
    bad_checksum = bytearray(png)
    bad_checksum[29] ^= 0xff   # the IHDR chunk's CRC
    with pytest.raises(image_header.BadImageError) as raised:
        records.inspect_image(bytes(bad_checksum))
    assert raised.value.reason == ("PNG signature, but its decoder found: broken PNG file "
                                   "(bad header checksum in b'IHDR')")
    with pytest.raises(image_header.BadImageError) as raised:
        records.inspect_image(png[:33])   # signature and IHDR, nothing after
    assert raised.value.reason == ('PNG header with no image data after it: the file ends '
                                   'after 33 bytes')
    with pytest.raises(image_header.BadImageError) as raised:
        records.inspect_image(b'GIF89a')
    assert raised.value.reason.startswith('GIF header with no image data after it')


def test_inspect_image_refuses_too_many_pixels():
    payload = data.photos('train', 'cats', 1)[0].read_bytes()
    width, height = Image.open(data.photos('train', 'cats', 1)[0]).size
    with pytest.raises(image_header.BadImageError, match=f'too large: {width}x{height}'):
        records.inspect_image(payload, max_pixels=1000)


def test_make_example_round_trips():
    path = data.photos('train', 'dogs', 1)[0]
    payload = path.read_bytes()
    info = records.inspect_image(payload)
    example = records.make_example(payload, 'train/dogs/dog.0.jpg', 1, CLASS_NAMES, info)
    assert set(example.features.feature) == set(features.RAW_FEATURE_KEYS)
    assert feature(example, features.IMAGE_KEY) == payload
    assert feature(example, features.LABEL_KEY) == 1
    assert feature(example, features.LABEL_NAME_KEY) == b'dogs'


def test_executor_presplit_with_bad_and_odd_files(tmp_path):
    root = data.make_root(tmp_path / 'root', {'train': {'cats': 6, 'dogs': 6},
                                              'validation': {'cats': 3, 'dogs': 3}})
    source = data.photos('train', 'cats', 1)[0]
    for name, payload in data.bad_files(source).items():
        (root / 'train' / 'cats' / name).write_bytes(payload)
    for name, payload in data.odd_good_files(source).items():
        (root / 'train' / 'dogs' / name).write_bytes(payload)
    (root / 'train' / 'cats' / 'notes.txt').write_text('not an image')
    # An exact copy of a training photo in validation: leakage.
    shutil.copy(source, root / 'validation' / 'cats' / 'copy_of_cat.jpg')

    examples = run_executor(root, tmp_path / 'out', presplit=True, max_bad_fraction=0.5)

    train = read_examples(examples, 'train')
    evals = read_examples(examples, 'eval')
    assert len(train) == 6 + 6 + 6  # bad files excluded, odd formats included
    assert len(evals) == 3 + 3 + 1
    by_path = {feature(e, features.PATH_KEY).decode(): e for e in train}
    grey = by_path['train/dogs/grey.jpg']
    assert feature(grey, features.LABEL_KEY) == 1
    assert feature(grey, features.CHANNELS_KEY) == 1
    assert feature(by_path['train/dogs/palette.gif'], features.FORMAT_KEY) == b'gif'
    cat = by_path[f'train/cats/{source.name}']
    assert feature(cat, features.IMAGE_KEY) == source.read_bytes()
    assert feature(cat, features.LABEL_NAME_KEY) == b'cats'
    width, height = Image.open(source).size
    assert (feature(cat, features.HEIGHT_KEY), feature(cat, features.WIDTH_KEY)) == (height, width)

    report = report_of(examples)
    assert {b['path']: b['reason'].split(':')[0] for b in report['bad_files']} == {
        'train/cats/truncated.jpg': 'cannot decode JPEG',
        'train/cats/empty.jpg': 'empty file (0 bytes)',
        'train/cats/text.jpg': 'not a readable image (no known image format in its bytes)',
    }
    assert [i['path'] for i in report['ignored_files']] == ['train/cats/notes.txt']
    assert report['splits']['train']['by_label'] == {'cats': 6, 'dogs': 12}
    assert report['splits']['eval']['by_label'] == {'cats': 4, 'dogs': 3}
    assert report['cross_split_duplicates'] == 1
    [dup] = report['duplicates']
    assert sorted(f['path'] for f in dup['files']) == [
        f'train/cats/{source.name}', 'validation/cats/copy_of_cat.jpg']
    with open(os.path.join(examples.uri, examples_io.CLASS_NAMES_FILE)) as f:
        assert f.read().split() == CLASS_NAMES


def test_executor_hash_split_is_deterministic_and_keeps_duplicates_together(tmp_path):
    root = data.make_root(tmp_path / 'root', {'train': {'cats': 10, 'dogs': 10}},
                          presplit=False)
    source = data.photos('train', 'dogs', 1)[0]
    for i in range(3):
        shutil.copy(source, root / 'dogs' / f'copy{i}.jpg')
    first = run_executor(root, tmp_path / 'out1', presplit=False,
                         eval_fraction=0.5)
    second = run_executor(root, tmp_path / 'out2', presplit=False,
                          eval_fraction=0.5)
    paths = {}
    for split in ('train', 'eval'):
        paths[split] = sorted(feature(e, features.PATH_KEY).decode()
                              for e in read_examples(first, split))
        assert paths[split] == sorted(feature(e, features.PATH_KEY).decode()
                                      for e in read_examples(second, split))
    assert len(paths['train']) + len(paths['eval']) == 23
    assert paths['train'] and paths['eval']
    copies = {f'dogs/copy{i}.jpg' for i in range(3)} | {f'dogs/{source.name}'}
    assert copies <= set(paths['train']) or copies <= set(paths['eval'])
    report = report_of(first)
    assert report['cross_split_duplicates'] == 0
    assert len(report['duplicates']) == 1 and len(report['duplicates'][0]['files']) == 4
    assert report['splits']['train']['images'] == len(paths['train'])
    # Stratified: half of each class's distinct images in eval (copies follow their original).
    eval_dogs = report['splits']['eval']['by_label']['dogs']
    assert report['splits']['eval']['by_label']['cats'] == 5
    assert eval_dogs in (5, 8)
    # Each image is read again once placed: its Example holds the file's bytes and facts.
    for split in ('train', 'eval'):
        for example in read_examples(first, split):
            path = root / feature(example, features.PATH_KEY).decode()
            info = records.inspect_image(path.read_bytes())
            assert feature(example, features.IMAGE_KEY) == path.read_bytes()
            assert feature(example, features.SHA256_KEY).decode() == info.sha256
            assert (feature(example, features.HEIGHT_KEY),
                    feature(example, features.WIDTH_KEY)) == (info.height, info.width)
            assert feature(example, features.LABEL_NAME_KEY).decode() == path.parent.name
    # The artifact says what TFX's readers need, as the stock ExampleGen writes it.
    assert artifact_utils.decode_split_names(first.split_names) == ['train', 'eval']
    assert examples_utils.get_payload_format(first) == example_gen_pb2.FORMAT_TF_EXAMPLE
    assert examples_utils.get_file_format(first) == 'tfrecords_gzip'


def test_an_image_that_changes_between_its_two_reads_fails_the_run_by_name(tmp_path):
    photo = data.photos('train', 'cats', 1)[0]
    (tmp_path / 'cats').mkdir()
    path = tmp_path / 'cats' / 'cat.jpg'
    shutil.copy(photo, path)
    info = records.inspect_image(path.read_bytes())
    entry = {'path': 'cats/cat.jpg', 'label': 0, 'sha256': info.sha256, 'height': info.height,
             'width': info.width, 'channels': info.channels, 'format': info.format}
    read_again = executor.ReadAgainFn(str(tmp_path), CLASS_NAMES, features.MAX_FILE_BYTES,
                                      features.SYMLINKS)
    placement = layout.Placement('cats/cat.jpg', class_name='cats')
    [(name, _, example)] = read_again.process(('eval', entry, placement))
    assert name == 'eval' and feature(example, features.IMAGE_KEY) == photo.read_bytes()
    path.write_bytes(data.photos('train', 'cats', 2)[1].read_bytes())
    with pytest.raises(records.ChangedFileError, match='cats/cat.jpg changed'):
        list(read_again.process(('eval', entry, placement)))
    # Replaced by a pipe or grown past the limit since it was checked: the same error.
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(records.ChangedFileError, match='cats/cat.jpg changed .*named pipe'):
        list(read_again.process(('eval', entry, placement)))


def test_executor_accounts_for_every_file_of_a_messy_root(tmp_path):
    root = tmp_path / 'root'
    expected = data.make_any_root(root, per_class=6)
    class_names = list(data.ANY_CLASS_NAMES)
    assert list(layout.inspect_data_root(str(root)).class_names) == class_names

    examples = run_executor(root, tmp_path / 'out', presplit=False, class_names=class_names,
                            max_bad_fraction=0.5)

    written = {}
    for split_name in ('train', 'eval'):
        for example in read_examples(examples, split_name):
            path = feature(example, features.PATH_KEY).decode()
            assert feature(example, features.IMAGE_KEY) == (root / path).read_bytes()
            written[path] = class_names[feature(example, features.LABEL_KEY)]
    assert written == expected['images']
    report = report_of(examples)
    assert {b['path'] for b in report['bad_files']} == set(expected['bad'])
    assert {i['path']: i['reason'][:len(expected['ignored'][i['path']])]
            for i in report['ignored_files']} == expected['ignored']
    on_disk = sum(len(files) for _, _, files in os.walk(root))
    assert report['files'] == on_disk == sum(len(v) for v in expected.values())
    assert report['images'] + len(report['bad_files']) + len(report['ignored_files']) == on_disk
    assert report['splits']['eval']['by_label'] == {label: 1 for label in class_names}


def test_executor_presplit_reads_nested_folders_and_a_test_folder(tmp_path):
    root = data.make_root(tmp_path / 'root', {'train': {'cats': 2, 'dogs': 2},
                                              'validation': {'cats': 1, 'dogs': 1}})
    extra = data.photos('train', 'dogs', 2, offset=10)
    (root / 'train' / 'dogs' / 'more' / 'deeper').mkdir(parents=True)
    shutil.copy(extra[0], root / 'train' / 'dogs' / 'more' / 'deeper' / 'X.JPEG')
    (root / 'test' / 'cats' / 'album').mkdir(parents=True)
    shutil.copy(extra[1], root / 'test' / 'cats' / 'album' / 'held_out.jpg')
    (root / 'test' / 'horses').mkdir()
    shutil.copy(extra[1], root / 'test' / 'horses' / 'h.jpg')
    (root / 'extra').mkdir()
    (root / 'extra' / 'e.jpg').write_bytes(b'x')
    found = layout.inspect_data_root(str(root))
    assert (found.presplit, found.test_folder, found.class_names) == (True, True, ('cats', 'dogs'))

    examples = run_executor(root, tmp_path / 'out', presplit=True, test_folder=True)
    train_paths = {feature(e, features.PATH_KEY).decode() for e in read_examples(examples, 'train')}
    assert 'train/dogs/more/deeper/X.JPEG' in train_paths and len(train_paths) == 5
    assert [feature(e, features.PATH_KEY).decode() for e in read_examples(examples, 'test')] == [
        'test/cats/album/held_out.jpg']
    report = report_of(examples)
    assert report['ignored_files'] == [
        {'path': 'extra/e.jpg', 'reason': 'outside train/, validation/ and test/'},
        {'path': 'test/horses/h.jpg', 'reason': 'folder horses/ is not one of the classes'}]
    assert report['splits']['test']['by_label'] == {'cats': 1, 'dogs': 0}
    assert report['files'] == 10


def test_executor_hash_split_holds_out_a_test_share_per_class(tmp_path):
    root = data.make_root(tmp_path / 'root', {'train': {'cats': 10, 'dogs': 10}},
                          presplit=False)
    examples = run_executor(root, tmp_path / 'out', presplit=False, eval_fraction=0.2,
                            test_fraction=0.3)
    report = report_of(examples)
    assert {split: counts['by_label'] for split, counts in report['splits'].items()} == {
        'train': {'cats': 5, 'dogs': 5}, 'eval': {'cats': 2, 'dogs': 2},
        'test': {'cats': 3, 'dogs': 3}}
    paths = [{feature(e, features.PATH_KEY).decode() for e in read_examples(examples, split)}
             for split in ('train', 'eval', 'test')]
    assert sum(map(len, paths)) == 20 and len(set.union(*paths)) == 20


def test_executor_fails_when_too_many_files_are_bad_and_keeps_the_report(tmp_path):
    root = data.make_root(tmp_path / 'root', {'train': {'cats': 2, 'dogs': 2},
                                              'validation': {'cats': 1, 'dogs': 1}})
    for name, payload in data.bad_files(data.photos('train', 'cats', 1)[0]).items():
        (root / 'train' / 'dogs' / name).write_bytes(payload)
    out = tmp_path / 'pipeline' / 'ImageExampleGen' / 'examples' / '7'
    with pytest.raises(RuntimeError, match=r'3 of 9 image files \(33.3%\) cannot be read, '
                       r'more than max_bad_fraction 10.0%: train/dogs/empty.jpg: empty') as err:
        run_executor(root, out, presplit=True, max_bad_fraction=0.1)
    kept = tmp_path / 'pipeline' / 'ImageExampleGen' / 'failed_runs' / '7' / spec.REPORT_FILE
    assert str(kept) in str(err.value)
    assert len(json.loads(kept.read_text())['bad_files']) == 3


def test_a_photo_filed_under_two_classes_warns_or_stops_the_run(tmp_path):
    root = data.make_root(tmp_path / 'root', {'train': {'cats': 3, 'dogs': 3}},
                          presplit=False)
    photo = data.photos('train', 'cats', 1)[0]
    shutil.copy(photo, root / 'dogs' / 'not a dog.jpg')
    report = report_of(run_executor(root, tmp_path / 'warned', presplit=False))
    assert report['cross_class_duplicates'] == 1 and report['images'] == 7
    [warning] = [line for line in summary.console_lines(report, 'r.json')
                 if line.startswith('warning:')]
    assert f'cats/{photo.name} = dogs/not a dog.jpg' in warning
    out = tmp_path / 'pipeline' / 'ImageExampleGen' / 'examples' / '3'
    with pytest.raises(RuntimeError, match=(
            r'^1 image is filed under more than one class \(conflicting labels, '
            r'stop_on_conflicting_labels is on\): cats/cat.0.jpg = dogs/not a dog.jpg; ')):
        run_executor(root, out, presplit=False, stop_on_conflicting_labels=True)


def test_the_console_names_few_bad_files_and_counts_many():
    entries = [{'path': f'cats/{i}.jpg', 'status': summary.BAD, 'reason': 'empty file (0 bytes)',
                'label_name': 'cats', 'split_dir': None} for i in range(summary.CONSOLE_LIMIT + 2)]
    entries += [{'path': 'cats/ok.jpg', 'status': summary.OK, 'split': 'train',
                 'label_name': 'cats'}]

    def lines(count):
        return summary.console_lines(summary.summarize(
            entries[-1 - count:], [], CLASS_NAMES, ['train', 'eval'], max_bad_fraction=1.0,
            hash_split=True), 'report.json')

    assert lines(0) == ['data: 1 files = 1 images used + 0 bad + 0 ignored; train 1, eval 0']
    assert lines(2)[1:] == ['bad: cats/5.jpg: empty file (0 bytes)',
                            'bad: cats/6.jpg: empty file (0 bytes)']
    many = lines(summary.CONSOLE_LIMIT + 2)
    assert len(many) == summary.CONSOLE_LIMIT + 2
    assert many[-1] == 'bad: ... and 2 more, all listed in report.json'


def test_executor_fails_when_a_class_has_no_image_in_a_split_and_keeps_the_report(tmp_path):
    # One photo of a class cannot be both trained and evaluated on: stopped here, by name,
    # not later by a component that finds a label missing from the statistics.
    root = data.make_root(tmp_path / 'root', {'train': {'cats': 5, 'dogs': 1}}, presplit=False)
    out = tmp_path / 'pipeline' / 'ImageExampleGen' / 'examples' / '3'
    with pytest.raises(RuntimeError, match=r'the eval split has no image of class dogs \(images '
                       r'in all splits: dogs: 1\): the model cannot be evaluated on it; a class '
                       r'needs at least 2 distinct images to have one in each split \(3 with a '
                       r'test split\); add images of it; report: ') as err:
        run_executor(root, out, presplit=False, eval_fraction=0.2)
    kept = tmp_path / 'pipeline' / 'ImageExampleGen' / 'failed_runs' / '3' / spec.REPORT_FILE
    assert str(kept) in str(err.value)
    assert json.loads(kept.read_text())['splits']['train']['by_label'] == {'cats': 4, 'dogs': 1}
    # Pre-split: validation/dogs/ holds only a file that is no image.
    root = data.make_root(tmp_path / 'split', {'train': {'cats': 2, 'dogs': 2},
                                               'validation': {'cats': 1}})
    (root / 'validation' / 'dogs').mkdir()
    (root / 'validation' / 'dogs' / 'dog.jpg').write_bytes(b'not an image')
    with pytest.raises(RuntimeError, match='the eval split has no image of class dogs .*; add '
                       'images of it to that split folder; report: '):
        run_executor(root, tmp_path / 'out2', presplit=True, max_bad_fraction=1.0)


def test_a_link_to_nothing_is_a_bad_file_with_the_reason(tmp_path):
    root = data.make_root(tmp_path / 'root', {'train': {'cats': 2, 'dogs': 2},
                                              'validation': {'cats': 1, 'dogs': 1}})
    (root / 'train' / 'dogs' / 'moved.jpg').symlink_to(tmp_path / 'gone.jpg')
    report = report_of(run_executor(root, tmp_path / 'out', presplit=True, max_bad_fraction=0.5))
    assert [b['path'] for b in report['bad_files']] == ['train/dogs/moved.jpg']
    assert report['bad_files'][0]['reason'] == (
        'no such file (a link to nothing, or removed while the run read the folder) '
        f'(a link to {tmp_path / "gone.jpg"})')
    assert report['images'] == 6


def test_executor_reads_through_tf_gfile(tmp_path):
    """ram:// is TF's in-memory filesystem: reading it proves no local-disk assumption."""
    ram_root = 'ram://image_gen_test_root'
    for split, label, count in [('train', 'cats', 3), ('train', 'dogs', 3),
                                ('validation', 'cats', 1), ('validation', 'dogs', 1)]:
        tf.io.gfile.makedirs(f'{ram_root}/{split}/{label}')
        for src in data.photos(split, label, count):
            with tf.io.gfile.GFile(f'{ram_root}/{split}/{label}/{src.name}', 'wb') as f:
                f.write(src.read_bytes())
    assert layout.inspect_data_root(ram_root).class_names == ('cats', 'dogs')
    examples = run_executor(ram_root, tmp_path / 'out', presplit=True)
    assert len(read_examples(examples, 'train')) == 6
    assert len(read_examples(examples, 'eval')) == 2


def test_component_rejects_bad_arguments():
    with pytest.raises(ValueError, match='at least two distinct'):
        component.ImageExampleGen('/data', ['cats'], presplit=True)
    with pytest.raises(ValueError, match='max_bad_fraction'):
        component.ImageExampleGen('/data', CLASS_NAMES, presplit=True, max_bad_fraction=2)
    with pytest.raises(ValueError, match='eval_fraction must be in'):
        component.ImageExampleGen('/data', CLASS_NAMES, presplit=False, eval_fraction=0.0)
    with pytest.raises(ValueError, match='their sum below 1'):
        component.ImageExampleGen('/data', CLASS_NAMES, presplit=False, eval_fraction=0.5,
                                  test_fraction=0.5)
    with pytest.raises(ValueError, match='test_fraction applies only'):
        component.ImageExampleGen('/data', CLASS_NAMES, presplit=True, test_fraction=0.1)


def test_classes_named_like_split_folders_are_classes(tmp_path):
    # bus/, train/ (with images directly in it) and test/: three classes, split by hash.
    photos = data.photos('train', 'cats', 6) + data.photos('train', 'dogs', 6)
    names = {'bus': photos[:4], 'train': photos[4:8], 'test': photos[8:]}
    for name, chosen in names.items():
        (tmp_path / 'root' / name / 'more').mkdir(parents=True)
        for i, photo in enumerate(chosen):
            shutil.copy(photo, tmp_path / 'root' / name / ('more' if i % 2 else '') / photo.name)
    root = layout.inspect_data_root(str(tmp_path / 'root'))
    assert (root.presplit, root.class_names, root.images) == (False, ('bus', 'test', 'train'), 12)

    examples = run_executor(tmp_path / 'root', tmp_path / 'out', presplit=False,
                            class_names=list(root.class_names), eval_fraction=0.5)
    report = report_of(examples)
    assert report['images'] == 12 and not report['ignored_files'] and not report['bad_files']
    by_label = [report['splits'][s]['by_label'] for s in ('train', 'eval')]
    assert [sum(split.get(c, 0) for split in by_label) for c in root.class_names] == [4, 4, 4]


@pytest.mark.parametrize('make,message', [
    (lambda p: p / 'missing', 'does not exist'),
    (lambda p: p, 'has no class folders'),
    (lambda p: (p / 'cats').mkdir() or (p / 'cats' / 'a.jpg').write_bytes(b'x') and p,
     'only one class folder'),
    (lambda p: (p / 'train' / 'cats').mkdir(parents=True) or p, 'has train/ but no validation/'),
    # train/ beside another folder, but only sub-folders in it: a split folder or a class?
    (lambda p: (p / 'train' / 'cats').mkdir(parents=True) or (p / 'bus').mkdir() or p,
     r'if train/ is a class of its own'),
    (lambda p: (p / 'cats').mkdir() or (p / 'dogs').mkdir() or
     (p / 'cats' / 'a.jpg').write_bytes(b'x') and p, r'class folder .*dogs is missing or has no'),
])
def test_inspect_data_root_errors(tmp_path, make, message):
    root = make(tmp_path)
    with pytest.raises(layout.DataRootError, match=message):
        layout.inspect_data_root(str(root if root else tmp_path))
