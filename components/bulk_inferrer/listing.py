"""The entries under a folder of photos to score, each with why it is not scored (if so).

The folder is listed and its files read by ImageExampleGen's safe reader
(components/image_example_gen/files.py): symbolic links as the `symlinks` policy says
(a link to a folder that holds it is never walked), names that are not UTF-8 carried as
surrogate-escaped strings (PEP 383), paths longer than PATH_MAX, nothing but regular
files opened (a FIFO named x.jpg would block a plain open()), never more than
max_file_bytes read. Which names are images follows ImageExampleGen's rules
(components/image_example_gen/layout.py); a hidden or system folder (__MACOSX/) is one
skipped entry, not walked.
"""

import posixpath
from typing import Iterator

from components.image_example_gen import files
from components.image_example_gen import layout
from models import features


def is_skipped(entry: files.Listed) -> bool:
    """Whether an entry is not an image file to score (its reason: `entry.ignored`, or
    `entry.bad` for a folder that cannot be listed)."""
    return entry.ignored is not None or entry.folder


def _by_name(entry: files.Listed) -> files.Listed:
    """The entry, ignored with the reason when its name is not one to read."""
    if entry.ignored is not None or entry.bad is not None or entry.folder:
        return entry
    name = posixpath.basename(entry.path)
    if name.startswith('.'):
        return files.Listed(entry.path, entry.link, ignored=layout.HIDDEN_FILE)
    if not layout.is_image_name(name):
        return files.Listed(entry.path, entry.link, ignored=layout.not_read_reason(name))
    return entry


def walk(root: str, symlinks: str = features.SYMLINKS) -> Iterator[files.Listed]:
    """Every entry under root at any depth, depth first, names sorted in each folder.

    Args:
      root: the folder of photos.
      symlinks: one of features.SYMLINK_POLICIES.

    Yields:
      files.Listed entries: an image file to read (`ignored`, `bad` None), one that
      cannot be read (`bad`), or one that is skipped (`is_skipped`: its reason in
      `ignored`, or in `bad` for a folder that cannot be listed).

    Raises:
      NotADirectoryError: root is not a folder.
    """
    if not files.is_folder(root):
        raise NotADirectoryError(f'images folder {root} does not exist or is not a folder')
    pending = [files.Folder()]
    while pending:
        listed, folders = files.list_level(root, pending.pop(), symlinks)
        below, hidden = [], []
        for folder in folders:
            name = posixpath.basename(folder.path)
            if layout.is_hidden(name):
                hidden.append(files.Listed(folder.path, folder.link, folder=True,
                                           ignored=layout.hidden_folder_reason(name)))
            else:
                below.append(folder)
        for entry in sorted(listed + hidden, key=lambda entry: entry.path):
            yield _by_name(entry)
        # Depth first, in name order: the next folder popped is the first below.
        pending.extend(reversed(below))
