"""A hostile data root (tests/hostile.py) through ImageExampleGen: every entry is
ingested, bad with the reason or ignored with the reason; nothing hangs, stops the
run or takes the memory. The ingestion runs in a subprocess as an unprivileged user,
so "permission denied" is real, and its peak memory is measured."""

import json
import os
import sys

import pytest
import tensorflow as tf
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components.bulk_inferrer import spec as bulk_spec
from components.image_example_gen import driver
from components.image_example_gen import files
from components.image_example_gen import layout
from components.image_example_gen import spec
from components.image_example_gen import summary
from models import features
from tests import hostile
from tests.components.test_image_example_gen import feature, read_examples

PER_CLASS = 8
MAX_PEAK_BYTES = 3_000_000_000


@pytest.fixture(scope='module')
def ingested():
    """(HostileRoot, examples folder, peak resident bytes of the ingestion)."""
    with hostile.world_readable_dir() as base:
        made = hostile.make_hostile_root(base, PER_CLASS)
        out = hostile.writable_by_unprivileged(base / 'out')
        code, output, peak = hostile.run_unprivileged(
            base, [sys.executable, '-m', 'tests.hostile', 'ingest', str(made.root),
                   str(out / 'examples')], timeout=900)
        assert code == 0, output[-5000:]
        yield made, out / 'examples', peak


def manifest(examples_dir):
    entries = {}
    for path in tf.io.gfile.glob(str(examples_dir / spec.MANIFEST_DIR / 'files*.jsonl')):
        with open(path, encoding='utf-8') as f:
            for line in f:
                entry = json.loads(line)
                assert entry['path'] not in entries, entry
                entries[entry['path']] = entry
    return entries


def report(examples_dir):
    with open(examples_dir / spec.REPORT_FILE, encoding='utf-8') as f:
        return json.load(f)


def test_every_entry_is_ingested_bad_or_ignored_with_the_reason(ingested):
    made, examples_dir, _ = ingested
    entries = manifest(examples_dir)
    assert sorted(entries) == sorted(made.expected)
    found = {path: (entry['status'], entry['reason'] or '') for path, entry in entries.items()}
    assert {path: (status, reason[:len(made.expected[path][1])])
            for path, (status, reason) in found.items()} == made.expected
    image_report = report(examples_dir)
    counts = {status: sum(1 for s, _ in made.expected.values() if s == status)
              for status in (hostile.OK, hostile.BAD, hostile.IGNORED)}
    assert (image_report['files'], image_report['images'], len(image_report['bad_files']),
            len(image_report['ignored_files'])) == (
        len(made.expected), counts[hostile.OK], counts[hostile.BAD], counts[hostile.IGNORED])
    assert {b['path'] for b in image_report['bad_files']} == {
        path for path, (status, _) in made.expected.items() if status == hostile.BAD}


def test_the_examples_hold_the_bytes_of_the_photos_at_odd_paths(ingested):
    made, examples_dir, _ = ingested
    examples = standard_artifacts.Examples()
    examples.uri = str(examples_dir)
    examples.split_names = artifact_utils.encode_split_names(
        [features.TRAIN_SPLIT, features.EVAL_SPLIT])
    written = {}
    for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT):
        for example in read_examples(examples, split):
            written[feature(example, features.PATH_KEY).decode()] = feature(
                example, features.IMAGE_KEY)
    assert sorted(written) == sorted(path for path, (status, _) in made.expected.items()
                                     if status == hostile.OK)
    # Beyond PATH_MAX, through a link out of the root, and with bytes that are not UTF-8.
    deep = files.read_file(str(made.root), hostile.DEEP, features.MAX_FILE_BYTES)
    assert written[hostile.DEEP] == deep
    assert written['dogs/linked.jpg'] == (made.outside / 'linked photo.jpg').read_bytes()
    assert written['dogs/bad\\xff\\xfe\\x80name.jpg'] == (
        made.root / os.fsdecode(b'dogs/bad\xff\xfe\x80name.jpg')).read_bytes()


def test_links_out_of_the_root_are_named_in_the_report(ingested):
    made, examples_dir, _ = ingested
    links = {link['link']: link for link in report(examples_dir)['links']}
    assert {path: (link['target'], link['outside_root'], link['images'])
            for path, link in links.items() if link['outside_root']} == {
        'dogs/linked.jpg': (made.links['dogs/linked.jpg'], True, 1),
        'dogs/album': (made.links['dogs/album'], True, 3),
        'cats/zero.jpg': ('/dev/zero', True, 0),
        'dogs/gone.jpg': (str(made.root.parent / 'nowhere.jpg'), True, 0)}
    assert (links['cats/loop']['outside_root'], links['cats/loop']['images']) == (False, 0)


def test_the_console_names_bad_files_and_warns_of_conflicting_labels(ingested):
    made, examples_dir, _ = ingested
    image_report = report(examples_dir)
    report_path = str(examples_dir / spec.REPORT_FILE)
    lines = summary.console_lines(image_report, report_path)
    bad = image_report['bad_files']
    assert lines[1:summary.CONSOLE_LIMIT + 2] == [
        *[f"bad: {b['path']}: {b['reason']}" for b in bad[:summary.CONSOLE_LIMIT]],
        f'bad: ... and {len(bad) - summary.CONSOLE_LIMIT} more, all listed in {report_path}']
    warning = [line for line in lines if line.startswith('warning: ')]
    assert warning == [
        f'warning: 1 image is filed under more than one class (conflicting labels) and '
        f'trained under each: {" = ".join(made.conflicting)}; keep each in one class folder, '
        'or stop such runs with stop_on_conflicting_labels (--stop-on-conflicting-labels)']
    assert lines[-1] == ('4 images came through 2 symbolic links out of the data root: '
                         f"dogs/album -> {made.links['dogs/album']}, "
                         f"dogs/linked.jpg -> {made.links['dogs/linked.jpg']}")


def test_ingestion_peak_memory_stays_under_3_gb(ingested):
    _, _, peak = ingested
    # The 2.1 GB file is refused by its size, never read.
    assert 0 < peak < MAX_PEAK_BYTES, peak


def test_the_runner_check_and_the_fingerprint_take_the_hostile_root(ingested):
    made, _, _ = ingested
    checked = layout.inspect_data_root(str(made.root))
    assert (checked.presplit, checked.class_names) == (False, hostile.CLASS_NAMES)
    fingerprint = driver.tree_fingerprint(str(made.root))
    assert fingerprint == driver.tree_fingerprint(str(made.root))
    # One line per entry (as root the locked folder's photo stands for the folder).
    assert fingerprint.startswith(f'files:{len(made.expected)},')


def make_links(tmp_path):
    root, outside = tmp_path / 'root', tmp_path / 'outside'
    for folder in (root / 'cats', root / 'dogs', outside / 'album'):
        folder.mkdir(parents=True)
    for path in (root / 'cats' / 'a.jpg', root / 'dogs' / 'b.jpg', outside / 'o.jpg',
                 outside / 'album' / 'p.jpg'):
        path.write_bytes(b'x')
    (root / 'cats' / 'inside.jpg').symlink_to(root / 'dogs' / 'b.jpg')
    (root / 'cats' / 'dogs too').symlink_to('../dogs')
    (root / 'cats' / 'out.jpg').symlink_to(outside / 'o.jpg')
    (root / 'cats' / 'album').symlink_to(outside / 'album')
    return str(root)


@pytest.mark.parametrize('symlinks,expected', [
    (features.SYMLINKS, {
        'cats/a.jpg': None, 'cats/album/p.jpg': None, 'cats/dogs too/b.jpg': None,
        'cats/inside.jpg': None, 'cats/out.jpg': None, 'dogs/b.jpg': None}),
    ('inside', {
        'cats/a.jpg': None, 'cats/album': 'symbolic link out of the data root (to ',
        'cats/dogs too/b.jpg': None, 'cats/inside.jpg': None,
        'cats/out.jpg': 'symbolic link out of the data root (to ', 'dogs/b.jpg': None}),
    ('none', {
        'cats/a.jpg': None, 'cats/album': 'symbolic link (to ',
        'cats/dogs too': 'symbolic link (to ../dogs): not followed (symlinks: none)',
        'cats/inside.jpg': 'symbolic link (to ', 'cats/out.jpg': 'symbolic link (to ',
        'dogs/b.jpg': None}),
])
def test_each_link_policy_lists_what_it_follows_and_ignores_the_rest(tmp_path, symlinks,
                                                                     expected):
    root = make_links(tmp_path)
    listed = files.list_files(root, symlinks)
    assert {entry.path: entry.ignored and entry.ignored[:len(expected[entry.path] or '')]
            for entry in listed} == expected
    for entry in listed:
        if entry.ignored is None:
            assert files.read_file(root, entry.path, 10, follow=symlinks != 'none') == b'x'


def test_a_link_is_not_read_when_links_are_not_followed(tmp_path):
    root = make_links(tmp_path)
    with pytest.raises(OSError) as raised:
        files.read_file(root, 'cats/out.jpg', 10, follow=False)
    assert files.reason_of(raised.value) == 'symbolic link, not a regular file'


def test_no_more_than_the_limit_is_read(tmp_path):
    (tmp_path / 'a.jpg').write_bytes(b'x' * 100)
    assert files.read_file(str(tmp_path), 'a.jpg', 100) == b'x' * 100
    with pytest.raises(files.UnreadableError, match='file too large: 100 bytes > '
                                                    'max_file_bytes 99'):
        files.read_file(str(tmp_path), 'a.jpg', 99)
    # Through tf.io.gfile (gs:// works the same): the size is checked before reading.
    tf.io.gfile.makedirs('ram://limit')
    with tf.io.gfile.GFile('ram://limit/a.jpg', 'wb') as f:
        f.write(b'x' * 100)
    assert files.read_file('ram://limit', 'a.jpg', 100) == b'x' * 100
    with pytest.raises(files.UnreadableError, match='file too large: 100 bytes'):
        files.read_file('ram://limit', 'a.jpg', 99)


def test_the_runner_check_names_a_root_or_class_folder_it_cannot_list():
    with hostile.world_readable_dir() as base:
        root = base / 'root'
        for name in ('cats', 'dogs'):
            (root / name).mkdir(parents=True)
            (root / name / 'a.jpg').write_bytes(b'x')
        (root / 'dogs').chmod(0)
        script = ('import sys; from components.image_example_gen import layout\n'
                  'try:\n    layout.inspect_data_root(sys.argv[1])\n'
                  'except layout.DataRootError as e:\n    print(e)\n')
        command = [sys.executable, '-c', script, str(root)]
        _, output, _ = hostile.run_unprivileged(base, command, 300)
        assert output.splitlines()[-1] == (
            f'folder {root}/dogs: cannot list folder: permission denied')
        (root / 'dogs').chmod(0o755)
        root.chmod(0)
        _, output, _ = hostile.run_unprivileged(base, command, 300)
        assert output.splitlines()[-1] == (
            f'data root {root}: cannot list folder: permission denied')


def test_the_runner_flags_reach_imageexamplegen_and_the_bulkinferrer():
    import local_runner  # pylint: disable=import-outside-toplevel
    from pipeline import cli  # pylint: disable=import-outside-toplevel
    from pipeline import configs  # pylint: disable=import-outside-toplevel
    from pipeline import pipeline as pipeline_def  # pylint: disable=import-outside-toplevel
    args = local_runner.parse_args(['--symlinks', 'inside', '--max-file-bytes', '1000',
                                    '--stop-on-conflicting-labels',
                                    '--bulk-inference-images', '/photos'])
    config = configs.local('/work', '/data', **cli.run_overrides(args))
    stages = {c.id: c for c in pipeline_def.create_pipeline(config).components}
    assert {key: stages['ImageExampleGen'].exec_properties[key] for key in (
        spec.SYMLINKS_KEY, spec.MAX_FILE_BYTES_KEY, spec.STOP_ON_CONFLICTING_LABELS_KEY)} == {
        spec.SYMLINKS_KEY: 'inside', spec.MAX_FILE_BYTES_KEY: 1000,
        spec.STOP_ON_CONFLICTING_LABELS_KEY: 1}
    # One reader, one set of settings: the folder to score is read as the data root.
    assert {key: stages['BulkInferrer'].exec_properties[key] for key in (
        bulk_spec.SYMLINKS_KEY, bulk_spec.MAX_FILE_BYTES_KEY, bulk_spec.MAX_PIXELS_KEY)} == {
        bulk_spec.SYMLINKS_KEY: 'inside', bulk_spec.MAX_FILE_BYTES_KEY: 1000,
        bulk_spec.MAX_PIXELS_KEY: features.MAX_PIXELS}
    defaults = configs.local('/work', '/data').ingest
    assert (defaults.symlinks, defaults.max_file_bytes, defaults.stop_on_conflicting_labels) == (
        'follow', 50_000_000, False)
    with pytest.raises(ValueError, match='symlinks must be one of'):
        configs.local('/work', '/data', symlinks='always')
