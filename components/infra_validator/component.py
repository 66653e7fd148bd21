"""InfraValidator: loads the candidate in our real server before the Pusher may push it."""

from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import channel
from tfx.types import standard_artifacts

from components.infra_validator import executor
from components.infra_validator import spec


class InfraValidator(base_component.BaseComponent):
    """Serves a copy of the model with `python -m serving.server` and checks its answers.

    Blesses (InfraBlessing, `blessed` = 1) a model the server loads and answers as the
    Trainer did on a sample of eval images; records the p50 latency, or why not. As
    TFX's InfraValidator, it does not read the Evaluator's blessing (its result is
    cached as long as the model is): the Pusher requires both.
    """

    SPEC_CLASS = spec.InfraValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: channel.BaseChannel, model_run: channel.BaseChannel,
                 examples: channel.BaseChannel, *, model_name: str, warmup_images: int,
                 sample_images: int, probability_tolerance: float,
                 load_timeout_seconds: float, request_timeout_seconds: float):
        """Args: the Trainer's model and model_run (its eval answers), the examples (eval
        images); the served name; how many warmup requests (as the Pusher writes them)
        and sampled eval images; the probability tolerance; the timeouts. Settings:
        pipeline/configs.py InfraValidation."""
        if not 0 <= warmup_images <= 1000 or sample_images < 1:
            raise ValueError(f'warmup_images must be in [0, 1000] and sample_images >= 1, '
                             f'got {warmup_images}, {sample_images}')
        component_spec = spec.InfraValidatorSpec(
            model=model, model_run=model_run, examples=examples,
            model_name=model_name, warmup_images=int(warmup_images),
            sample_images=int(sample_images), probability_tolerance=float(probability_tolerance),
            load_timeout_seconds=float(load_timeout_seconds),
            request_timeout_seconds=float(request_timeout_seconds),
            blessing=channel.Channel(type=standard_artifacts.InfraBlessing))
        super().__init__(spec=component_spec)
