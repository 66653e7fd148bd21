"""What a request may send, checked before anything is built or decoded.

Pure functions over what the transports hand the core:

- `array_from_tensor_proto`: a gRPC TensorProto becomes an array only once its
  shape is sane (no negative or unknown dimension, at most
  `limits.MAX_TENSOR_RANK` of them), it declares at most
  `--max_tensor_elements`, and the values sent fit it. TensorFlow pads a
  tensor whose typed field (float_val, string_val, ...) holds fewer values
  than its shape asks for; a 40-byte request declaring 2^31 strings would
  otherwise be padded to that size before anything looked at it.
- `image_header`: the format, size and frame count of an image, read from its
  header (Pillow opens lazily), for the string values TensorFlow's
  `decode_image` would decode; `images_in_arrays` / `images_in_examples`
  apply the per-image and per-request pixel caps to a request.
- `count_instances`: the request's batch size, for `--max_instances_per_request`.
- `PixelBudget`: the pixels the whole server decodes at once.

Every refusal is a ServingError (INVALID_ARGUMENT unless said otherwise) that
names the input and says which limit and flag it crossed.
"""

import dataclasses
import io
import threading
import time
import warnings
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np
from PIL import Image
from tensorflow.core.framework import types_pb2

from serving import errors
from serving import limits as limits_lib

# The typed field of a TensorProto that holds each dtype's values, and how many
# entries of it one element takes.
_VALUE_FIELDS = {
    types_pb2.DT_FLOAT: ('float_val', 1), types_pb2.DT_DOUBLE: ('double_val', 1),
    types_pb2.DT_INT32: ('int_val', 1), types_pb2.DT_INT16: ('int_val', 1),
    types_pb2.DT_INT8: ('int_val', 1), types_pb2.DT_UINT8: ('int_val', 1),
    types_pb2.DT_UINT16: ('int_val', 1), types_pb2.DT_INT64: ('int64_val', 1),
    types_pb2.DT_UINT32: ('uint32_val', 1), types_pb2.DT_UINT64: ('uint64_val', 1),
    types_pb2.DT_BOOL: ('bool_val', 1), types_pb2.DT_STRING: ('string_val', 1),
    types_pb2.DT_HALF: ('half_val', 1), types_pb2.DT_BFLOAT16: ('half_val', 1),
    types_pb2.DT_COMPLEX64: ('scomplex_val', 2),
    types_pb2.DT_COMPLEX128: ('dcomplex_val', 2),
}
_ITEM_BYTES = {
    types_pb2.DT_FLOAT: 4, types_pb2.DT_DOUBLE: 8, types_pb2.DT_INT32: 4,
    types_pb2.DT_INT16: 2, types_pb2.DT_INT8: 1, types_pb2.DT_UINT8: 1,
    types_pb2.DT_UINT16: 2, types_pb2.DT_INT64: 8, types_pb2.DT_UINT32: 4,
    types_pb2.DT_UINT64: 8, types_pb2.DT_BOOL: 1, types_pb2.DT_HALF: 2,
    types_pb2.DT_BFLOAT16: 2, types_pb2.DT_COMPLEX64: 8,
    types_pb2.DT_COMPLEX128: 16,
}


def _dtype_name(dtype: int) -> str:
    try:
        return types_pb2.DataType.Name(dtype)[len('DT_'):].lower()
    except ValueError:
        return f'type_{dtype}'


def _shape_text(dims: Sequence[int]) -> str:
    return '[' + ','.join(str(d) for d in dims) + ']'


def declared_shape(name: str, proto, limits: limits_lib.Limits) -> tuple:
    """The shape a TensorProto declares, checked.

    Raises:
      ServingError: INVALID_ARGUMENT for an unknown rank, a negative dimension,
        too many dimensions or more elements than --max_tensor_elements.
    """
    if proto.tensor_shape.unknown_rank:
        raise errors.invalid_argument(
            f'input {name!r}: tensor_shape has an unknown rank').with_hint(
                'a request tensor needs its full shape.')
    dims = tuple(int(d.size) for d in proto.tensor_shape.dim)
    if len(dims) > limits_lib.MAX_TENSOR_RANK:
        raise errors.invalid_argument(
            f'input {name!r}: tensor_shape has {len(dims)} dimensions; at most '
            f'{limits_lib.MAX_TENSOR_RANK} are supported')
    negative = [d for d in dims if d < 0]
    if negative:
        raise errors.invalid_argument(
            f'input {name!r}: tensor_shape {_shape_text(dims)} has a negative '
            f'dimension ({negative[0]})').with_hint(
                'every dimension of a request tensor is a size >= 0.')
    elements = 1
    for dim in dims:
        elements *= dim
    if elements > limits.max_tensor_elements:
        raise errors.invalid_argument(
            f'input {name!r}: tensor_shape {_shape_text(dims)} declares '
            f'{elements} elements, more than the limit of '
            f'{limits.max_tensor_elements} (--max_tensor_elements)').with_hint(
                'send fewer instances per request.')
    return dims


def array_from_tensor_proto(name: str, proto, limits: limits_lib.Limits
                            ) -> np.ndarray:
    """A request TensorProto as an array, once its shape and values are checked.

    TensorFlow's own rule is kept for short typed fields: fewer values than the
    shape asks for are padded with the last one (so `make_tensor_proto(2.0,
    shape=[3])` works), but only up to --max_tensor_elements. More values than
    the shape holds, and `tensor_content` of the wrong length, are refused.

    Raises:
      ServingError: INVALID_ARGUMENT naming the input.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    dims = declared_shape(name, proto, limits)
    elements = 1
    for dim in dims:
        elements *= dim
    dtype = proto.dtype
    if proto.tensor_content:
        item = _ITEM_BYTES.get(dtype)
        if item is None:
            raise errors.invalid_argument(
                f'input {name!r}: tensor_content is not allowed for '
                f'{_dtype_name(dtype)} tensors').with_hint(
                    'send strings in string_val.')
        if len(proto.tensor_content) != elements * item:
            raise errors.invalid_argument(
                f'input {name!r}: tensor_content holds '
                f'{len(proto.tensor_content)} bytes, but shape '
                f'{_shape_text(dims)} of {_dtype_name(dtype)} needs '
                f'{elements * item}')
    else:
        field = _VALUE_FIELDS.get(dtype)
        if field is not None:
            sent = len(getattr(proto, field[0])) // field[1]
            if sent > elements:
                raise errors.invalid_argument(
                    f'input {name!r}: {sent} values sent for shape '
                    f'{_shape_text(dims)}, which holds {elements}').with_hint(
                        'set tensor_shape to the shape of the values.')
    try:
        return tf.make_ndarray(proto)
    except (ValueError, TypeError) as error:
        raise errors.invalid_argument(
            f'Malformed TensorProto for input {name!r}: {error}') from None


# ------------------------------------------------------------------ images

# The leading bytes by which TensorFlow's decode_image recognizes a format
# (tensorflow/core/kernels/image/decode_image_op.cc), and Pillow's name for it.
_MAGIC = ((b'\xff\xd8\xff', 'JPEG'), (b'\x89PNG\r\n\x1a\n', 'PNG'),
          (b'GIF87a', 'GIF'), (b'GIF89a', 'GIF'), (b'BM', 'BMP'))
_PIL_FORMATS = ['JPEG', 'PNG', 'GIF', 'BMP']
_RESIZE_HINT = ('resize the image before sending it; the model uses a few '
                'hundred pixels a side.')


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """An encoded image as its header describes it."""
    format: str
    width: int
    height: int
    frames: int

    @property
    def pixels(self) -> int:
        """What decoding costs: every frame is decoded."""
        return self.width * self.height * self.frames


def sniff_format(data: bytes) -> Optional[str]:
    """The format TensorFlow would decode `data` as, or None."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return None


def image_header(data: bytes, limits: limits_lib.Limits) -> Optional[ImageHeader]:
    """The header of an image TensorFlow would decode, or None for other bytes.

    Raises:
      ServingError: INVALID_ARGUMENT for a JPEG, PNG or GIF whose header cannot
        be read (TensorFlow would not decode it either) or that has more frames
        than --max_image_frames. (Bytes that merely start with 'BM' may be any
        string, so an unreadable BMP header is left to the model.)
    """
    kind = sniff_format(data)
    if kind is None:
        return None
    try:
        with warnings.catch_warnings():
            # Our own caps decide, with their own message.
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=_PIL_FORMATS) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        # Above Pillow's own ceiling (2 x Image.MAX_IMAGE_PIXELS; the server
        # raises it to --max_image_pixels when that is higher): over ours too.
        raise errors.invalid_argument(
            f'{kind} of more than {2 * Image.MAX_IMAGE_PIXELS} pixels, more '
            f'than the limit of {limits.max_image_pixels} pixels per image '
            '(--max_image_pixels)').with_hint(_RESIZE_HINT) from None
    except Exception as error:  # pylint: disable=broad-except
        if kind == 'BMP':
            return None
        raise errors.invalid_argument(
            f'not a readable {kind} image: {type(error).__name__}: '
            f'{error}') from None
    frames = _gif_frames(data, limits) if kind == 'GIF' else 1
    return ImageHeader(kind, width, height, frames)


def _gif_frames(data: bytes, limits: limits_lib.Limits) -> int:
    """Frames of a GIF, walking its blocks and stopping past --max_image_frames.

    Pillow counts frames only all at once (n_frames) or by decoding each
    (seek), and a 32 MiB GIF can hold a million one-pixel frames.

    Raises:
      ServingError: INVALID_ARGUMENT past the frame limit.
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
            if frames > limits.max_image_frames:
                raise errors.invalid_argument(
                    f'GIF with more than {limits.max_image_frames} frames '
                    '(--max_image_frames)').with_hint(
                        'send one frame (e.g. the first) as a PNG or JPEG.')
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


def _check_image(data: bytes, where: str, limits: limits_lib.Limits) -> int:
    """Pixels decoding `data` costs (0 if it is not an image), checked."""
    try:
        header = image_header(data, limits)
    except errors.ServingError as error:
        raise errors.ServingError(error.code, f'{where}: {error.message}') from None
    if header is None:
        return 0
    if header.pixels > limits.max_image_pixels:
        frames = f' x {header.frames} frames' if header.frames > 1 else ''
        raise errors.invalid_argument(
            f'{where}: {header.format} of {header.width}x{header.height}'
            f'{frames} = {header.pixels} pixels, more than the limit of '
            f'{limits.max_image_pixels} pixels per image (--max_image_pixels)'
        ).with_hint(_RESIZE_HINT)
    return header.pixels


def _check_total(total: int, limits: limits_lib.Limits) -> int:
    if total > limits.max_request_pixels:
        raise errors.invalid_argument(
            f'the images of this request hold {total} pixels, more than the '
            f'limit of {limits.max_request_pixels} pixels per request '
            '(--max_request_pixels)').with_hint(
                'send fewer or smaller images per request.')
    return total


def images_in_arrays(inputs: Mapping[str, np.ndarray],
                     limits: limits_lib.Limits) -> int:
    """Checks every image among the string inputs; returns their pixels.

    Raises:
      ServingError: INVALID_ARGUMENT naming the input and the value's index.
    """
    total = 0
    for name in sorted(inputs):
        array = inputs[name]
        if array.dtype != object:
            continue
        for index, value in enumerate(array.reshape(-1)):
            if isinstance(value, (bytes, bytearray, memoryview)):
                where = (f'input {name!r}' if array.ndim == 0 else
                         f'input {name!r} value {index}')
                total += _check_image(bytes(value), where, limits)
                _check_total(total, limits)
    return total


def images_in_examples(serialized: Iterable[bytes],
                       limits: limits_lib.Limits) -> int:
    """Checks every image among the bytes features of serialized Examples.

    Raises:
      ServingError: INVALID_ARGUMENT naming the example and the feature.
    """
    from tensorflow.core.example import example_pb2  # pylint: disable=import-outside-toplevel
    total = 0
    for index, data in enumerate(serialized):
        if not any(magic in data for magic, _ in _MAGIC[:4]):
            continue   # no JPEG, PNG or GIF anywhere in it (BMPs are small)
        example = example_pb2.Example()
        try:
            example.ParseFromString(data)
        except Exception:  # pylint: disable=broad-except
            continue   # the model's parser says what is wrong with it
        for key, feature in sorted(example.features.feature.items()):
            for value in feature.bytes_list.value:
                total += _check_image(value, f'example {index} feature {key!r}',
                                      limits)
                _check_total(total, limits)
    return total


def count_instances(inputs: Mapping[str, np.ndarray]) -> int:
    """The batch size of a request: the largest first dimension (1 for scalars)."""
    sizes = [array.shape[0] for array in inputs.values() if np.ndim(array) >= 1]
    return max(sizes) if sizes else 1


def check_instances(count: int, limits: limits_lib.Limits) -> None:
    """Raises INVALID_ARGUMENT above --max_instances_per_request."""
    if count > limits.max_instances_per_request:
        raise errors.invalid_argument(
            f'{count} instances in one request, more than the limit of '
            f'{limits.max_instances_per_request} (--max_instances_per_request)'
        ).with_hint('split the request; the server runs at most '
                    f'{limits.max_instances_per_call} instances at a time '
                    'anyway.')


class PixelBudget:
    """The pixels the server decodes at once, shared by all requests."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._in_use = 0
        self._cond = threading.Condition()

    def acquire(self, pixels: int, deadline: Optional[float]) -> None:
        """Waits until `pixels` fit (or nothing else runs), or the deadline.

        Raises:
          ServingError: DEADLINE_EXCEEDED if the deadline passes while waiting.
        """
        if pixels <= 0:
            return
        with self._cond:
            while self._in_use and self._in_use + pixels > self.capacity:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise errors.ServingError(
                        errors.Code.DEADLINE_EXCEEDED,
                        'Deadline Exceeded while waiting for other requests\' '
                        'images to be decoded (--max_pixels_in_flight)')
                self._cond.wait(left)
            self._in_use += pixels

    def release(self, pixels: int) -> None:
        """Returns what acquire took."""
        if pixels <= 0:
            return
        with self._cond:
            self._in_use -= pixels
            self._cond.notify_all()

    @property
    def in_use(self) -> int:
        """Pixels being decoded now."""
        with self._cond:
            return self._in_use
