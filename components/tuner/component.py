"""ImageTuner: TFX's Tuner (tuner_fn, KerasTuner) on the train split only, plus one
optional input, DataQuality's frozen features (models/tuning.py reuses the train rows).

The search cross-validates on folds of the train split: train_args and eval_args both
name the train split, so tuner_fn is handed no file of the eval split (which the
Evaluator gates on) nor of the test split. The best settings are TFX's
best_hyperparameters artifact, which the Trainer takes as its `hyperparameters` input.
"""

from typing import Any, Dict, Optional

from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.proto import trainer_pb2
from tfx.types import channel
from tfx.types import standard_artifacts
from tfx.utils import json_utils

from components.tuner import executor
from components.tuner import spec
from models import features


class ImageTuner(base_component.BaseComponent):
    """Searches the head's settings with tuner_fn on the train split's frozen features."""

    SPEC_CLASS = spec.ImageTunerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, *, examples: channel.BaseChannel, transform_graph: channel.BaseChannel,
                 schema: channel.BaseChannel, tuner_fn: str, custom_config: Dict[str, Any],
                 frozen_features: Optional[channel.BaseChannel] = None):
        """Args: as TFX's Tuner (tuner_fn, not module_file; the splits are fixed: train
        only); frozen_features: DataQuality's FrozenFeatures channel, or None."""
        train_only = [features.TRAIN_SPLIT]
        super().__init__(spec=spec.ImageTunerSpec(
            examples=examples, schema=schema, transform_graph=transform_graph,
            frozen_features=frozen_features, tuner_fn=tuner_fn,
            train_args=trainer_pb2.TrainArgs(splits=train_only),
            eval_args=trainer_pb2.EvalArgs(splits=train_only),
            custom_config=json_utils.dumps(custom_config),
            best_hyperparameters=channel.Channel(type=standard_artifacts.HyperParameters),
            tuner_results=channel.Channel(type=standard_artifacts.TunerResults)))
