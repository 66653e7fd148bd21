"""The trained model's answers on the eval split, written by the Trainer beside its history.

The Trainer has them for free: the transfer model's head on the eval features
it already computed for validation (FrozenFeatureValidation), otherwise one
pass over the eval split it already decoded. The run report's Errors section
reads them instead of running the exported model over the eval split again
(the same weights; the report's check against TFMA's accuracy holds). Only the
misclassified images are listed, so the file stays small however large the
split is, plus the full answers (every class's probability) on the first
SAMPLE_ANSWERS eval images: the InfraValidator checks that the server answers
them the same.
"""

import json
import os
from typing import Any, Dict, Optional, Sequence

import numpy as np

ANSWERS_FILE = 'eval_answers.json'
# The first this many eval images (the split's order) get their full answers in the
# file's `sample`: the most the InfraValidator can send (its sample_images setting).
SAMPLE_ANSWERS = 50


def summarize(probabilities: np.ndarray, labels: np.ndarray, paths: Optional[np.ndarray],
              class_names: Sequence[str]) -> Dict[str, Any]:
    """{'images': N, 'misclassified': [{path, true_label, predicted_label, probability}],
    'sample': [{path, probabilities}]} (the sample: the first SAMPLE_ANSWERS images).

    probabilities: [N, classes]; labels: [N] class indices; paths: [N] bytes (the
    examples' `path`) or None when the eval data carried no paths (then no sample).
    """
    predicted = np.argmax(probabilities, axis=-1)
    wrong = np.flatnonzero(predicted != np.asarray(labels))
    return {
        'sample': [] if paths is None else [{
            'path': paths[i].decode(),
            'probabilities': [float(p) for p in probabilities[i]],
        } for i in range(min(SAMPLE_ANSWERS, len(labels)))],
        'images': int(len(labels)),
        'misclassified': [{
            'path': None if paths is None else paths[i].decode(),
            'true_label': class_names[int(labels[i])],
            'predicted_label': class_names[int(predicted[i])],
            'probability': float(probabilities[i, predicted[i]]),
        } for i in wrong],
    }


def save(answers: Dict[str, Any], directory: str) -> str:
    """Writes answers into directory (the Trainer's model_run); returns the file."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    path = os.path.join(directory, ANSWERS_FILE)
    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(path, 'w') as f:
        json.dump(answers, f, indent=1)
    return path


def load(directory: str) -> Optional[Dict[str, Any]]:
    """The answers in directory, or None when the Trainer wrote none there."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    path = os.path.join(directory, ANSWERS_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
