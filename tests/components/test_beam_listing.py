"""ImageExampleGen lists the data root in Beam, per folder: exactly the entries of
files.list_files, also for entries a plain walk chokes on."""

import os

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing import util as beam_testing

from components.image_example_gen import executor
from components.image_example_gen import files

# A file at every level: the root, split folders, class folders, 3 folders below a
# class; hidden files and folders (listed, then ignored by layout.place); spaces
# and accents; split folders and a class folder side by side.
MESSY = [
    'top.txt',
    '.hidden_top',
    'train/readme.txt',
    'train/cats/a.jpg',
    'train/cats/2019/été/phone export/b.JPG',
    'train/dogs/Chiens à la plage.jpeg',
    'train/dogs/.DS_Store',
    'train/dogs/.thumbs/t.jpg',
    'validation/cats/x y.png',
    'validation/Été/ñ/deep er/z.gif',
    'dogs/direct.jpg',
    'dogs/a/b/c/deep.jpg',
    '.git/objects/ab/cdef',
    '__MACOSX/train/cats/._a.jpg',
]
EMPTY_FOLDERS = ['empty', 'train/cats/empty album', 'dogs/a/b/empty']


def make_tree(root, names, empty_folders=()):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b'x')
    for name in empty_folders:
        (root / name).mkdir(parents=True, exist_ok=True)


def paths(listed):
    return sorted(entry.path for entry in listed)


@pytest.mark.parametrize('names,empty_folders,suffix', [
    (MESSY, EMPTY_FOLDERS, ''),
    (MESSY, EMPTY_FOLDERS, '/'),                    # gfile and users may end the root with '/'
    (['cats/a.jpg', 'dogs/x/y.jpg'], ['birds'], ''),  # nothing at the top but folders
    ([], [], ''),                                   # an empty root
])
def test_beam_listing_gives_exactly_the_entries_of_list_files(tmp_path, names, empty_folders,
                                                              suffix):
    make_tree(tmp_path, names, empty_folders)
    root = str(tmp_path) + suffix
    expected = files.list_files(root)
    assert paths(expected) == sorted(names)
    with test_pipeline.TestPipeline() as p:
        found = p | executor.ListFiles(root)  # pylint: disable=no-value-for-parameter
        # equal_to compares sorted lists, so an entry listed twice fails too.
        beam_testing.assert_that(found, beam_testing.equal_to(expected))


def test_beam_listing_of_names_that_are_not_utf8_links_and_a_loop(tmp_path):
    make_tree(tmp_path, ['cats/a.jpg', 'dogs/b.jpg'])
    # Bytes that are not UTF-8 in a file and a folder name (a bare str of them is
    # more than Beam's string coder takes), a link to a folder, and a loop.
    (tmp_path / os.fsdecode(b'dogs/bad\xff\xfename.jpg')).write_bytes(b'x')
    (tmp_path / os.fsdecode(b'cats/caf\xe9')).mkdir()
    (tmp_path / os.fsdecode(b'cats/caf\xe9/c.jpg')).write_bytes(b'x')
    (tmp_path / 'cats' / 'more').symlink_to(tmp_path / 'dogs')
    (tmp_path / 'dogs' / 'loop').symlink_to('..')
    expected = files.list_files(str(tmp_path))
    assert [files.display(entry.path) for entry in expected] == [
        'cats/a.jpg', 'cats/caf\\xe9/c.jpg', 'cats/more/b.jpg', 'cats/more/bad\\xff\\xfename.jpg',
        'cats/more/loop', 'dogs/b.jpg', 'dogs/bad\\xff\\xfename.jpg', 'dogs/loop']
    assert {entry.path: entry.link.path for entry in expected if entry.link} == {
        'cats/more/b.jpg': 'cats/more', 'cats/more/bad\udcff\udcfename.jpg': 'cats/more',
        'cats/more/loop': 'cats/more/loop', 'dogs/loop': 'dogs/loop'}
    assert [entry.ignored.startswith('link to a folder that holds it')
            for entry in expected if entry.folder] == [True, True]
    with test_pipeline.TestPipeline() as p:
        found = p | executor.ListFiles(str(tmp_path))  # pylint: disable=no-value-for-parameter
        beam_testing.assert_that(found, beam_testing.equal_to(expected))


def test_nothing_is_listed_while_the_graph_is_built(tmp_path):
    # Files only appear after ListFiles is applied, before the pipeline runs: a listing
    # made while building the graph (paths inside the job, Dataflow's 10 MB limit) misses them.
    with test_pipeline.TestPipeline() as p:
        found = p | executor.ListFiles(str(tmp_path))  # pylint: disable=no-value-for-parameter
        make_tree(tmp_path, MESSY, EMPTY_FOLDERS)
        beam_testing.assert_that(found | 'Path' >> beam.Map(lambda entry: entry.path),
                                 beam_testing.equal_to(sorted(MESSY)))


def test_list_level_lists_one_folder_and_names_its_sub_folders(tmp_path):
    make_tree(tmp_path, MESSY, EMPTY_FOLDERS)
    root = str(tmp_path)
    listed, folders = files.list_level(root)
    assert (paths(listed), sorted(f.path for f in folders)) == (
        ['.hidden_top', 'top.txt'],
        ['.git', '__MACOSX', 'dogs', 'empty', 'train', 'validation'])
    listed, folders = files.list_level(root, files.Folder('train/cats'))
    assert (paths(listed), sorted(f.path for f in folders)) == (
        ['train/cats/a.jpg'], ['train/cats/2019', 'train/cats/empty album'])
    assert files.list_level(root, files.Folder('empty')) == ([], [])
    assert files.list_level(root, files.Folder('missing')) == ([], [])
    assert paths(files.walk(root, files.Folder('train/cats/2019'))) == [
        'train/cats/2019/été/phone export/b.JPG']
