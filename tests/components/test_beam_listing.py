"""ImageExampleGen lists the data root in Beam, per folder: exactly the paths of layout.list_files."""

import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing import util as beam_testing

from components.image_example_gen import executor
from components.image_example_gen import layout

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


def make_tree(root, files, empty_folders=()):
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b'x')
    for name in empty_folders:
        (root / name).mkdir(parents=True, exist_ok=True)


@pytest.mark.parametrize('files,empty_folders,suffix', [
    (MESSY, EMPTY_FOLDERS, ''),
    (MESSY, EMPTY_FOLDERS, '/'),                    # gfile and users may end the root with '/'
    (['cats/a.jpg', 'dogs/x/y.jpg'], ['birds'], ''),  # nothing at the top but folders
    ([], [], ''),                                   # an empty root
])
def test_beam_listing_gives_exactly_the_paths_of_list_files(tmp_path, files, empty_folders,
                                                            suffix):
    make_tree(tmp_path, files, empty_folders)
    root = str(tmp_path) + suffix
    expected = layout.list_files(root)
    assert expected == sorted(files)
    with test_pipeline.TestPipeline() as p:
        found = p | executor.ListFiles(root)  # pylint: disable=no-value-for-parameter
        # equal_to compares sorted lists, so a path listed twice fails too.
        beam_testing.assert_that(found, beam_testing.equal_to(expected))


def test_nothing_is_listed_while_the_graph_is_built(tmp_path):
    # Files only appear after ListFiles is applied, before the pipeline runs: a listing
    # made while building the graph (paths inside the job, Dataflow's 10 MB limit) misses them.
    with test_pipeline.TestPipeline() as p:
        found = p | executor.ListFiles(str(tmp_path))  # pylint: disable=no-value-for-parameter
        make_tree(tmp_path, MESSY, EMPTY_FOLDERS)
        beam_testing.assert_that(found, beam_testing.equal_to(sorted(MESSY)))


def test_list_level_lists_one_folder_and_names_its_sub_folders(tmp_path):
    make_tree(tmp_path, MESSY, EMPTY_FOLDERS)
    root = str(tmp_path)
    files, folders = layout.list_level(root)
    assert (sorted(files), sorted(folders)) == (
        ['.hidden_top', 'top.txt'],
        ['.git', '__MACOSX', 'dogs', 'empty', 'train', 'validation'])
    files, folders = layout.list_level(root, 'train/cats')
    assert (files, sorted(folders)) == (['train/cats/a.jpg'],
                                        ['train/cats/2019', 'train/cats/empty album'])
    assert layout.list_level(root, 'empty') == ([], [])
    assert layout.list_level(root, 'missing') == ([], [])
    assert sorted(layout.files_under(root, 'train/cats/2019')) == [
        'train/cats/2019/été/phone export/b.JPG']
