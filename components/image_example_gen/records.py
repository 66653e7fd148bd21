"""Pure functions: one image file -> one tf.train.Example, or a reason it is bad.

Decoding uses `tf.io.decode_image`, the decoder Transform and serving use, so a
file accepted here is a file the model can read. Pillow only reads the header
(format, size, colour mode) before that, to refuse decompression bombs cheaply.
"""

import dataclasses
import hashlib
import io
import struct
import warnings
from typing import Sequence

import tensorflow as tf
from PIL import Image

from models import features


# Pillow's words for bytes that end before the decoder has read what it needs.
_TRUNCATED_HINTS = ('buffer', 'truncated', 'Truncated', 'not enough data')


class BadImageError(ValueError):
    """A file that cannot be used as an image; `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ChangedFileError(RuntimeError):
    """An image whose bytes changed between two reads of one run."""


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What we learn about an image file while validating it."""
    height: int
    width: int
    channels: int
    format: str
    sha256: str


def _first_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else 'unknown error'
    # TF prefixes op errors with '{{function_node ...}} '; the rest is the reason.
    if line.startswith('{{') and '}}' in line:
        line = line.split('}}', 1)[1].strip()
    return line.split(' [Op:')[0]


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
            return f'{name} signature, but its decoder found: {_first_line(str(e))}'
    return 'not a readable image (no known image format in its bytes)'


def _truncated(name: str, data: bytes) -> str:
    return (f'{name} header with no image data after it: the file ends after {len(data)} '
            'bytes')


def inspect_image(data: bytes, *, max_pixels: int = features.MAX_PIXELS) -> ImageInfo:
    """Validates encoded image bytes by decoding them fully.

    Args:
      data: the file's bytes.
      max_pixels: images with more pixels are refused before decoding.

    Returns:
      ImageInfo with the decoded size, source channels, format and sha256.

    Raises:
      BadImageError: empty, not an image, unsupported format, too large, or
        not decodable (e.g. truncated).
    """
    if not data:
        raise BadImageError('empty file (0 bytes)')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:
                fmt, (width, height), mode = header.format, header.size, header.mode
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImageError(f'image too large to decode safely: {e}') from None
    except Image.UnidentifiedImageError:
        raise BadImageError(_unidentified_reason(data)) from None
    except Exception as e:  # pylint: disable=broad-except
        raise BadImageError(f'not a readable image ({type(e).__name__}: {e})') from None
    if fmt not in features.PIL_FORMATS:
        raise BadImageError(f'unsupported image format {fmt}; expected JPEG, PNG, BMP or GIF')
    if width * height > max_pixels:
        raise BadImageError(
            f'image too large: {width}x{height} = {width * height} pixels > max_pixels {max_pixels}')
    try:
        decoded = tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
        raise BadImageError(f'cannot decode {features.PIL_FORMATS[fmt].upper()}: {_first_line(e.message)}') from None
    h, w = int(decoded.shape[0]), int(decoded.shape[1])
    return ImageInfo(height=h, width=w, channels=features.MODE_CHANNELS.get(mode, 3),
                     format=features.PIL_FORMATS[fmt], sha256=hashlib.sha256(data).hexdigest())


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def make_example(data: bytes, rel_path: str, label: int, class_names: Sequence[str],
                 info: ImageInfo) -> tf.train.Example:
    """Builds the tf.train.Example for one validated image.

    Args:
      data: encoded bytes, stored exactly as read.
      rel_path: path relative to the data root.
      label: index into class_names.
      class_names: class names.
      info: the result of `inspect_image(data)`.

    Returns:
      The Example with every key of `features.RAW_FEATURE_KEYS`.
    """
    feature = {
        features.IMAGE_KEY: _bytes(data),
        features.LABEL_KEY: _int(label),
        features.LABEL_NAME_KEY: _bytes(class_names[label].encode()),
        features.PATH_KEY: _bytes(rel_path.encode()),
        features.HEIGHT_KEY: _int(info.height),
        features.WIDTH_KEY: _int(info.width),
        features.CHANNELS_KEY: _int(info.channels),
        features.FORMAT_KEY: _bytes(info.format.encode()),
        features.SHA256_KEY: _bytes(info.sha256.encode()),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))
