"""Pure functions: one image file -> one tf.train.Example, or a reason it is bad.

Decoding uses `tf.io.decode_image`, the decoder Transform and serving use, so a
file accepted here is a file the model can read. The header (format, size, colour
mode: models/image_header.py) is read before that, to refuse decompression bombs
cheaply.
"""

import dataclasses
import hashlib
from typing import Sequence

import tensorflow as tf

from models import features
from models import image_header


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


def inspect_image(data: bytes, *, max_pixels: int = features.MAX_PIXELS) -> ImageInfo:
    """Validates encoded image bytes by decoding them fully.

    Args:
      data: the file's bytes.
      max_pixels: images with more pixels are refused before decoding.

    Returns:
      ImageInfo with the decoded size, source channels, format and sha256.

    Raises:
      image_header.BadImageError: empty, not an image, unsupported format, too
        large, or not decodable (e.g. truncated).
    """
    header = image_header.checked(data, max_pixels=max_pixels)
    fmt = features.PIL_FORMATS[header.format]
    try:
        decoded = tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
        raise image_header.BadImageError(
            f'cannot decode {fmt.upper()}: {image_header.first_line(e.message)}') from None
    h, w = int(decoded.shape[0]), int(decoded.shape[1])
    return ImageInfo(height=h, width=w, channels=features.MODE_CHANNELS.get(header.mode, 3),
                     format=fmt, sha256=hashlib.sha256(data).hexdigest())


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
