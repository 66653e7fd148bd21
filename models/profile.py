"""What images and the model's answers look like: one row per image, plus embeddings.

The same functions build the reference profile of the data a model was trained
and evaluated on (components/reference_profile) and the profile of the images a
served model is asked about (serving/monitor.py), so the two compare like with
like. Pure apart from decoding (TensorFlow's decoder, as the model's) and the
served model's `embedding` signature.

A row holds:
  bytes, width, height, aspect (width / height)  -- readable from the file header alone
  format, channels                              -- from the header (Pillow)
  brightness, contrast                          -- mean and standard deviation of the
                                                   luma of the decoded image, in [0, 1]
  saturation                                    -- mean HSV saturation, in [0, 1] (0: grey)
  predicted, confidence                         -- the model's class and max probability
"""

import io
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from models import features

# Row keys, by what is needed to compute them.
HEADER_KEYS = ('bytes', 'width', 'height', 'aspect')
IMAGE_KEYS = ('format', 'channels', 'brightness', 'contrast', 'saturation')
PREDICTION_KEYS = ('predicted', 'confidence')
CATEGORICAL_KEYS = ('format', 'predicted')

# The reference profile's file, in the ReferenceProfile artifact and in a pushed
# version's assets.extra/.
PROFILE_FILE = 'reference_profile.json'
EMBEDDING_DIMENSIONS = 16
# Luma weights of ITU-R BT.601 (what PIL's 'L' mode uses).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Images are shrunk to at most this side before brightness and contrast: the
# statistics barely change and large photos decode no slower than small ones.
_STATS_SIDE = 256


def header_row(width: Optional[int], height: Optional[int], size: int) -> Dict[str, Any]:
    """The row parts known without decoding: byte size, width, height, aspect."""
    aspect = width / height if width and height else None
    return {'bytes': size, 'width': width, 'height': height, 'aspect': aspect}


def image_row(data: bytes) -> Dict[str, Any]:
    """Header and pixel statistics of one encoded image (no model)."""
    from PIL import Image  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    with Image.open(io.BytesIO(data)) as header:
        fmt, (width, height), mode = header.format, header.size, header.mode
    row = header_row(width, height, len(data))
    pixels = tf.io.decode_image(data, channels=3, expand_animations=False)
    scale = min(1.0, _STATS_SIDE / max(width, height))
    if scale < 1.0:
        pixels = tf.image.resize(pixels, (max(1, round(height * scale)),
                                          max(1, round(width * scale))), antialias=True)
    rgb = tf.cast(pixels, tf.float32).numpy() / 255.0
    luma = rgb @ _LUMA
    top, bottom = rgb.max(axis=-1), rgb.min(axis=-1)
    saturation = np.where(top > 0, (top - bottom) / np.maximum(top, 1e-6), 0.0)
    row.update(format=features.PIL_FORMATS.get(fmt, str(fmt).lower()),
               channels=features.MODE_CHANNELS.get(mode, 3),
               brightness=float(luma.mean()), contrast=float(luma.std()),
               saturation=float(saturation.mean()))
    return row


def model_outputs(embedding_signature, images: Sequence[bytes],
                  batch_size: int = 32) -> Tuple[np.ndarray, np.ndarray]:
    """(probabilities [N, K], embeddings [N, D]) from a served model's embedding signature."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    probabilities, embeddings = [], []
    for start in range(0, len(images), batch_size):
        out = embedding_signature(**{features.SERVING_INPUT: tf.constant(
            list(images[start:start + batch_size]))})
        probabilities.append(out[features.PROBABILITIES_OUTPUT].numpy())
        embeddings.append(out[features.EMBEDDING_OUTPUT].numpy())
    if not probabilities:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    return np.concatenate(probabilities), np.concatenate(embeddings)


def prediction_fields(probabilities: np.ndarray,
                      class_names: Sequence[str]) -> List[Dict[str, Any]]:
    """predicted (class name) and confidence (max probability) per row of probabilities."""
    return [{'predicted': class_names[int(np.argmax(p))], 'confidence': float(np.max(p))}
            for p in probabilities]


def fit_pca(embeddings: np.ndarray, dimensions: int = EMBEDDING_DIMENSIONS) -> Dict[str, Any]:
    """Mean and principal axes of the reference embeddings (rows are images)."""
    mean = embeddings.mean(axis=0)
    _, _, axes = np.linalg.svd(embeddings - mean, full_matrices=False)
    return {'mean': mean.tolist(), 'components': axes[:min(dimensions, len(axes))].tolist()}


def reduce(embeddings: np.ndarray, pca: Dict[str, Any]) -> np.ndarray:
    """Embeddings projected on the reference's principal axes."""
    return (embeddings - np.asarray(pca['mean'])) @ np.asarray(pca['components']).T


def save(profile: Dict[str, Any], path: str) -> None:
    """Writes a profile as JSON (tf.io.gfile, so gs:// works)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    with tf.io.gfile.GFile(path, 'w') as f:
        json.dump(profile, f)


def load(path: str) -> Dict[str, Any]:
    """Reads a profile written by `save`."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
