"""BulkInferrer: the pipeline's model scores a folder of unlabelled photos.

After the Evaluator, as TFX's BulkInferrer: a model that was not blessed scores
nothing. The command line `python -m components.bulk_inferrer` runs the same
executor code on any model directory (components/bulk_inferrer/__main__.py).
"""

from typing import Optional

from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import channel
from tfx.types import standard_artifacts

from components.bulk_inferrer import driver
from components.bulk_inferrer import executor
from components.bulk_inferrer import files
from components.bulk_inferrer import spec
from models import features


class BulkInferrer(base_component.BaseComponent):
    """Writes scores.csv (one row per entry under images_dir) and its summary."""

    SPEC_CLASS = spec.BulkInferrerSpec
    DRIVER_CLASS = driver.Driver
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: channel.BaseChannel, images_dir: str, *,
                 model_blessing: Optional[channel.BaseChannel] = None,
                 batch_size: int = spec.BATCH_SIZE,
                 max_file_bytes: int = files.MAX_FILE_BYTES,
                 max_pixels: int = features.MAX_PIXELS):
        """Args:
          model: the Trainer's model.
          images_dir: a local folder of photos, any depth (the run's machine must see it).
          model_blessing: the Evaluator's blessing; an unblessed model scores nothing.
          batch_size: images per call of the serving signature.
          max_file_bytes: larger files are reported as bad, not read.
          max_pixels: larger images are reported as bad, not decoded.

        Raises:
          ValueError: an empty images_dir or a limit below 1.
        """
        if not images_dir:
            raise ValueError('images_dir must name a folder of photos')
        for name, value in ((spec.BATCH_SIZE_KEY, batch_size),
                            (spec.MAX_FILE_BYTES_KEY, max_file_bytes),
                            (spec.MAX_PIXELS_KEY, max_pixels)):
            if value < 1:
                raise ValueError(f'{name} must be >= 1, got {value}')
        super().__init__(spec.BulkInferrerSpec(
            model=model, model_blessing=model_blessing, images_dir=images_dir,
            batch_size=batch_size, max_file_bytes=max_file_bytes, max_pixels=max_pixels,
            inference_result=channel.Channel(type=standard_artifacts.InferenceResult)))

