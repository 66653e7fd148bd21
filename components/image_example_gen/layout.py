"""The shape of a data root, and where each file under it goes.

Accepted layouts (a class folder holds its images at any depth):
  <root>/<class>/**                                   -> split per class by content hash
  <root>/train/<class>/**, <root>/validation/<class>/**  -> train/eval as given
  ... and <root>/test/<class>/** beside them           -> a held-out test split

Every file under the root is placed by `place`: a candidate image of a class
(read later: ingested, or bad with a reason), or ignored with the reason. So
every file the user gave is accounted for. Pure except `inspect_data_root`,
which reads the file system through `files` (local paths, gs://, ram://).
"""

import collections
import dataclasses
import math
import posixpath
from typing import Counter, Dict, List, Optional, Sequence, Tuple

from components.image_example_gen import files
from models import features

# Folders that hold no user data: zip archives made on macOS add __MACOSX/ with
# a '._name' resource file per file. Names starting with '.' are hidden.
SYSTEM_FOLDERS = ('__MACOSX',)
SPLIT_DIRS = (features.TRAIN_DIR, features.VALIDATION_DIR)   # both needed to be pre-split
# Folder names (lower case) other tools use for splits -> the name a split folder has here.
# A top folder named so, without images directly in it, stops the run with the rename.
SPLIT_LOOKALIKES = {
    'train': features.TRAIN_DIR, 'training': features.TRAIN_DIR,
    'val': features.VALIDATION_DIR, 'valid': features.VALIDATION_DIR,
    'validation': features.VALIDATION_DIR, 'eval': features.VALIDATION_DIR,
    'evaluation': features.VALIDATION_DIR, 'dev': features.VALIDATION_DIR,
    'test': features.TEST_DIR, 'testing': features.TEST_DIR}
TEST_DIRS = (features.TEST_DIR,)                                 # optional beside them
_EXPECTED = 'one sub-folder per class, or train/ and validation/ each holding class folders'


class DataRootError(ValueError):
    """The data root cannot be used; the message says what to fix."""


@dataclasses.dataclass(frozen=True)
class DataRoot:
    """A checked data root."""
    root: str
    presplit: bool
    class_names: Tuple[str, ...]
    test_folder: bool = False   # a pre-split root with test/ holding images of a class
    images: int = 0             # image files in class folders (before any is decoded),
                                # counted up to inspect_data_root's count_up_to

    @property
    def split_dirs(self) -> Optional[Tuple[str, ...]]:
        """The split folders `place` reads, or None for a root split by hash."""
        if not self.presplit:
            return None
        return SPLIT_DIRS + (TEST_DIRS if self.test_folder else ())


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where one file goes.

    Attributes:
      path: '/'-separated path relative to the data root.
      split_dir: for a pre-split root, the split folder ('train', 'validation').
      class_name: the class folder's name, for a candidate image.
      ignored: why the file is not an image of a class; None for a candidate.
      bad: why a candidate cannot be read, known from the listing (`files.Listed.bad`).
      link: the symbolic link it came through (`files.Listed.link`).
    """
    path: str
    split_dir: Optional[str] = None
    class_name: Optional[str] = None
    ignored: Optional[str] = None
    bad: Optional[str] = None
    link: Optional[files.Link] = None


def _hidden(name: str) -> bool:
    return name.startswith('.') or name in SYSTEM_FOLDERS


def is_image_name(name: str) -> bool:
    """Whether a file name has an image extension (any case: .JPG, .Jpeg)."""
    return extension(name) in features.IMAGE_EXTENSIONS


def extension(name: str) -> str:
    """A file name's extension in lower case, with the dot ('' without one)."""
    return posixpath.splitext(name)[1].lower()


def place(path: str, *, split_dirs: Optional[Sequence[str]],
          class_names: Sequence[str], folder: bool = False) -> Placement:
    """Decides what one file under the data root is.

    Args:
      path: '/'-separated path relative to the data root.
      split_dirs: the split folders of a pre-split root (DataRoot.split_dirs);
        None when class folders are at the top.
      class_names: the class folder names.
      folder: path is a folder that is not walked (files.Listed.folder): placed
        by where it is, not by its name.

    Returns:
      The Placement; `ignored` names the first rule the file breaks.
    """
    parts = path.split('/')
    folders, name = (parts, '') if folder else (parts[:-1], parts[-1])
    hidden = next((f for f in folders if _hidden(f)), None)
    if hidden is not None:
        return Placement(path, ignored=f'inside hidden or system folder {hidden}/')
    if name.startswith('.'):
        return Placement(path, ignored='hidden file')
    split_dir = None
    if split_dirs is not None:
        if not folders or folders[0] not in split_dirs:
            return Placement(path, ignored='outside ' + ', '.join(
                f'{d}/' for d in split_dirs[:-1]) + f' and {split_dirs[-1]}/')
        split_dir, folders = folders[0], folders[1:]
    if not folders:
        return Placement(path, split_dir, ignored='not inside a class folder')
    if folders[0] not in class_names:
        not_text = '' if files.display(folders[0]) == folders[0] else (
            ' (its name is not UTF-8 text: rename it)')
        return Placement(path, split_dir, ignored=(
            f'folder {files.display(folders[0])}/ is not one of the classes{not_text}'))
    if not folder and not is_image_name(name):
        return Placement(path, split_dir, folders[0], ignored=not_read_reason(name))
    return Placement(path, split_dir, folders[0])


def _raise_if_unlisted(root: str, folder: str, listed: Sequence[files.Listed]) -> None:
    """DataRootError if the listing of root/folder is its own failure (no permission)."""
    failed = next((entry.bad for entry in listed if entry.path == folder and entry.bad), None)
    if failed:
        raise DataRootError(f'{"data root" if not folder else "folder"} '
                            f'{files.display(files.join(root, folder))}: {failed}')


def _class_folders(root: str, parent: str, symlinks: str) -> List[str]:
    """Folders in root/parent (links to folders as the policy follows them) that can
    be classes: not hidden, names that are text."""
    listed, folders = files.list_level(root, files.Folder(parent), symlinks)
    _raise_if_unlisted(root, parent, listed)
    names = (posixpath.basename(folder.path) for folder in folders)
    return sorted(name for name in names if not _hidden(name) and files.display(name) == name)


def _holds_images(root: str, folder: str, symlinks: str) -> bool:
    """Whether root/folder has image files directly in it (not only in sub-folders)."""
    listed, _ = files.list_level(root, files.Folder(folder), symlinks)
    return any(is_image_name(posixpath.basename(entry.path)) and not entry.folder
               and not posixpath.basename(entry.path).startswith('.') for entry in listed)


def unread_photos_sentence(kinds: Sequence[str]) -> str:
    """'.webp photos are not read (...): convert them' for photo formats (with counts,
    e.g. '40 .webp') in features.UNREAD_IMAGE_EXTENSIONS."""
    return (f'{", ".join(kinds)} photos are not read (TensorFlow decodes '
            f'{", ".join(features.IMAGE_EXTENSIONS)}): convert them, e.g. to .jpg')


def unread_photos(extensions: Counter) -> Counter:
    """The photo formats TensorFlow does not decode among counted file extensions."""
    return collections.Counter({name: count for name, count in extensions.items()
                                if name in features.UNREAD_IMAGE_EXTENSIONS})


def not_read_reason(name: str) -> str:
    """Why a file in a class folder whose name is not an image file name is not read."""
    if extension(name) in features.UNREAD_IMAGE_EXTENSIONS:
        return unread_photos_sentence([extension(name)])
    return f'not an image file name ({", ".join(features.IMAGE_EXTENSIONS)}, any case)'


def _class_images(root: str, parent: str, class_name: str, enough: float,
                  symlinks: str) -> Tuple[int, Counter]:
    """(image files of one class folder (any depth, as `place` counts them), at most
    `enough`; the extensions of the files seen that are not used, with their counts)."""
    found, others = 0, collections.Counter()
    folder = posixpath.join(parent, class_name)
    for entry in files.walk(root, files.Folder(folder), symlinks):
        _raise_if_unlisted(root, folder, [entry])
        placement = place(entry.path, split_dirs=[parent] if parent else None,
                          class_names=[class_name], folder=entry.folder)
        if placement.ignored is None and entry.ignored is None and entry.bad is None:
            found += 1
            if found >= enough:
                break
        elif not entry.folder:
            others[files.display(extension(entry.path)) or '(no extension)'] += 1
    return found, others


def _what_it_holds(extensions: Counter) -> str:
    """'; it holds 40 .webp files: ...' for a class folder without images."""
    if not extensions:
        return ''
    listed = ', '.join(f'{count} {extension}' for extension, count in extensions.most_common(5))
    unread = sorted(unread_photos(extensions))
    advice = f'; {unread_photos_sentence(unread)}' if unread else ''
    return f'; it holds {sum(extensions.values())} other files ({listed}){advice}'


def inspect_data_root(root: str, count_up_to: Optional[int] = None,
                      symlinks: str = features.SYMLINKS) -> DataRoot:
    """Checks a data root and returns its layout and class names.

    Each class folder is walked only until it shows an image and, with
    `count_up_to`, until that many images are counted in all: a runner's check
    of a million-photo root reads a few folders, not every path (ImageExampleGen
    lists them all, in its own job).

    Args:
      root: local path or any tf.io.gfile URL (gs://, ram://).
      count_up_to: stop counting images here (DataRoot.images is then at most
        this); None counts them all.
      symlinks: which symbolic links to follow (features.SYMLINK_POLICIES).

    Returns:
      DataRoot with sorted class folder names.

    Raises:
      DataRootError: missing, not a folder, the root or a class folder cannot
        be listed (no permission), no class folders, a single class, a class
        folder without image files (at any depth) in some split, or
        train/ without validation/ (a class named train has images directly in
        train/, beside the other class folders: no error).
    """
    if not files.exists(root):
        raise DataRootError(f'data root {root} does not exist')
    if not files.is_folder(root):
        raise DataRootError(f'data root {root} is not a folder')
    top = _class_folders(root, '', symlinks)
    lookalikes = {d: SPLIT_LOOKALIKES[d.lower()] for d in top
                  if d not in SPLIT_DIRS + TEST_DIRS and d.lower() in SPLIT_LOOKALIKES
                  and not _holds_images(root, d, symlinks)}
    if lookalikes:
        renames = ', '.join(f'{d}/ to {name}/' for d, name in sorted(lookalikes.items()))
        raise DataRootError(
            f'data root {root} has {", ".join(f"{d}/" for d in sorted(lookalikes))}, named '
            f'like {"split folders" if len(lookalikes) > 1 else "a split folder"} but not as '
            'this pipeline reads them (train/, validation/ and '
            f'optionally test/, in lower case): rename {renames}; or, if they are classes, '
            'put some of their images directly in them, not only in sub-folders')
    split_dirs = [d for d in SPLIT_DIRS if d in top]
    if len(split_dirs) == 1:
        lone = split_dirs[0]
        missing = ({*SPLIT_DIRS} - {lone}).pop()
        if len(top) > 1 and _holds_images(root, lone, symlinks):
            split_dirs = []     # images in it, beside other folders: a class named so
        else:
            raise DataRootError(
                f'data root {root} has {lone}/ but no {missing}/: add {missing}/ with the '
                f'same class folders; or, if {lone}/ is a class of its own (beside the other '
                f'class folders), put some of its images directly in {lone}/, not only in '
                'its sub-folders')
    presplit = bool(split_dirs)
    parents = split_dirs if presplit else ['']
    class_names = sorted({c for parent in parents
                          for c in _class_folders(root, parent, symlinks)})
    if not class_names:
        raise DataRootError(f'data root {root} has no class folders (expected {_EXPECTED})')
    if len(class_names) == 1:
        # A folder wrapping the class folders (photos/cats, photos/dogs): name it.
        only = class_names[0]
        inner = ([] if presplit or _holds_images(root, only, symlinks)
                 else _class_folders(root, only, symlinks))
        hint = (f'; its sub-folders ({", ".join(inner[:5])}{", ..." if len(inner) > 5 else ""})'
                f' look like the classes: use {posixpath.join(root, only)} as the data root'
                if len(inner) > 1 else '')
        raise DataRootError(
            f'data root {root} has only one class folder ({class_names[0]}); '
            f'a classifier needs at least two{hint}')
    candidate = DataRoot(root=root, presplit=presplit, class_names=tuple(class_names),
                         test_folder=presplit and features.TEST_DIR in top)
    images: Dict[Tuple[Optional[str], str], int] = collections.Counter()
    not_used: Dict[Tuple[Optional[str], str], Counter] = collections.defaultdict(
        collections.Counter)
    folders = [(parent, name) for parent in parents for name in class_names]
    if candidate.test_folder:
        folders += [(features.TEST_DIR, name) for name in class_names]
    present = {parent: set(_class_folders(root, parent, symlinks))
               for parent in {parent for parent, _ in folders}}
    for parent, name in folders:
        if name in present[parent]:
            # At least the one image that shows the class is there.
            enough = (math.inf if count_up_to is None
                      else max(1, count_up_to - sum(images.values())))
            images[parent or None, name], not_used[parent or None, name] = _class_images(
                root, parent, name, enough, symlinks)
    for parent in parents:
        for name in class_names:
            if not images[parent or None, name]:
                folder = posixpath.join(root, parent, name) if parent else posixpath.join(
                    root, name)
                raise DataRootError(
                    f'class folder {folder} is missing or has no image files at any depth '
                    f'({", ".join(features.IMAGE_EXTENSIONS)})'
                    + _what_it_holds(not_used[parent or None, name]))
    has_test = any(images[features.TEST_DIR, name] for name in class_names)
    total = sum(images.values())
    return dataclasses.replace(candidate, test_folder=candidate.test_folder and has_test,
                               images=total if count_up_to is None else min(total, count_up_to))
