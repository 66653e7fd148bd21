"""ImageTunerSpec and the file of its own beside TFX's: trials.json, and its reader.

TFX's Tuner writes `best_hyperparameters.txt` (the best_hyperparameters artifact, which
the Trainer reads) and `tuner_results.json` (each trial's settings and score) into its
outputs; our Tuner adds `trials.json` to the tuner_results artifact: every trial's
settings, validation loss and accuracy and seconds in the order run, which one is best,
the cross-validation's folds, and what the search read (only the train split), for the
run report.
"""

import json
import os
from typing import Any, Dict, List, Optional

from tfx.types import component_spec
from tfx.types import standard_component_specs

from components import artifacts

FROZEN_FEATURES_KEY = 'frozen_features'
BEST_HYPERPARAMETERS_KEY = standard_component_specs.BEST_HYPERPARAMETERS_KEY
TUNER_RESULTS_KEY = standard_component_specs.TUNER_RESULTS_KEY
TRIALS_FILE = 'trials.json'


class ImageTunerSpec(standard_component_specs.TunerSpec):
    """TFX's TunerSpec plus DataQuality's frozen features (optional)."""
    INPUTS = {
        **standard_component_specs.TunerSpec.INPUTS,
        FROZEN_FEATURES_KEY: component_spec.ChannelParameter(
            type=artifacts.FrozenFeatures, optional=True),
    }


def write_trials(uri: str, trials: List[Dict[str, Any]], read: Dict[str, Any],
                 objective: str, fold: Dict[str, int]) -> str:
    """Writes trials.json into a TunerResults artifact; returns its path."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    path = os.path.join(uri, TRIALS_FILE)
    tf.io.gfile.makedirs(uri)
    with tf.io.gfile.GFile(path, 'w') as f:
        json.dump({'objective': objective, 'read': read, 'fold': fold, 'trials': trials}, f,
                  indent=1)
    return path


def read_trials(uri: str) -> Optional[Dict[str, Any]]:
    """trials.json of a TunerResults artifact, or None when there is none."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    path = os.path.join(uri, TRIALS_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
