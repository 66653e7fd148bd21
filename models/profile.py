"""What images and the model's answers look like: one row per image.

The same functions build the reference profile of the data a model was trained
and evaluated on (components/reference_profile) and the profile of the images a
served model is asked about (monitoring/monitor.py), so the two compare like with
like. Pure apart from decoding (Pillow) and the served model's `embedding`
signature.

A row holds:
  bytes, width, height, aspect (width / height)  -- readable from the file header alone
  format, channels                              -- from the header (models/image_header.py;
                                                   width and height upright by its EXIF orientation)
  brightness, contrast                          -- mean and standard deviation of the
                                                   luma of the decoded image, in [0, 1]
  saturation                                    -- mean HSV saturation, in [0, 1] (0: grey)
  predicted, confidence                         -- the model's class and max probability
  embedding                                     -- the model's embedding of the image,
                                                   on the profile's random projection

A profile (reference_profile.json) holds the rows of a sample of the train and
eval images, with `split`; the answers only on eval rows (the model learnt the
train images, so its answers on them are too confident); embeddings on eval
rows, and on train rows too when the embedding does not depend on training (a
frozen base); `projection`, the matrix the embeddings are projected with; and
EMBEDDINGS_FROM, where the answers and embeddings came from: FROM_MODEL (the model's
embedding signature over the sample) or FROM_FROZEN_FEATURES (DataQuality's frozen
features and the Trainer's eval answers, the same numbers up to the frozen base's
TFLite rounding: components/reference_profile/reuse.py).
"""

import io
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from models import features
from models import image_header

# Row keys, by what is needed to compute them.
HEADER_KEYS = ('bytes', 'width', 'height', 'aspect')
IMAGE_KEYS = ('format', 'channels', 'brightness', 'contrast', 'saturation')
PREDICTED, CONFIDENCE = 'predicted', 'confidence'
PREDICTION_KEYS = (PREDICTED, CONFIDENCE)
EMBEDDING = 'embedding'
SPLIT = 'split'
EMBEDDINGS_FROM = 'embeddings_from'
FROM_MODEL, FROM_FROZEN_FEATURES = 'model', 'frozen_features'
# Keys whose values are categories, not quantities.
CATEGORICAL_KEYS = ('format', 'channels', PREDICTED)

# The reference profile's file, in the ReferenceProfile artifact and in a pushed
# version's assets.extra/.
PROFILE_FILE = 'reference_profile.json'
# Numbers an embedding is projected to (random_projection).
EMBEDDING_DIMENSIONS = 32
# Train and eval images each in a reference profile (a 95% interval of +-4.4
# points on a class share; the model's pass over them is most of the profile's cost).
REFERENCE_IMAGES = 500
# Images per call of the embedding signature: large enough that the model's own
# chunks stay full, small enough that a call's memory stays small.
MODEL_BATCH = 64
# Images are shrunk to at most this side before the pixel statistics (JPEGs are
# decoded at a reduced scale directly): means and spreads barely change, and a photo
# costs a fraction of its full-size time (docs/scale.md, ReferenceProfile).
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

    Raises:
      PIL.UnidentifiedImageError, OSError: when Pillow cannot read the bytes.
    """
    from PIL import Image, ImageStat  # pylint: disable=import-outside-toplevel
    with Image.open(io.BytesIO(data)) as image:
        header = image_header.from_image(image)
        fmt, (width, height), mode = header.format, header.upright_size, header.mode
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
                  batch_size: int = MODEL_BATCH) -> Tuple[np.ndarray, np.ndarray]:
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
    return [{PREDICTED: class_names[int(np.argmax(p))], CONFIDENCE: float(np.max(p))}
            for p in probabilities]


def random_projection(width: int, dimensions: int = EMBEDDING_DIMENSIONS,
                      seed: int = 0) -> np.ndarray:
    """A fixed random basis [width, dimensions] for embeddings of `width` numbers.

    Chosen without looking at any image, so the reference's embeddings and the
    traffic's are treated alike (a basis fitted to the reference, as PCA's, spreads
    the reference more than any new image, and clean traffic looks drifted);
    distances between embeddings are kept up to a small factor (Johnson-Lindenstrauss).
    """
    rng = np.random.default_rng(seed)
    return rng.normal(size=(width, dimensions)) / np.sqrt(dimensions)


def project(embeddings: np.ndarray, projection: Sequence[Sequence[float]]) -> np.ndarray:
    """Embeddings [N, width] on the profile's projection -> [N, dimensions]."""
    return np.asarray(embeddings, dtype=np.float64) @ np.asarray(projection, dtype=np.float64)


def save(profile: Dict[str, Any], path: str) -> None:
    """Writes a profile as JSON (tf.io.gfile, so gs:// works)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    with tf.io.gfile.GFile(path, 'w') as f:
        json.dump(profile, f)


def load(path: str) -> Dict[str, Any]:
    """Reads a profile written by `save`.

    A profile of the first layout (the eval rows' embeddings on principal axes
    fitted to those same rows, in one list beside the rows) is read without its
    embeddings: on such axes clean traffic looks drifted.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    with tf.io.gfile.GFile(path) as f:
        profile = json.load(f)
    profile.pop(EMBEDDING, None)
    profile.setdefault('projection', None)
    return profile
