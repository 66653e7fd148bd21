"""An encoded image's header (format, width, height, colour mode, frames, EXIF
orientation), read without decoding the image.

The one reader for everything that must know what an image is before decoding it:
ImageExampleGen and BulkInferrer (`checked`: refuses what the pipeline does not
read, with the reason for the report), the server (serving/inputs.py applies its
own limits to what `read` finds), the server's request log (width and height) and
the profiles the monitor compares (models/profile.py: `from_image` on the image it
decodes anyway). Pillow opens lazily: `Image.open` reads the header and decodes
nothing. Pillow counts a GIF's frames only by decoding them, so `gif_frames` walks
the file's blocks instead, stopping past a limit.

Sizes are as stored; `ImageHeader.upright_size` is the size as a photo is shown
(and as the model sees it once its EXIF orientation is applied): width and height
swapped when the orientation turns it by a quarter.
"""

import dataclasses
import io
import struct
import warnings
from typing import Optional, Sequence, Tuple

from PIL import ExifTags
from PIL import Image

from models import features

# The leading bytes by which TensorFlow's decode_image recognizes a format
# (tensorflow/core/kernels/image/decode_image_op.cc), and Pillow's name for it.
TF_SIGNATURES = ((b'\xff\xd8\xff', 'JPEG'), (b'\x89PNG\r\n\x1a\n', 'PNG'),
                 (b'GIF87a', 'GIF'), (b'GIF89a', 'GIF'), (b'BM', 'BMP'))
# Pillow's words for bytes that end before the decoder has read what it needs.
_TRUNCATED_HINTS = ('buffer', 'truncated', 'Truncated', 'not enough data')
# EXIF orientations (TIFF tag 274) that turn the picture by a quarter (width and height
# swap): 5 transposed, 6 rotated right, 7 transverse, 8 rotated left. 1 is upright.
UPRIGHT = 1
QUARTER_TURNS = (5, 6, 7, 8)
# Pillow's names of the formats whose EXIF orientation is read (JPEG files carry it).
_ORIENTED_FORMATS = ('JPEG', 'MPO')


class BadImageError(ValueError):
    """Bytes that are not an image we read; `reason` says why, in words for a report."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class TooLargeError(BadImageError):
    """A header above Pillow's own ceiling, which Pillow refuses to open.

    Attributes:
      ceiling: that ceiling in pixels (2 x PIL.Image.MAX_IMAGE_PIXELS; for `checked`,
        PIL.Image.MAX_IMAGE_PIXELS, the level at which Pillow warns).
    """

    def __init__(self, reason: str, ceiling: int):
        super().__init__(reason)
        self.ceiling = ceiling


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """An encoded image as its header describes it.

    Attributes:
      format: Pillow's name of the format ('JPEG', 'MPO', 'PNG', 'GIF', 'BMP', ...).
      width, height: in pixels.
      frames: frames of a GIF when `read` was asked to count them, else 1.
      mode: Pillow's colour mode ('RGB', 'L', 'P', ...; `features.MODE_CHANNELS`).
      orientation: a JPEG's EXIF orientation (1-8); UPRIGHT (1) when it has none or
        for other formats.
    """
    format: str
    width: int
    height: int
    frames: int = 1
    mode: str = ''
    orientation: int = UPRIGHT

    @property
    def pixels(self) -> int:
        """What decoding costs: every frame is decoded."""
        return self.width * self.height * self.frames

    @property
    def upright_size(self) -> Tuple[int, int]:
        """(width, height) as the photo is shown: swapped when its EXIF orientation
        turns it by a quarter."""
        if self.orientation in QUARTER_TURNS:
            return self.height, self.width
        return self.width, self.height


def sniff_format(data: bytes) -> Optional[str]:
    """The format TensorFlow's decode_image would decode `data` as, or None."""
    for signature, name in TF_SIGNATURES:
        if data.startswith(signature):
            return name
    return None


def first_line(message: str) -> str:
    """A decoder's error message in one line: the first, without the '{{function_node
    ...}}' prefix and ' [Op:...]' suffix of TensorFlow's eager op errors."""
    line = message.strip().splitlines()[0] if message.strip() else 'unknown error'
    if line.startswith('{{') and '}}' in line:
        line = line.split('}}', 1)[1].strip()
    return line.split(' [Op:')[0]


def _truncated(name: str, data: bytes) -> str:
    return (f'{name} header with no image data after it: the file ends after {len(data)} '
            'bytes')


def _unidentified_reason(data: bytes) -> str:
    """Why Pillow could not open the bytes: what the decoder of the format whose
    signature they start with found, or that no format's signature is there."""
    Image.init()
    prefix = data[:16]
    for name, (factory, accept) in Image.OPEN.items():
        # As Image.open does, but only formats recognised by their signature.
        if accept is None or not accept(prefix):
            continue
        try:
            # Reads the header only (no pixels), as Image.open does.
            factory(io.BytesIO(data), '').close()
        except (EOFError, struct.error):
            return _truncated(name, data)
        except Exception as e:  # pylint: disable=broad-except
            if any(hint in str(e) for hint in _TRUNCATED_HINTS):
                return _truncated(name, data)
            return f'{name} signature, but its decoder found: {first_line(str(e))}'
    return 'not a readable image (no known image format in its bytes)'


def from_image(image: Image.Image) -> ImageHeader:
    """The header of an image Pillow has opened (frames are not counted: 1).

    Args:
      image: as `PIL.Image.open` returns it; nothing is decoded.
    """
    orientation = UPRIGHT
    if image.format in _ORIENTED_FORMATS:
        try:
            orientation = int(image.getexif().get(ExifTags.Base.Orientation, UPRIGHT))
        except Exception:  # pylint: disable=broad-except
            pass   # a malformed EXIF block says nothing about the pixels: shown as stored
        if orientation not in range(1, 9):
            orientation = UPRIGHT
    width, height = image.size
    return ImageHeader(image.format, int(width), int(height), mode=image.mode,
                       orientation=orientation)


def _read(data: bytes, formats: Optional[Sequence[str]], max_frames: Optional[int], *,
          refuse_warning: bool) -> ImageHeader:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('error' if refuse_warning else 'ignore',
                                  Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=formats) as image:
                header = from_image(image)
    except Image.DecompressionBombError as e:
        raise TooLargeError(f'image too large to decode safely: {e}',
                            2 * Image.MAX_IMAGE_PIXELS) from None
    except Image.DecompressionBombWarning as e:
        raise TooLargeError(f'image too large to decode safely: {e}',
                            Image.MAX_IMAGE_PIXELS) from None
    except Image.UnidentifiedImageError:
        raise BadImageError(_unidentified_reason(data)) from None
    except Exception as e:  # pylint: disable=broad-except
        # Pillow's plugins raise many types on malformed headers; each is this image's problem.
        raise BadImageError(f'not a readable image ({type(e).__name__}: {e})') from None
    if max_frames is not None and header.format == 'GIF':
        header = dataclasses.replace(header, frames=gif_frames(data, max_frames))
    return header


def read(data: bytes, *, formats: Optional[Sequence[str]] = None,
         max_frames: Optional[int] = None) -> ImageHeader:
    """The header of encoded image bytes; nothing is decoded.

    Pillow's decompression-bomb warning is not raised: the caller's own pixel limit
    decides, with its own message. Above Pillow's ceiling (twice its warning level)
    Pillow refuses to open the header at all.

    Args:
      data: the encoded bytes.
      formats: Pillow's names of the formats to try; None: every format Pillow knows.
      max_frames: count a GIF's frames, stopping once there are more than this many
        (the count is then max_frames + 1); None: frames are not counted (1).

    Returns:
      The header.

    Raises:
      TooLargeError: above Pillow's ceiling.
      BadImageError: Pillow cannot read a header; the reason says what the decoder of
        the signature the bytes start with found, or that there is none.
    """
    return _read(data, formats, max_frames, refuse_warning=False)


def checked(data: bytes, *, max_pixels: int = features.MAX_PIXELS) -> ImageHeader:
    """The header of an image the pipeline reads (ImageExampleGen, BulkInferrer).

    Args:
      data: a file's bytes.
      max_pixels: images with more pixels (width x height) are refused.

    Returns:
      The header; its format is one of `features.PIL_FORMATS`.

    Raises:
      BadImageError: empty, no readable header, a format TensorFlow does not decode,
        above Pillow's decompression-bomb warning level (PIL.Image.MAX_IMAGE_PIXELS,
        whatever max_pixels says) or more than max_pixels; the reason says which.
    """
    if not data:
        raise BadImageError('empty file (0 bytes)')
    # The pipeline's workers decode whole photos at once; Pillow's warning level is a
    # ceiling there too, as it has always been, even when max_pixels is set higher.
    header = _read(data, None, None, refuse_warning=True)
    if header.format not in features.PIL_FORMATS:
        raise BadImageError(f'unsupported image format {header.format}; expected JPEG, PNG, '
                            'BMP or GIF')
    pixels = header.width * header.height
    if pixels > max_pixels:
        raise BadImageError(f'image too large: {header.width}x{header.height} = {pixels} '
                            f'pixels > max_pixels {max_pixels}')
    return header


def gif_frames(data: bytes, max_frames: int) -> int:
    """Frames of a GIF, walking its blocks; stops once past max_frames.

    Pillow counts frames only all at once (n_frames) or by decoding each (seek), and
    a 32 MiB GIF can hold a million one-pixel frames.

    Returns:
      The frames (at least 1), or max_frames + 1 when there are more.
    """
    view = memoryview(data)
    size = len(view)
    # Header (6) + logical screen descriptor (7) + global colour table.
    position = 13
    if size >= 13 and view[10] & 0x80:
        position += 3 << ((view[10] & 0x07) + 1)
    frames = 0
    while position < size:
        block = view[position]
        position += 1
        if block == 0x3B:   # trailer
            break
        if block == 0x21:   # extension: label, then sub-blocks
            position += 1
        elif block == 0x2C:   # image descriptor, colour table, LZW code size
            frames += 1
            if frames > max_frames:
                break
            if position + 9 > size:
                break
            flags = view[position + 8]
            position += 9
            if flags & 0x80:
                position += 3 << ((flags & 0x07) + 1)
            position += 1
        else:
            break   # not a GIF block: the decoder says what is wrong
        while position < size and view[position]:
            position += view[position] + 1
        position += 1
    return max(frames, 1)
