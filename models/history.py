"""The Trainer's history: history.json in its model_run, written by run_fn.

Per-epoch metrics, epoch seconds, the settings and the Tuner's values the Trainer
trained with (training.train says what each key holds); the run report reads it.
"""

import json
import os
from typing import Any, Dict, Optional

import tensorflow as tf

HISTORY_FILE = 'history.json'


def save(history: Dict[str, Any], model_run_dir: str) -> None:
    """Writes the history into the Trainer's model_run folder."""
    with tf.io.gfile.GFile(os.path.join(model_run_dir, HISTORY_FILE), 'w') as f:
        json.dump(history, f, indent=1)


def read(model_run_dir: str) -> Optional[Dict[str, Any]]:
    """The history in a model_run folder; None when the Trainer wrote none there."""
    path = os.path.join(model_run_dir, HISTORY_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
