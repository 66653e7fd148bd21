"""What images and the model's answers look like: one row per image, plus embeddings.

The same functions build the reference profile of the data a model was trained
and evaluated on (components/reference_profile) and the profile of the images a
served model is asked about (serving/monitor.py), so the two compare like with
like. Pure apart from decoding (TensorFlow's decoder, as the model's) and the
served model's `embedding` signature.

A row holds:
  bytes, width, height, aspect (width / height)  -- readable from the file header alone
                                                   (upright: models/orientation.py)
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
from models import orientation

# Row keys, by what is needed to compute them.
HEADER_KEYS = ('bytes', 'width', 'height', 'aspect')
IMAGE_KEYS = ('format', 'channels', 'brightness', 'contrast', 'saturation')
PREDICTION_KEYS = ('predicted', 'confidence')
CATEGORICAL_KEYS = ('format', 'predicted')

# The reference profile's file, in the ReferenceProfile artifact and in a pushed
# version's assets.extra/.
PROFILE_FILE = 'reference_profile.json'
EMBEDDING_DIMENSIONS = 16
# Train and eval images each in a reference profile (a 95% interval of +-4.4
# points on a class share; the model's pass over the eval ones is most of the
# profile's cost).
REFERENCE_IMAGES = 500
# Images are shrunk to at most this side before the pixel statistics (JPEGs are
# decoded at a reduced scale directly): means and spreads barely change, and a
# 500x375 photo costs 0.8 ms instead of 4 ms at full size.
_STATS_SIDE = 128
# Pillow's modes of 16-bit grey PNGs, brought to 8 bits (x / 257) as TensorFlow's decoder does.
_WIDE_MODES = ('I;16', 'I;16B', 'I;16L', 'I')


def header_row(width: Optional[int], height: Optional[int], size: int) -> Dict[str, Any]:
    """The row parts known without decoding: byte size, width, height, aspect."""
    aspect = width / height if width and height else None
    return {'bytes': size, 'width': width, 'height': height, 'aspect': aspect}


def image_row(data: bytes) -> Dict[str, Any]:
    """Header and pixel statistics of one encoded image (no model).

    Decoded by Pillow as RGB (first frame of an animation, alpha dropped, grey
    repeated: what the model sees), shrunk to at most _STATS_SIDE a side; luma
    with ITU-R BT.601 weights (Pillow's 'L'), saturation as HSV's S (Pillow's
    'HSV'); both computed by Pillow's C code, in [0, 1].
    """
    from PIL import Image, ImageStat  # pylint: disable=import-outside-toplevel
    with Image.open(io.BytesIO(data)) as image:
        fmt, (width, height), mode = image.format, orientation.upright_size(image), image.mode
        image.draft('RGB', (_STATS_SIDE, _STATS_SIDE))
        if mode in _WIDE_MODES:
            image = image.point(lambda value: value / 257).convert('L')
        rgb = image.convert('RGB')
    rgb.thumbnail((_STATS_SIDE, _STATS_SIDE))
    luma = ImageStat.Stat(rgb.convert('L'))
    saturation = ImageStat.Stat(rgb.convert('HSV').getchannel('S'))
    row = header_row(width, height, len(data))
    row.update(format=features.PIL_FORMATS.get(fmt, str(fmt).lower()),
               channels=features.MODE_CHANNELS.get(mode, 3),
               brightness=luma.mean[0] / 255, contrast=luma.stddev[0] / 255,
               saturation=saturation.mean[0] / 255)
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
