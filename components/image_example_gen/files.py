"""The data root's file system, listed and read so that no single path can hang,
crash or flood a run.

Local paths (no '://') are read with `os`, because tf.io.gfile cannot:
- names are `os.fsdecode` strings: bytes that are not UTF-8 become surrogate escapes
  (PEP 383) instead of aborting the whole listing (gfile raises UnicodeDecodeError
  for the folder); `display` shows them as '\\xff' for reports and Examples;
- folders are listed relative to an open folder (openat), and so are files whose
  path is longer than PATH_MAX (4096 bytes) or whose links must not be followed:
  such a path is one more path;
- symbolic links follow the `symlinks` policy (SYMLINK_POLICIES); a link to a
  folder that holds it (a loop) is never walked; whatever came through a link
  carries the link (`Link`) for the report;
- a file is opened only if `stat` says it is a regular file no larger than the
  limit, with O_NONBLOCK (a FIFO swapped in meanwhile cannot block) and checked
  again with fstat; never more than the limit is read.
Other URLs (gs://, ram://) go through tf.io.gfile: object stores have no links,
pipes or devices and their names are UTF-8; the size is checked with
tf.io.gfile.stat before reading and reading stops at the limit.

A folder that cannot be listed or a link that is not followed is listed as one
entry with its reason (`Listed.bad`, `Listed.ignored`): it never ends the listing.
"""

import dataclasses
import errno
import os
import posixpath
import stat
from typing import Iterator, List, Optional, Tuple

import tensorflow as tf

from models import features

FOLLOW, INSIDE, NONE = features.SYMLINK_POLICIES

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CHUNK = 1 << 20
_PATH_MAX = 4096       # Linux's PATH_MAX (linux/limits.h), with the final NUL
_KINDS = ((stat.S_ISFIFO, 'named pipe (FIFO)'), (stat.S_ISSOCK, 'socket'),
          (stat.S_ISCHR, 'character device'), (stat.S_ISBLK, 'block device'),
          (stat.S_ISDIR, 'folder'), (stat.S_ISLNK, 'symbolic link'))
_ERRORS = {
    errno.EACCES: 'permission denied',
    errno.EPERM: 'permission denied',
    errno.ENOENT: 'no such file (a link to nothing, or removed while the run read the folder)',
    errno.ELOOP: 'symbolic link loop (too many levels of symbolic links)',
    errno.ENAMETOOLONG: 'name too long',
}


class UnreadableError(OSError):
    """A file or folder that is not read; `reason` says why, in words for the report."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True, order=True)
class Link:
    """A symbolic link met under the data root (followed or not, as the policy says).

    Attributes:
      path: the link, relative to the data root.
      target: what it points to, as written in the link.
      outside_root: whether its target is outside the data root.
    """
    path: str
    target: str
    outside_root: bool


@dataclasses.dataclass(frozen=True, order=True)
class Listed:
    """One entry of the data root's listing: a file (anything but a folder), or a
    folder or link that is not walked, with the reason.

    Attributes:
      path: '/'-separated path relative to the root (surrogate escapes for bytes
        that are not UTF-8; `display` for text).
      link: the innermost symbolic link it came through (itself, or a linked
        folder above it), or None.
      folder: the entry is a folder (or a link to one) that is not walked.
      bad: why it could not be listed (e.g. a folder without permission).
      ignored: why it is not walked (a link loop; a link the policy does not follow).
    """
    path: str
    link: Optional[Link] = None
    folder: bool = False
    bad: Optional[str] = None
    ignored: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Folder:
    """A folder to list, relative to the root ('' for the root itself).

    Attributes:
      path: '/'-separated path relative to the root.
      link: the innermost symbolic link its path goes through, or None.
      chain: (st_dev, st_ino) of the root, each folder down to it and itself (local
        roots only): a link to any of them is a loop.
    """
    path: str = ''
    link: Optional[Link] = None
    chain: Tuple[Tuple[int, int], ...] = ()


def display(text: str) -> str:
    """`text` with the bytes that are not UTF-8 shown as '\\xff' (a str for JSON and
    Examples); text without them is returned unchanged."""
    return text.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')


def is_local(root: str) -> bool:
    """Whether root is a path on this machine (read with os) rather than a gfile URL."""
    return '://' not in root


def join(root: str, path: str) -> str:
    """root/path ('' for the root itself)."""
    return posixpath.join(root, path) if path else root


def reason_of(error: OSError) -> str:
    """Words for an OSError, for the report."""
    if isinstance(error, UnreadableError):
        return error.reason
    return _ERRORS.get(error.errno, error.strerror or str(error))


def _not_regular(mode: int) -> Optional[str]:
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), 'special file')
    return f'{kind}, not a regular file'


def _id(found: os.stat_result) -> Tuple[int, int]:
    return found.st_dev, found.st_ino


def _open_folder(root: str, path: str, *, follow: bool
                 ) -> Tuple[int, Tuple[Tuple[int, int], ...]]:
    """(fd of root/path, Folder.chain of it), opened one folder at a time, so no path
    reaches PATH_MAX."""
    fd = os.open(root, _DIR_FLAGS)
    chain = (_id(os.fstat(fd)),)
    for name in path.split('/') if path else ():
        try:
            fd_below = os.open(name, _DIR_FLAGS | (0 if follow else os.O_NOFOLLOW), dir_fd=fd)
        finally:
            os.close(fd)
        fd = fd_below
        chain += (_id(os.fstat(fd)),)
    return fd, chain


def _inside(root: str, path: str) -> bool:
    real_root = os.path.realpath(root)
    real = os.path.realpath(join(root, path))
    return real == real_root or real.startswith(real_root.rstrip('/') + '/')


def _scan(fd: int, root: str, folder: Folder, symlinks: str
          ) -> Tuple[List[Listed], List[Folder]]:
    """The entries of one open local folder (folder.chain set): files, and sub-folders
    to walk."""
    chain = folder.chain
    files, folders = [], []
    with os.scandir(fd) as entries:
        found = list(entries)
    for entry in sorted(found, key=lambda e: e.name):
        path = posixpath.join(folder.path, entry.name) if folder.path else entry.name
        try:
            if not entry.is_symlink():
                if entry.is_dir(follow_symlinks=False):
                    folders.append(Folder(path, folder.link,
                                          chain + (_id(entry.stat(follow_symlinks=False)),)))
                else:
                    files.append(Listed(path, folder.link))
                continue
            target = os.readlink(entry.name, dir_fd=fd)
        except OSError as e:
            files.append(Listed(path, folder.link, bad=f'cannot list: {reason_of(e)}'))
            continue
        try:
            found_stat = os.stat(entry.name, dir_fd=fd)
        except OSError:
            found_stat = None      # a link to nothing or a loop of links: read, reported as bad
        is_folder = found_stat is not None and stat.S_ISDIR(found_stat.st_mode)
        link = Link(path, display(target), not _inside(root, path))
        if symlinks == NONE:
            files.append(Listed(path, link, folder=is_folder, ignored=(
                f'symbolic link (to {link.target}): not followed (symlinks: {NONE})')))
        elif symlinks == INSIDE and link.outside_root:
            files.append(Listed(path, link, folder=is_folder, ignored=(
                f'symbolic link out of the data root (to {link.target}): not followed '
                f'(symlinks: {INSIDE})')))
        elif not is_folder:
            files.append(Listed(path, link))
        elif _id(found_stat) in chain:
            files.append(Listed(path, link, folder=True, ignored=(
                f'link to a folder that holds it (a loop, to {link.target}): not followed')))
        else:
            folders.append(Folder(path, link, chain + (_id(found_stat),)))
    return files, folders


def _folder_error(folder: Folder, error: OSError) -> Listed:
    return Listed(folder.path, folder.link, folder=True,
                  bad=f'cannot list folder: {reason_of(error)}')


def _local_walk(root: str, start: Folder, symlinks: str, *, deep: bool
                ) -> Iterator[Tuple[Optional[Listed], Optional[Folder]]]:
    """(entry, None) for every entry under start, and with deep=False (None, folder) for
    its sub-folders instead of walking them. One fd per level is open, none after."""
    try:
        fd, chain = _open_folder(root, start.path, follow=symlinks != NONE)
    except OSError as e:
        if e.errno != errno.ENOENT:     # a folder that is not there holds nothing
            yield _folder_error(start, e), None
        return
    if not start.chain:
        start = dataclasses.replace(start, chain=chain)
    try:
        files, folders = _scan(fd, root, start, symlinks)
    except OSError as e:
        os.close(fd)
        yield _folder_error(start, e), None
        return
    stack = [(fd, iter(folders))]
    try:
        yield from ((listed, None) for listed in files)
        if not deep:
            yield from ((None, folder) for folder in folders)
            return
        while stack:
            fd, pending = stack[-1]
            folder = next(pending, None)
            if folder is None:
                os.close(stack.pop()[0])
                continue
            # A folder listed as one (not a link) is not followed should it become a link.
            linked = folder.link is not None and folder.link.path == folder.path
            try:
                fd_below = os.open(posixpath.basename(folder.path),
                                   _DIR_FLAGS | (0 if linked else os.O_NOFOLLOW), dir_fd=fd)
            except OSError as e:
                yield _folder_error(folder, e), None
                continue
            try:
                files, folders = _scan(fd_below, root, folder, symlinks)
            except OSError as e:
                os.close(fd_below)
                yield _folder_error(folder, e), None
                continue
            stack.append((fd_below, iter(folders)))
            yield from ((listed, None) for listed in files)
    finally:
        for fd, _ in stack:
            os.close(fd)


def _relative(root: str, path: str) -> str:
    """A folder gfile's walk gave under root, relative to root ('' for root; '/'-separated:
    the walk may end a folder with '/' (gs://) and joins with '\\' on Windows)."""
    relative = posixpath.relpath(path.replace('\\', '/').rstrip('/'), root.rstrip('/'))
    return '' if relative == '.' else relative


def _gfile_walk(root: str, start: Folder, *, deep: bool
                ) -> Iterator[Tuple[Optional[Listed], Optional[Folder]]]:
    for path, folders, names in tf.io.gfile.walk(join(root.rstrip('/'), start.path)):
        relative = _relative(root, path)
        for name in names:
            yield Listed(posixpath.join(relative, name) if relative else name), None
        if not deep:
            for name in folders:
                name = name.rstrip('/')
                yield None, Folder(posixpath.join(relative, name) if relative else name)
            return


def list_level(root: str, folder: Folder = Folder(), symlinks: str = features.SYMLINKS
               ) -> Tuple[List[Listed], List[Folder]]:
    """Entries and sub-folders directly in root/folder: one folder listing, no deeper.

    Args:
      root: the data root; local path or any tf.io.gfile URL.
      folder: as this function or `walk` give them; Folder() for the root itself.
      symlinks: one of SYMLINK_POLICIES.

    Returns:
      (entries, folders): entries as `walk` gives them; folders to pass back here or
      to `walk`. A folder that does not exist lists as nothing; one that cannot be
      listed, as one bad entry.
    """
    listed, folders = [], []
    walk_one = (_local_walk(root, folder, symlinks, deep=False) if is_local(root)
                else _gfile_walk(root, folder, deep=False))
    for entry, below in walk_one:
        if entry is not None:
            listed.append(entry)
        else:
            folders.append(below)
    return listed, folders


def walk(root: str, folder: Folder = Folder(), symlinks: str = features.SYMLINKS
         ) -> Iterator[Listed]:
    """Every entry under root/folder at any depth, lazily (a caller may stop early).

    Args:
      root: the data root; local path or any tf.io.gfile URL.
      folder: where to start; Folder() for the root itself.
      symlinks: one of SYMLINK_POLICIES.
    """
    walker = (_local_walk(root, folder, symlinks, deep=True) if is_local(root)
              else _gfile_walk(root, folder, deep=True))
    for entry, _ in walker:
        yield entry


def list_files(root: str, symlinks: str = features.SYMLINKS) -> List[Listed]:
    """Every entry under root at any depth, sorted by path."""
    return sorted(walk(root, Folder(), symlinks), key=lambda entry: entry.path)


def _short(path: str) -> bool:
    """Whether the system takes path whole (shorter than PATH_MAX): one call instead of
    opening each folder on the way. Links are then followed on the way, so only where
    the policy follows them."""
    return len(os.fsencode(path)) < _PATH_MAX


def _check(found_mode: int, size: int, max_bytes: int) -> None:
    kind = _not_regular(found_mode)
    if kind:
        raise UnreadableError(kind)
    if size > max_bytes:
        raise UnreadableError(f'file too large: {size:,} bytes > max_file_bytes {max_bytes:,}')


def read_file(root: str, path: str, max_bytes: int, *, follow: bool = True) -> bytes:
    """The bytes of one regular file under root, at most max_bytes of them.

    Args:
      root: the data root; local path or any tf.io.gfile URL.
      path: as `walk` gives it.
      max_bytes: larger files are refused without reading them.
      follow: follow symbolic links (False: a link is refused, on a local root).

    Returns:
      The file's bytes.

    Raises:
      UnreadableError, OSError: not a regular file, larger than max_bytes, or the
        system's error (`reason_of` turns either into words).
    """
    if not is_local(root):
        try:
            size = tf.io.gfile.stat(join(root, path)).length
            _check(stat.S_IFREG, size, max_bytes)
            with tf.io.gfile.GFile(join(root, path), 'rb') as f:
                data = f.read(max_bytes + 1)
        except tf.errors.OpError as e:
            raise UnreadableError(f'cannot read file: {e.message}') from None
        _check(stat.S_IFREG, len(data), max_bytes)
        return data
    if follow and _short(join(root, path)):
        folder_fd, name = None, join(root, path)
    else:
        folder, name = posixpath.split(path)
        folder_fd, _ = _open_folder(root, folder, follow=follow)
    try:
        # Nothing but a regular file is opened: opening a FIFO blocks, a device may act.
        found = os.stat(name, dir_fd=folder_fd, follow_symlinks=follow)
        _check(found.st_mode, found.st_size, max_bytes)
        fd = os.open(name, _FILE_FLAGS | (0 if follow else os.O_NOFOLLOW), dir_fd=folder_fd)
    finally:
        if folder_fd is not None:
            os.close(folder_fd)
    try:
        found = os.fstat(fd)      # what was opened, should it have been swapped meanwhile
        _check(found.st_mode, found.st_size, max_bytes)
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    _check(stat.S_IFREG, size, max_bytes)   # grew since fstat
    return b''.join(chunks)


def stat_file(root: str, path: str, *, follow: bool = True) -> Optional[Tuple[int, int]]:
    """(size, mtime in ns) of root/path, following links; None if it cannot be stat'ed."""
    try:
        if not is_local(root):
            found = tf.io.gfile.stat(join(root, path))
            return found.length, found.mtime_nsec
        if follow and _short(join(root, path)):
            found = os.stat(join(root, path))
        else:
            folder, name = posixpath.split(path)
            folder_fd, _ = _open_folder(root, folder, follow=follow)
            try:
                found = os.stat(name, dir_fd=folder_fd, follow_symlinks=follow)
            finally:
                os.close(folder_fd)
        return found.st_size, found.st_mtime_ns
    except (OSError, tf.errors.OpError):
        return None


def exists(root: str) -> bool:
    """Whether a data root (local or URL) exists."""
    return os.path.exists(root) if is_local(root) else tf.io.gfile.exists(root)


def is_folder(root: str) -> bool:
    """Whether a data root (local or URL) is a folder."""
    return os.path.isdir(root) if is_local(root) else tf.io.gfile.isdir(root)
