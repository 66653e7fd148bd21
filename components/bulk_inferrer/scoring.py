"""Scoring encoded images with a model directory: the served signature, in batches.

`Scorer` runs a SavedModel's `serving_default` (image bytes -> probabilities) exactly
as a server does, so the answers are the served model's. A batch holding an image the
signature cannot decode is split in halves until the bad images are alone: each gets
the decoder's reason, the others their answers. BulkInferrer uses it on a folder;
anything that needs "the model's answers for these images, in-process" (an
InfraValidator checking a server's answers, say) can use `Scorer.score` as it is.

Decoding stays inside the signature: decoding the next batch in another thread
(with the model's transform_features) while the model ran on pixels was slower on
2 cores, measured side by side (docs/benchmarks.md).
"""

import os
from typing import List, Sequence, Union

import numpy as np
import tensorflow as tf

from models import export
from models import features

# What a SavedModel folder holds, and the Trainer's subfolder holding it in its artifact.
SAVED_MODEL_FILE = 'saved_model.pb'
TRAINER_SERVING_DIR = 'Format-Serving'
_DECODE_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.UnknownError)

Answer = Union[np.ndarray, str]     # probabilities [classes], or why there are none


def resolve_model_dir(path: str) -> str:
    """The SavedModel folder a path names: the folder itself, a Trainer's model artifact
    (its Format-Serving/), or a serving base folder (its highest integer version, as TF
    Serving's default version policy picks).

    Raises:
      ValueError: no SavedModel found there, with what was looked for.
    """
    if tf.io.gfile.exists(os.path.join(path, SAVED_MODEL_FILE)):
        return path
    trainer = os.path.join(path, TRAINER_SERVING_DIR)
    if tf.io.gfile.exists(os.path.join(trainer, SAVED_MODEL_FILE)):
        return trainer
    if tf.io.gfile.isdir(path):
        versions = sorted((int(name.rstrip('/')) for name in tf.io.gfile.listdir(path)
                           if name.rstrip('/').isdigit()
                           and tf.io.gfile.exists(os.path.join(path, name.rstrip('/'),
                                                               SAVED_MODEL_FILE))),
                          reverse=True)
        if versions:
            return os.path.join(path, str(versions[0]))
    raise ValueError(f'no SavedModel in {path}: expected {SAVED_MODEL_FILE} there, in '
                     f'{TRAINER_SERVING_DIR}/ (a Trainer\'s model) or in integer version '
                     'folders (a serving base folder)')


def decode_reason(image: bytes) -> str:
    """Why TensorFlow's decoder (the one the model's Transform graph runs) refuses an image."""
    try:
        tf.io.decode_image(image, channels=3, expand_animations=False)
    except _DECODE_ERRORS as e:
        line = (e.message.strip().splitlines() or ['unknown error'])[0]
        # Eager ops prefix the reason with '{{function_node ...}} ' and end it with ' [Op:...]'.
        if line.startswith('{{') and '}}' in line:
            line = line.split('}}', 1)[1].strip()
        return f'cannot decode: {line.split(" [Op:")[0]}'
    return 'cannot decode: the model\'s preprocessing failed on it'


class Scorer:
    """A model directory's answers for encoded images."""

    def __init__(self, model_dir: str):
        """Loads the SavedModel at model_dir (resolve_model_dir finds it in other folders).

        Raises:
          ValueError: the model has no serving signature or no class names file.
        """
        self.model_dir = model_dir
        self._loaded = tf.saved_model.load(model_dir)   # owns the signature's variables
        if features.SERVING_SIGNATURE not in self._loaded.signatures:
            raise ValueError(f'{model_dir} has no {features.SERVING_SIGNATURE!r} signature')
        self._serve = self._loaded.signatures[features.SERVING_SIGNATURE]
        names = os.path.join(model_dir, export.CLASS_NAMES_FILE)
        if not tf.io.gfile.exists(names):
            raise ValueError(f'{model_dir} has no {export.CLASS_NAMES_FILE} (the class names)')
        with tf.io.gfile.GFile(names) as f:
            self.class_names = [line.rstrip('\n') for line in f if line.rstrip('\n')]

    def probabilities(self, images: Sequence[bytes]) -> np.ndarray:
        """[len(images), classes] from serving_default in one call.

        Raises:
          tf.errors.InvalidArgumentError: an image the signature cannot decode.
        """
        return self._serve(**{features.SERVING_INPUT: tf.constant(list(images))})[
            features.PROBABILITIES_OUTPUT].numpy()

    def score(self, images: Sequence[bytes]) -> List[Answer]:
        """Per image, its probabilities [classes] or why it could not be scored."""
        if not images:
            return []
        try:
            return list(self.probabilities(images))
        except _DECODE_ERRORS:
            if len(images) == 1:
                return [decode_reason(images[0])]
        half = len(images) // 2
        return self.score(images[:half]) + self.score(images[half:])
