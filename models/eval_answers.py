"""The trained model's answers on the eval split, written by the Trainer beside its history.

The Trainer has them for free: the transfer model's head on the eval features
it already computed for validation (FrozenFeatureValidation), otherwise one
pass over the eval split it already decoded. The run report's Errors section
reads them instead of running the exported model over the eval split again
(the same weights; the report's check against TFMA's accuracy holds). Only the
misclassified images are listed, so the file stays small however large the
split is, plus the full answers (every class's probability) on the first
SAMPLE_ANSWERS eval images: the InfraValidator checks that the server answers
them the same. Every eval image's probabilities, by path, go beside it in a
memory-mappable .npy (PROBABILITIES_FILE): ReferenceProfile takes the answers on
its sample from there instead of running the model again, when the model's
embedding is the frozen features DataQuality stored (components/reference_profile).
"""

import json
import os
import tempfile
from typing import Any, Dict, Optional, Sequence

import numpy as np

ANSWERS_FILE = 'eval_answers.json'
# Every eval image's answers: a structured array with fields PATH_FIELD (the examples'
# `path`, bytes) and PROBABILITIES_FIELD (float32 [classes]), in the split's order: a row
# costs its path and 4 bytes a class, and a reader maps the file instead of loading it.
PROBABILITIES_FILE = 'eval_probabilities.npy'
PATH_FIELD, PROBABILITIES_FIELD = 'path', 'probabilities'
# summarize's key for that array (kept out of the JSON: save writes it to PROBABILITIES_FILE).
EVERY_ANSWER = 'every_answer'
# The first this many eval images (the split's order) get their full answers in the
# file's `sample`: the most the InfraValidator can send (its sample_images setting).
SAMPLE_ANSWERS = 50


def summarize(probabilities: np.ndarray, labels: np.ndarray, paths: Optional[np.ndarray],
              class_names: Sequence[str]) -> Dict[str, Any]:
    """{'images': N, 'misclassified': [{path, true_label, predicted_label, probability}],
    'sample': [{path, probabilities}], EVERY_ANSWER: every image's (path, probabilities)}
    (the sample: the first SAMPLE_ANSWERS images).

    probabilities: [N, classes]; labels: [N] class indices; paths: [N] bytes (the
    examples' `path`) or None when the eval data carried no paths (then no sample and
    no EVERY_ANSWER).
    """
    predicted = np.argmax(probabilities, axis=-1)
    wrong = np.flatnonzero(predicted != np.asarray(labels))
    every = None
    if paths is not None:
        names = np.asarray(list(paths), dtype=np.bytes_)
        every = np.empty(len(names), dtype=[
            (PATH_FIELD, names.dtype),
            (PROBABILITIES_FIELD, np.float32, (np.shape(probabilities)[-1],))])
        every[PATH_FIELD] = names
        every[PROBABILITIES_FIELD] = probabilities
    return {
        EVERY_ANSWER: every,
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
    """Writes answers into directory (the Trainer's model_run): ANSWERS_FILE, and
    PROBABILITIES_FILE when they hold EVERY_ANSWER; returns ANSWERS_FILE's path."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    path = os.path.join(directory, ANSWERS_FILE)
    tf.io.gfile.makedirs(directory)
    every = answers.get(EVERY_ANSWER)
    if every is not None:
        with tf.io.gfile.GFile(os.path.join(directory, PROBABILITIES_FILE), 'wb') as f:
            np.save(f, every, allow_pickle=False)
    with tf.io.gfile.GFile(path, 'w') as f:
        json.dump({k: v for k, v in answers.items() if k != EVERY_ANSWER}, f, indent=1)
    return path


def load_every_answer(directory: str, local_dir: Optional[str] = None) -> Optional[np.ndarray]:
    """PROBABILITIES_FILE in directory, memory-mapped (copied into local_dir first when not
    on this machine), or None when the Trainer wrote none there (eval data without paths,
    or a Trainer older than the file)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    path = os.path.join(directory, PROBABILITIES_FILE)
    if not tf.io.gfile.exists(path):
        return None
    if '://' in path:
        local = os.path.join(local_dir or tempfile.mkdtemp(), PROBABILITIES_FILE)
        tf.io.gfile.copy(path, local, overwrite=True)
        path = local
    return np.load(path, mmap_mode='r', allow_pickle=False)


def load(directory: str) -> Optional[Dict[str, Any]]:
    """The answers in directory (ANSWERS_FILE: without EVERY_ANSWER), or None when the
    Trainer wrote none there."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    path = os.path.join(directory, ANSWERS_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
