"""ImageTrainer: TFX's Trainer (GenericExecutor, run_fn) plus one optional input, the
frozen features DataQuality computed, which run_fn reuses instead of running the frozen
base over the eval split again (models/frozen_features.py). TFX's optional
`hyperparameters` input (the Tuner's best_hyperparameters) reaches run_fn as
FnArgs.hyperparameters, as in TFX's Trainer.

The stock TrainerSpec has no slot for them, so the spec adds one and the executor hands
its URI to run_fn in custom_config (under frozen_features.CONFIG_KEY) at run time; the
custom_config recorded in ML Metadata stays the pipeline's.
"""

from typing import Any, Dict, Optional

from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils
from tfx.types import channel
from tfx.types import component_spec
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.utils import json_utils

from components import artifacts
from models import frozen_features as frozen_features_lib

FROZEN_FEATURES_KEY = 'frozen_features'


class ImageTrainerSpec(standard_component_specs.TrainerSpec):
    INPUTS = {
        **standard_component_specs.TrainerSpec.INPUTS,
        FROZEN_FEATURES_KEY: component_spec.ChannelParameter(
            type=artifacts.FrozenFeatures, optional=True),
    }


def with_frozen_features(input_dict, exec_properties) -> Dict[str, Any]:
    """exec_properties whose custom_config names the FrozenFeatures input's URI (under
    frozen_features.CONFIG_KEY) when there is one; used by the Trainer and the Tuner."""
    if not input_dict.get(FROZEN_FEATURES_KEY):
        return exec_properties
    key = standard_component_specs.CUSTOM_CONFIG_KEY
    config = json_utils.loads(exec_properties.get(key) or 'null') or {}
    config[frozen_features_lib.CONFIG_KEY] = artifact_utils.get_single_uri(
        input_dict[FROZEN_FEATURES_KEY])
    return {**exec_properties, key: json_utils.dumps(config)}


class Executor(trainer_executor.GenericExecutor):
    """GenericExecutor, with the frozen features' URI added to run_fn's custom_config."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        super().Do(input_dict, output_dict, with_frozen_features(input_dict, exec_properties))


class ImageTrainer(base_component.BaseComponent):
    """Trains with run_fn, as TFX's Trainer; may reuse DataQuality's frozen features."""

    SPEC_CLASS = ImageTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, *, examples: channel.BaseChannel, transform_graph: channel.BaseChannel,
                 schema: channel.BaseChannel, run_fn: str, train_args: trainer_pb2.TrainArgs,
                 eval_args: trainer_pb2.EvalArgs, custom_config: Dict[str, Any],
                 frozen_features: Optional[channel.BaseChannel] = None,
                 hyperparameters: Optional[channel.BaseChannel] = None):
        """Args: as TFX's Trainer (run_fn, not module_file); frozen_features: DataQuality's
        FrozenFeatures channel, or None (run_fn then computes every feature itself);
        hyperparameters: the Tuner's best_hyperparameters, or None."""
        spec = ImageTrainerSpec(
            examples=examples, transform_graph=transform_graph, schema=schema,
            frozen_features=frozen_features, hyperparameters=hyperparameters, run_fn=run_fn,
            train_args=train_args,
            eval_args=eval_args, custom_config=json_utils.dumps(custom_config),
            model=channel.Channel(type=standard_artifacts.Model),
            model_run=channel.Channel(type=standard_artifacts.ModelRun))
        super().__init__(spec=spec)
