"""The Tuner's settings and what it hands the Trainer: the search space, the search's
knobs, and the best settings' file and its format.

TFX's Tuner writes `best_hyperparameters.txt` into its `best_hyperparameters` artifact
(standard_artifacts.HyperParameters): the JSON of KerasTuner's
`HyperParameters.get_config()`, `{"space": [...], "values": {name: value, ...}}`; TFX's
Trainer hands it to run_fn as `FnArgs.hyperparameters`. Only `"values"` is read here, so
a file holding `{"values": {...}}`, or a flat object `{"learning_rate": 0.001, ...}` (kept
from an earlier run, or written by hand), is read the same way. TensorFlow only to read a file (tf.io.gfile: gs:// too).
"""

import dataclasses
import json
import os
from typing import Any, Dict, Mapping

from models import trainer_settings

# The file TFX's Tuner writes in its best_hyperparameters artifact.
FILE_NAME = 'best_hyperparameters.txt'
VALUES_KEY = 'values'

# The search (models/tuning.py). Candidates of each tuned setting; the pipeline's own
# value is added to each list, and the first trial is the pipeline's settings.
SPACE = {
    'learning_rate': (3e-4, 1e-3, 3e-3),
    'dropout': (0.0, 0.2, 0.5),
    'epochs': (5, 10, 20),
    'augmented_views': (1, 2, 3),
    'label_smoothing': (0.0, 0.1),
}
# What the search minimizes: the head's cross-entropy on the photos it did not train
# on, each training photo validated once (k-fold cross-validation over FOLDS folds).
OBJECTIVE = 'val_loss'
TRIALS = 12
FOLDS = 5
# The search uses at most this many training photos (the first ones, in the split's
# order, which ImageExampleGen shuffled): bounded time and memory at any size.
MAX_PHOTOS = 10_000
# The Tuner's custom_config key of SearchSettings, beside the Trainer's settings.
CONFIG_KEY = 'tuning'


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """The search's knobs (PipelineConfig.tuning hands them over in custom_config)."""
    trials: int = TRIALS
    folds: int = FOLDS
    max_photos: int = MAX_PHOTOS

    def __post_init__(self):
        if self.trials < 1 or self.folds < 2 or self.max_photos < self.folds:
            raise ValueError(f'tuning needs trials >= 1, folds >= 2 and max_photos >= folds, '
                             f'got {self.trials}, {self.folds}, {self.max_photos}')


# The Trainer settings (trainer_settings.Training fields) a settings file may hold: the
# tuned ones. Their types and checks are Training's.
TUNABLE = tuple(SPACE)


def values(config: Mapping[str, Any], source: str = 'hyperparameters') -> Dict[str, Any]:
    """The settings in a Tuner's best hyperparameters (KerasTuner config, or a flat object).

    Args:
      config: the parsed JSON.
      source: what to name in an error (a file path).

    Returns:
      {setting: value} with the types Training has; only the settings given.

    Raises:
      ValueError: not an object, a setting the Trainer does not take, or a bad value.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f'{source}: expected a JSON object, got {type(config).__name__}')
    given = config.get(VALUES_KEY, config)
    if not isinstance(given, Mapping):
        raise ValueError(f'{source}: "{VALUES_KEY}" must be a JSON object')
    unknown = sorted(set(given) - set(TUNABLE))
    if unknown:
        raise ValueError(f'{source}: {unknown} are not settings the Trainer takes from a '
                         f'Tuner; it takes {sorted(TUNABLE)}')
    try:
        settings = trainer_settings.Training(**given)
    except ValueError as e:
        raise ValueError(f'{source}: {e}') from e
    return {name: getattr(settings, name) for name in given}


def read(path: str) -> Dict[str, Any]:
    """The settings in a settings file, or in the FILE_NAME inside a folder (a Tuner's
    best_hyperparameters artifact).

    Raises:
      FileNotFoundError: no such file (or the folder holds no FILE_NAME).
      ValueError: unreadable, not JSON, or not settings the Trainer takes (values()).
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    if tf.io.gfile.isdir(path):
        path = os.path.join(path, FILE_NAME)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f'no hyperparameters file {path}')
    try:
        with tf.io.gfile.GFile(path) as f:
            text = f.read()
    except (tf.errors.OpError, UnicodeDecodeError) as e:
        raise ValueError(f'{path}: cannot be read as text ({e})') from e
    try:
        config = json.loads(text)
    except ValueError as e:
        raise ValueError(f'{path}: not JSON ({e})') from e
    return values(config, path)
