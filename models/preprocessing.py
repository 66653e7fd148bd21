"""preprocessing_fn for Transform: encoded image bytes -> MobileNetV2 input.

decode, upright (the EXIF orientation applied: models/orientation.py) -> resize
(bilinear, what `image_dataset_from_directory` does) -> scale to [-1, 1] exactly as
`mobilenet_v2.preprocess_input`. No analyzers, so the
function also runs eagerly on a dict of tensors (tests do that). The Transform
graph is saved inside the served model, so clients send plain JPEG/PNG bytes.
"""

from typing import Any, Dict, Optional, Sequence

import tensorflow as tf

from models import features
from models import orientation


def decode_and_resize(image_bytes: tf.Tensor, image_size: Sequence[int]) -> tf.Tensor:
    """One encoded image (scalar string) -> float32 [height, width, 3] in [0, 255], upright."""
    image = orientation.decode_upright(image_bytes)
    image = tf.image.resize(image, image_size, method=tf.image.ResizeMethod.BILINEAR)
    return tf.ensure_shape(image, (*image_size, 3))


def scale_to_unit_range(images: tf.Tensor) -> tf.Tensor:
    """[0, 255] -> [-1, 1]: x / 127.5 - 1, MobileNetV2's preprocess_input."""
    return images / 127.5 - 1.0


def to_uint8(images: tf.Tensor) -> tf.Tensor:
    """[-1, 1] -> uint8 [0, 255], the inverse of scale_to_unit_range (rounded): 4x smaller
    to keep in memory."""
    return tf.cast(tf.round(tf.clip_by_value((images + 1.0) * 127.5, 0.0, 255.0)), tf.uint8)


def from_uint8(pixels: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1], as scale_to_unit_range."""
    return scale_to_unit_range(tf.cast(pixels, tf.float32))


def preprocess_images(image_bytes: tf.Tensor, image_size: Sequence[int]) -> tf.Tensor:
    """A batch of encoded images [N] -> float32 [N, height, width, 3] in [-1, 1]."""
    image_size = tuple(int(s) for s in image_size)
    images = tf.map_fn(lambda b: decode_and_resize(b, image_size), tf.reshape(image_bytes, [-1]),
                       fn_output_signature=tf.TensorSpec((*image_size, 3), tf.float32))
    return scale_to_unit_range(images)


def preprocessing_fn(inputs: Dict[str, tf.Tensor],
                     custom_config: Optional[Dict[str, Any]] = None) -> Dict[str, tf.Tensor]:
    """TFT entry point.

    Args:
      inputs: raw features; only the image (and the label, when present) are used.
      custom_config: {'image_size': [height, width]} from PipelineConfig.

    Returns:
      {image_xf: float32 [N, H, W, 3] in [-1, 1], label_xf: int64 [N] when labelled}.
    """
    image_size = (custom_config or {}).get('image_size', features.IMAGE_SIZE)
    outputs = {features.transformed_name(features.IMAGE_KEY):
               preprocess_images(inputs[features.IMAGE_KEY], image_size)}
    if features.LABEL_KEY in inputs:
        outputs[features.transformed_name(features.LABEL_KEY)] = tf.reshape(
            inputs[features.LABEL_KEY], [-1])
    return outputs
