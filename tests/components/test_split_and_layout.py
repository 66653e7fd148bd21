"""Pure parts of ImageExampleGen: where each file goes, and the stratified content-hash split."""

import collections
import dataclasses
import hashlib
import os
import random
import time
import types

import pytest

from components.image_example_gen import driver
from components.image_example_gen import files as files_lib
from components.image_example_gen import layout
from components.image_example_gen import split
from models import features

NAMES = (features.TRAIN_SPLIT, features.EVAL_SPLIT)
CLASS_NAMES = ('Chats domestiques', 'dogs', 'Été')


def sha(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


@pytest.mark.parametrize('path,presplit,expected', [
    ('dogs/a.jpg', False, ('dogs', None)),
    ('dogs/2019/phone export/B.JPG', False, ('dogs', None)),
    ('Été/x.Jpeg', False, ('Été', None)),
    ('Chats domestiques/deep/er/c.PNG', False, ('Chats domestiques', None)),
    ('README.md', False, (None, 'not inside a class folder')),
    ('dogs/notes.txt', False, ('dogs', 'not an image file name')),
    ('dogs/.DS_Store', False, (None, 'hidden file')),
    ('dogs/.thumbs/a.jpg', False, (None, 'inside hidden or system folder .thumbs/')),
    ('__MACOSX/dogs/._a.jpg', False, (None, 'inside hidden or system folder __MACOSX/')),
    ('horses/a.jpg', False, (None, 'folder horses/ is not one of the classes')),
    ('train/dogs/sub/a.jpg', True, ('dogs', None)),
    ('validation/Été/a.gif', True, ('Été', None)),
    ('test/dogs/a.jpg', True, (None, 'outside train/ and validation/')),  # no test split
    ('labels.csv', True, (None, 'outside train/ and validation/')),
    ('train/a.jpg', True, (None, 'not inside a class folder')),
])
def test_place_accounts_for_every_kind_of_file(path, presplit, expected):
    split_dirs = layout.SPLIT_DIRS if presplit else None
    placement = layout.place(path, split_dirs=split_dirs, class_names=CLASS_NAMES)
    label, reason = expected
    assert placement.path == path
    if reason is None:
        assert (placement.class_name, placement.ignored) == (label, None)
    else:
        assert placement.ignored.startswith(reason)
    if presplit and placement.ignored is None:
        assert placement.split_dir == path.split('/')[0]


def test_list_files_and_inspect_read_nested_folders(tmp_path):
    files = ['b/x.JPG', 'b/2019/deep/y.jpeg', 'a b/z.png', 'a b/.hidden.jpg', 'top.txt',
             '__MACOSX/b/._x.jpg']
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b'x')
    assert [entry.path for entry in files_lib.list_files(str(tmp_path))] == sorted(files)
    root = layout.inspect_data_root(str(tmp_path))
    assert (root.presplit, root.class_names, root.images) == (False, ('a b', 'b'), 3)


@pytest.mark.parametrize('presplit', [False, True])
def test_inspect_counts_only_up_to_its_limit_but_checks_every_class(tmp_path, presplit):
    splits = ['train/', 'validation/', 'test/'] if presplit else ['']
    for split in splits:
        for i in range(30):
            for name in (f'{split}cats/{i}.jpg', f'{split}dogs/sub/{i}.png'):
                (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / name).write_bytes(b'x')
    everything = layout.inspect_data_root(str(tmp_path))
    assert everything.images == 60 * len(splits)
    assert everything.test_folder == presplit
    counted = layout.inspect_data_root(str(tmp_path), count_up_to=7)
    assert counted.images == 7
    assert counted == dataclasses.replace(everything, images=7)
    # A class folder without images is still found, however early counting stopped.
    (tmp_path / splits[0] / 'birds' / 'deep').mkdir(parents=True)
    (tmp_path / splits[0] / 'birds' / 'deep' / '.hidden.jpg').write_bytes(b'x')
    with pytest.raises(layout.DataRootError, match='birds is missing or has no image files'):
        layout.inspect_data_root(str(tmp_path), count_up_to=7)


def test_a_class_with_images_only_in_sub_folders_is_a_class(tmp_path):
    for name in ['cats/2019/a.jpg', 'dogs/phone export/b.jpg', 'birds/notes.txt']:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b'x')
    with pytest.raises(layout.DataRootError, match=r'birds is missing or has no image files at'):
        layout.inspect_data_root(str(tmp_path))
    (tmp_path / 'birds' / 'nested').mkdir()
    (tmp_path / 'birds' / 'nested' / 'c.GIF').write_bytes(b'x')
    assert layout.inspect_data_root(str(tmp_path)).class_names == ('birds', 'cats', 'dogs')


def test_a_class_of_photos_tensorflow_cannot_decode_says_what_it_holds(tmp_path):
    names = ['cats/a.jpg', 'dogs/a.jpg', 'birds/IMG_1.HEIC', 'birds/2019/b.webp',
             'birds/2019/c.webp', 'birds/notes.txt']
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b'x')
    with pytest.raises(layout.DataRootError) as raised:
        layout.inspect_data_root(str(tmp_path))
    assert str(raised.value).endswith(
        '/birds is missing or has no image files at any depth (.jpg, .jpeg, .png, .bmp, .gif); '
        'it holds 4 other files (2 .webp, 1 .heic, 1 .txt); .heic, .webp photos are not read '
        '(TensorFlow decodes .jpg, .jpeg, .png, .bmp, .gif): convert them, e.g. to .jpg')
    # Beside images, each such photo is ignored with that reason (the data report lists it).
    placed = layout.place('birds/2019/b.webp', split_dirs=None,
                           class_names=['birds', 'cats', 'dogs'])
    assert placed.class_name == 'birds' and placed.ignored.startswith(
        '.webp photos are not read (TensorFlow decodes')
    assert layout.place('birds/notes.txt', split_dirs=None, class_names=['birds']).ignored.startswith(
        'not an image file name')


@pytest.mark.parametrize('folders, renames, classes', [
    (('train', 'val'), 'rename val/ to validation/', ('train', 'val')),
    (('training', 'validation'), 'rename training/ to train/', ('training', 'validation')),
    (('Train', 'Test'), 'rename Test/ to test/, Train/ to train/', ('Test', 'Train')),
    # Pre-split by train/ and validation/: testing/ with images is outside the splits.
    (('train', 'validation', 'testing'), 'rename testing/ to test/', ('cats', 'dogs')),
])
def test_split_folders_named_as_other_tools_name_them_are_renamed_not_learnt(
        tmp_path, folders, renames, classes):
    # Train/ and Test/ holding cats/ and dogs/ must not become a Train-vs-Test classifier.
    for folder in folders:
        for name in (f'{folder}/cats/a.jpg', f'{folder}/dogs/sub/b.png'):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(b'x')
    with pytest.raises(layout.DataRootError, match='named like (a split folder|split folders) '
                       r'but not as this pipeline reads them \(train/, validation/ and '
                       rf'optionally test/, in lower case\): {renames}; or, if they are classes'):
        layout.inspect_data_root(str(tmp_path))
    # A class that happens to be called so holds images itself.
    for folder in folders:
        (tmp_path / folder / 'c.jpg').write_bytes(b'x')
    assert layout.inspect_data_root(str(tmp_path)).class_names == classes


def test_a_folder_wrapping_the_class_folders_is_named_as_the_root_to_use(tmp_path):
    for name in ('photos/cats/a.jpg', 'photos/dogs/b.jpg', 'photos/birds/deep/c.jpg'):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b'x')
    with pytest.raises(layout.DataRootError) as raised:
        layout.inspect_data_root(str(tmp_path))
    assert str(raised.value) == (
        f'data root {tmp_path} has only one class folder (photos); a classifier needs at least '
        f'two; its sub-folders (birds, cats, dogs) look like the classes: use '
        f'{tmp_path}/photos as the data root')
    assert layout.inspect_data_root(str(tmp_path / 'photos')).class_names == (
        'birds', 'cats', 'dogs')


def test_fingerprint_sees_a_change_at_any_depth(tmp_path):
    deep = tmp_path / 'dogs' / 'a' / 'b' / 'c.jpg'
    deep.parent.mkdir(parents=True)
    deep.write_bytes(b'one')
    before = driver.tree_fingerprint(str(tmp_path))
    assert before == driver.tree_fingerprint(str(tmp_path))
    deep.write_bytes(b'two')  # same size, new content
    os.utime(deep, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    changed = driver.tree_fingerprint(str(tmp_path))
    assert changed != before
    (deep.parent / 'd.jpg').write_bytes(b'x')
    added = driver.tree_fingerprint(str(tmp_path))
    assert added not in (before, changed)
    # A link to nothing is listed but cannot be stat'ed: fingerprinted as such (the
    # executor reports it as bad), not a failed run.
    (deep.parent / 'broken.jpg').symlink_to(tmp_path / 'nowhere.jpg')
    dangling = driver.tree_fingerprint(str(tmp_path))
    assert dangling.startswith('files:3,total_bytes:4,') and dangling != added


@pytest.mark.parametrize('n,fraction,expected', [
    (0, 0.2, 0), (1, 0.2, 0), (2, 0.2, 1), (3, 0.2, 1), (10, 0.2, 2), (12, 0.2, 2),
    (13, 0.2, 3), (100, 0.5, 50), (2, 0.9, 1)])
def test_eval_count(n, fraction, expected):
    assert split.eval_count(n, fraction) == expected


@pytest.mark.parametrize('per_class', [(10, 10), (7, 23, 100), (1000, 1000, 5, 2)])
def test_split_is_stratified_and_deterministic(per_class):
    images = [(sha(f'{label}-{i}'), label) for label, n in enumerate(per_class) for i in range(n)]
    first = split.assign(images, 0.2, NAMES)
    shuffled = list(images)
    random.Random(1).shuffle(shuffled)
    assert split.assign(shuffled, 0.2, NAMES) == first
    counts = collections.Counter((first[s], label) for s, label in images)
    for label, n in enumerate(per_class):
        assert counts[NAMES[1], label] == split.eval_count(n, 0.2)
        assert counts[NAMES[0], label] == n - split.eval_count(n, 0.2)


def test_identical_images_share_a_split_even_across_classes():
    images = [(sha(i), i % 2) for i in range(40)]
    images += [(sha(3), 1), (sha(3), 0), (sha(4), 0)]  # copies, one of them in another class
    assigned = split.assign(images, 0.3, NAMES)
    assert len(assigned) == 40  # one decision per content


def test_adding_one_image_moves_at_most_one_other():
    images = [(sha(i), 0) for i in range(200)]
    before = split.assign(images, 0.2, NAMES)
    for extra in range(1000, 1020):
        after = split.assign(images + [(sha(extra), 0)], 0.2, NAMES)
        moved = [s for s in before if before[s] != after[s]]
        assert len(moved) <= 1


def test_split_counts_with_a_test_share():
    assert split.split_counts(10, 0.2, 0.1) == (2, 1)
    assert split.split_counts(3, 0.2, 0.2) == (1, 1)
    assert split.split_counts(2, 0.2, 0.2) == (1, 0)   # one image is left to train on
    images = [(sha(f'{label}-{i}'), label) for label in range(3) for i in range(50)]
    assigned = split.assign(images, 0.2, ('train', 'eval', 'test'), test_fraction=0.1)
    counts = collections.Counter((assigned[s], label) for s, label in images)
    assert all(counts['eval', c] == 10 and counts['test', c] == 5 and counts['train', c] == 35
               for c in range(3))


def crowded_hashes(rng: random.Random, n: int) -> list:
    """n distinct hex digests that share a few buckets (so ranks inside a bucket matter)."""
    prefixes = [f'{rng.randrange(16 ** split.BUCKET_CHARS):0{split.BUCKET_CHARS}x}'
                for _ in range(3)]
    return sorted({rng.choice(prefixes) + sha(rng.random())[split.BUCKET_CHARS:]
                   for _ in range(n)} | {sha(rng.random()) for _ in range(n // 3)})


@pytest.mark.parametrize('test_fraction', [0.0, 0.1])
def test_boundaries_from_bucket_counts_are_exactly_the_sorted_ones(test_fraction):
    rng = random.Random(7)
    for n in [0, 1, 2, 3, 5, 17, 100, 999]:
        hashes = crowded_hashes(rng, n)
        counts = collections.Counter(split.bucket(h) for h in hashes)
        cuts = split.cuts(counts.items(), 0.2, test_fraction)
        found = tuple(
            split.boundary_in_bucket([h for h in hashes if split.bucket(h) == cut[0]], cut[1])
            if cut else None for cut in cuts)
        assert found == split.boundaries(hashes, 0.2, test_fraction), n


def test_class_boundaries_on_beam_are_exactly_the_sorted_ones():
    """The Beam transform (counts per bucket, then one bucket's hashes) on the DirectRunner."""
    import apache_beam as beam  # pylint: disable=import-outside-toplevel
    from apache_beam.testing import util as beam_testing  # pylint: disable=import-outside-toplevel
    from components.image_example_gen import executor  # pylint: disable=import-outside-toplevel
    rng = random.Random(11)
    per_class = {label: crowded_hashes(rng, n) for label, n in enumerate([1, 2, 40, 700])}
    plan = types.SimpleNamespace(eval_fraction=0.2, test_fraction=0.1)
    expected = [(label, split.boundaries(hashes, 0.2, 0.1))
                for label, hashes in per_class.items() if len(hashes) > 1]
    with beam.Pipeline() as pipeline:
        found = (pipeline
                 | beam.Create([(label, h) for label, hashes in per_class.items()
                                for h in hashes])
                 | executor.ClassBoundaries(plan))  # pylint: disable=no-value-for-parameter
        beam_testing.assert_that(found, beam_testing.equal_to(expected))
