"""ImagePusher: Pusher that publishes a version directory atomically, with warmup."""

from typing import Optional

from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.proto import pusher_pb2
from tfx.types import channel
from tfx.types import standard_artifacts

from components import artifacts
from components.image_pusher import executor
from components.image_pusher import spec


class ImagePusher(base_component.BaseComponent):
    """Pushes a blessed model to `<base_directory>/<integer version>/`.

    A model is pushed only when the Evaluator and the InfraValidator both blessed
    it; otherwise the reason (failed TFMA thresholds, or what the server did) is
    logged and stored in the PushedModel artifact. `pushed_blessing` says whether
    the model was pushed, for the resolver of the next run's baseline. A model that
    a rollback pinned (serving_formats/rollback.py) stays pinned: the new version is
    written, not served.
    """

    SPEC_CLASS = spec.ImagePusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: channel.BaseChannel, model_blessing: channel.BaseChannel, *,
                 infra_blessing: channel.BaseChannel, base_directory: str, model_name: str,
                 evaluation: Optional[channel.BaseChannel] = None,
                 examples: Optional[channel.BaseChannel] = None,
                 reference_profile: Optional[channel.BaseChannel] = None, warmup_images: int = 5,
                 version_label: Optional[str] = None, model_config_file: Optional[str] = None):
        """Args: model, blessing and InfraValidator blessing channels; where and under
        which name to push; evaluation (for the not-pushed reason); examples and how
        many eval images to write as TF Serving warmup requests; the reference profile
        to push beside the model (assets.extra/, for monitoring.monitor); an optional
        version label ('canary') set in the TF Serving model config file, which is
        also where a rollback's pin is read."""
        if not 0 <= warmup_images <= 1000:
            raise ValueError(f'warmup_images must be in [0, 1000], got {warmup_images}')
        if version_label and not model_config_file:
            raise ValueError('version_label needs model_config_file (where labels live)')
        component_spec = spec.ImagePusherSpec(
            model=model, model_blessing=model_blessing, infra_blessing=infra_blessing,
            evaluation=evaluation,
            examples=examples, reference_profile=reference_profile,
            push_destination=pusher_pb2.PushDestination(
                filesystem=pusher_pb2.PushDestination.Filesystem(
                    base_directory=base_directory)),
            model_name=model_name, warmup_images=int(warmup_images), version_label=version_label,
            model_config_file=model_config_file,
            pushed_model=channel.Channel(type=standard_artifacts.PushedModel),
            pushed_blessing=channel.Channel(type=artifacts.PushedModelBlessing))
        super().__init__(spec=component_spec)
