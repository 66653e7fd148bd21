"""Listing and reading a local folder of photos safely, every entry accounted for.

The walk goes to any depth with os.scandir, sorted by name in each folder. It never
follows a link to a folder (no loops), never opens what is not a regular file (a FIFO
named x.jpg would block a plain open(); a device would never end), and carries names
that are not valid UTF-8 as surrogate-escaped strings (PEP 383) so that one odd name
cannot stop the listing. Files are opened non-blocking, checked with fstat (regular,
within max_file_bytes) and read up to that limit; the image header is then checked
with Pillow (format, pixel count) before anything decodes it.

Names: ImageExampleGen's rules (components/image_example_gen/layout.py) say which file
names are images; hidden files and system folders (__MACOSX/) are skipped, as there.
"""

import dataclasses
import io
import os
import stat
import warnings
from typing import Iterator, Optional

from components.image_example_gen import layout
from models import features

# Files larger than this are reported as bad instead of read (a photo is a few MB).
MAX_FILE_BYTES = 64 << 20
_FILE_TYPES = ((stat.S_ISFIFO, 'a FIFO'), (stat.S_ISSOCK, 'a socket'),
               (stat.S_ISCHR, 'a character device'), (stat.S_ISBLK, 'a block device'))


class BadFileError(ValueError):
    """A listed file that cannot be scored; `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Listed:
    """One entry under the folder.

    Attributes:
      path: '/'-separated, relative to the folder; names that are not UTF-8 are
        surrogate-escaped (os.fsencode gives the bytes back; display_path prints them).
      skipped: why it is not read (not a regular file, hidden, not an image name), or
        None for a file to read.
    """
    path: str
    skipped: Optional[str] = None


def display_path(path: str) -> str:
    r"""A path for people and CSV files: bytes that are not UTF-8 shown as \xNN."""
    return path.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')


def _kind(mode: int) -> str:
    return next((name for test, name in _FILE_TYPES if test(mode)), 'not a regular file')


def _hidden(name: str) -> bool:
    return name.startswith('.') or name in layout.SYSTEM_FOLDERS


def _why_skipped(entry: os.DirEntry) -> Optional[str]:
    """Why a non-folder entry is not read; None for a file to read."""
    if entry.name.startswith('.'):
        return 'hidden file'
    try:
        mode = entry.stat(follow_symlinks=True).st_mode
    except OSError:
        return None     # a link to nothing: reading it reports why
    if stat.S_ISDIR(mode):
        return 'link to a folder (links to folders are not followed)'
    if not stat.S_ISREG(mode):
        return f'not a regular file ({_kind(mode)})'
    if not layout.is_image_name(entry.name):
        return layout.not_read_reason(entry.name)
    return None


def walk(root: str) -> Iterator[Listed]:
    """Every entry under root at any depth (folders descended, not listed), in name order.

    A folder that cannot be listed is one entry, skipped with the reason.

    Raises:
      NotADirectoryError: root is not a folder.
    """
    if not os.path.isdir(root):
        raise NotADirectoryError(f'images folder {root} does not exist or is not a folder')
    pending = ['']
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(os.path.join(root, folder) if folder else root) as listing:
                entries = sorted(listing, key=lambda e: os.fsencode(e.name))
        except OSError as e:
            yield Listed(folder, skipped=f'cannot list folder: {e.strerror or e}')
            continue
        below = []
        for entry in entries:
            path = f'{folder}/{entry.name}' if folder else entry.name
            try:
                is_folder = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_folder = False
            if is_folder and _hidden(entry.name):
                yield Listed(path, skipped=f'inside hidden or system folder {entry.name}/')
            elif is_folder:
                below.append(path)
            else:
                yield Listed(path, skipped=_why_skipped(entry))
        # Depth first, in name order: the next folder popped is the first below.
        pending.extend(reversed(below))


def read_file(root: str, path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of root/path, a regular file of at most max_bytes.

    Raises:
      BadFileError: cannot be opened, not a regular file, empty or too large.
    """
    try:
        fd = os.open(os.path.join(root, path), os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as e:
        raise BadFileError(f'cannot open: {e.strerror or e}') from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BadFileError(f'not a regular file ({_kind(info.st_mode)})')
        if info.st_size > max_bytes:
            raise BadFileError(f'file too large: {info.st_size} bytes > max_file_bytes '
                               f'{max_bytes}')
        chunks, size = [], 0
        # Read to the end, up to one byte past the limit: the file may grow meanwhile.
        while chunk := os.read(fd, min(1 << 20, max_bytes + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise BadFileError(f'file too large: more than max_file_bytes {max_bytes}')
    except OSError as e:
        raise BadFileError(f'cannot read: {e.strerror or e}') from None
    finally:
        os.close(fd)
    if not size:
        raise BadFileError('empty file (0 bytes)')
    return b''.join(chunks)


def check_image(data: bytes, max_pixels: int = features.MAX_PIXELS) -> None:
    """Refuses bytes that are no image of a format TensorFlow decodes, or too many pixels,
    from the header alone (Pillow opens lazily: nothing is decoded here).

    Raises:
      BadFileError: with the reason.
    """
    from PIL import Image  # pylint: disable=import-outside-toplevel
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:
                fmt, (width, height) = header.format, header.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadFileError(f'image too large to decode safely: {e}') from None
    except Image.UnidentifiedImageError:
        raise BadFileError('not a readable image (no known image format in its bytes)') from None
    except Exception as e:  # pylint: disable=broad-except
        # Pillow's plugins raise many types on malformed headers; each is this file's problem.
        raise BadFileError(f'not a readable image ({type(e).__name__}: {e})') from None
    if fmt not in features.PIL_FORMATS:
        raise BadFileError(f'unsupported image format {fmt}; expected JPEG, PNG, BMP or GIF')
    if width * height > max_pixels:
        raise BadFileError(f'image too large: {width}x{height} = {width * height} pixels > '
                           f'max_pixels {max_pixels}')
