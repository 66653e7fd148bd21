"""The model's answers and embeddings on the profile's sample without a model pass.

The transfer model's embedding (its last layer's input) is its frozen base's pooled
features of the photo: the numbers DataQuality already stored for every photo
(models/frozen_features.py), when the base is the one they were computed with (the
transfer model, pretrained weights, the same weights and input size) and training
left it alone (no fine-tuning). Its answers on the eval photos are what the Trainer
recorded for every eval photo (models/eval_answers.py: PROBABILITIES_FILE), its head
on the frozen features of those photos. Then ReferenceProfile takes both from there, matched by the
photos' `path`, instead of running the exported model over the sample.

Both were computed with the frozen base in TFLite (models/tflite_base.py) where the
exported model runs it in TensorFlow: the numbers differ by about 1e-4, far below
what the monitor's drift checks can see (tests/e2e/test_reference_profile_reuse.py
measures it on a real run).
"""

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from models import eval_answers
from models import features
from models import frozen_features
from models import history as training_history


def why_not(frozen_features_uri: Optional[str], model_run_uri: Optional[str]) -> Optional[str]:
    """Why the model's embeddings are not DataQuality's frozen features (or its eval
    answers not recorded by the Trainer), or None when they are."""
    if not frozen_features_uri:
        return 'no frozen features (DataQuality did not run)'
    history = training_history.read(model_run_uri) if model_run_uri else None
    if not history or 'settings' not in history:
        return f'no Trainer history in {model_run_uri} (its settings are unknown)'
    settings = history['settings']
    if settings.get('model_variant') != 'transfer':
        return f"the model is {settings.get('model_variant')!r}, not the transfer model"
    if history.get('fine_tune_from_epoch') is not None:
        return 'the base was fine-tuned: its features changed'
    if not settings.get('weights'):
        return 'the base has random weights'
    reason = frozen_features.mismatch(frozen_features.read_meta(frozen_features_uri),
                                      settings['weights'], settings['image_size'])
    if reason:
        return f'the frozen features are for {reason}'
    return None


def earlier_outputs(paths: Dict[str, Sequence[Optional[str]]], frozen_features_uri: Optional[str],
                    model_run_uri: Optional[str], local_dir: str
                    ) -> Tuple[Optional[Tuple[np.ndarray, Dict[str, np.ndarray]]], str]:
    """The eval photos' probabilities and each split's embeddings, from DataQuality's
    frozen features and the Trainer's answers, when they are the model's.

    Args:
      paths: split -> the sampled photos' paths (the examples' `path`), in sample order:
        every split whose embeddings are wanted, and the eval split (its answers).
      frozen_features_uri: DataQuality's FrozenFeatures artifact, or None.
      model_run_uri: the Trainer's model_run (history.json, eval_probabilities.npy).
      local_dir: a folder on this machine for the two arrays' files when they are not
        (both are memory-mapped: only the sample's rows are read).

    Returns:
      ((probabilities [eval photos, classes], {split: embeddings [photos, D]}), why they
      could be reused), or (None, why not).
    """
    reason = why_not(frozen_features_uri, model_run_uri)
    if reason:
        return None, reason
    every = eval_answers.load_every_answer(model_run_uri, local_dir)
    if every is None:
        return None, (f'the Trainer recorded no answers for every eval photo '
                      f'({eval_answers.PROBABILITIES_FILE} in {model_run_uri})')
    answers = rows_of(every[eval_answers.PATH_FIELD], paths[features.EVAL_SPLIT])
    if isinstance(answers, str):
        return None, f'the Trainer\'s eval answers lack {answers}'
    photos = frozen_features.read_photos(frozen_features_uri)
    matrix = frozen_features.read_features(frozen_features_uri, local_dir)
    embeddings = {}
    for split, wanted in paths.items():
        stored = np.asarray([p['path'].encode() if p['split'] == split else b''
                             for p in photos], dtype=object)
        rows = rows_of(stored, wanted)
        if isinstance(rows, str):
            return None, f'the frozen features lack {rows}'
        embeddings[split] = np.asarray(matrix[rows], np.float32)
    probabilities = np.asarray(every[eval_answers.PROBABILITIES_FIELD][answers], np.float32)
    return (probabilities, embeddings), (
        'the transfer model\'s frozen base, its weights and input size those of '
        'DataQuality\'s features')


def rows_of(stored: np.ndarray, wanted: Sequence[Optional[str]]):
    """The row in `stored` (paths as bytes) of each wanted path, or a short text naming
    those that are not there."""
    position = {path: row for row, path in enumerate(stored) if path}
    keys = [path.encode() if path is not None else None for path in wanted]
    missing = [path for path, key in zip(wanted, keys) if key not in position]
    if missing:
        return f'{len(missing)} sampled photos (e.g. {missing[0]!r})'
    return np.asarray([position[key] for key in keys], dtype=np.int64)
