"""The served model as float32 TFLite, written into a version folder before it appears.

`python -m serving.server --prefer_tflite_model` answers predict from the version's
model.tflite (TF Serving's file name). What is converted is `serving_default` from the
Transform output on (models/tflite_export.py: serving_function); decoding stays in the
SavedModel. Before the file is written, the converted model runs beside the SavedModel
on the warmup images and a probe image: every output must agree (probabilities within
tflite_check.SERVING_TOLERANCE, class index and label equal). A model that cannot be
converted or does not agree is not written, and the version is served from the
SavedModel alone: the push goes on.

The Pusher calls `write_in_child`: the conversion and its check run in a child process
(components/child_process.py), so that the pipeline's process never holds what they
allocate (the SavedModel loaded again, the converter's graphs: 0.22-0.26 GiB it kept).
"""

import dataclasses
import os
import time
from typing import Optional, Sequence

import tensorflow as tf

from components import child_process
from models import features
from models import tflite_check
from models import tflite_export


@dataclasses.dataclass(frozen=True)
class Written:
    """What write() did: the file's size, or why it wrote nothing."""
    size_bytes: int = 0
    seconds: float = 0.0
    images: int = 0               # images the converted model was checked on
    reason: Optional[str] = None  # why nothing was written (None: written)


def write(version_dir: str, images: Sequence[bytes]) -> Written:
    """Converts the SavedModel in version_dir and writes SERVING_FILE beside it when the
    conversion answers as the SavedModel does on `images` and the probe image.

    Never raises for a model that cannot be converted or checked: the reason is returned
    (the converter raises several types; a failed conversion is the TFLite file's problem,
    not the push's).
    """
    started = time.perf_counter()
    images = list(images) + [tflite_export.probe_image()]
    try:
        serving = tflite_export.serving_function(version_dir)
        loaded = serving.saved_model
        content = tflite_export.convert(serving.function, tflite_export.FLOAT32,
                                        trackable=serving.trackable)
        runner = tflite_export.Runner(content, threads=1)
        if features.SERVING_SIGNATURE not in runner.signatures():
            return Written(reason=f'the converted model has no {features.SERVING_SIGNATURE} '
                           f'signature ({", ".join(runner.signatures())})')
        inputs, _ = runner.signature_details(features.SERVING_SIGNATURE)
        (input_name,) = inputs
        pixels = tflite_export.transformed_images(
            loaded.signatures[features.TRANSFORM_SIGNATURE], images)[input_name]
        reference = {name: value.numpy() for name, value in loaded.signatures[
            features.SERVING_SIGNATURE](**{features.SERVING_INPUT: tf.constant(images)}).items()}
        answers = tflite_export.run_one_by_one(runner, features.SERVING_SIGNATURE,
                                               input_name, pixels)
    except Exception as error:  # pylint: disable=broad-except
        return Written(reason=f'{type(error).__name__}: {_first_line(str(error))}')
    difference = tflite_check.output_difference(reference, answers)
    if difference:
        return Written(reason=f'it does not answer as the SavedModel on {len(images)} images: '
                       f'{difference}')
    with tf.io.gfile.GFile(os.path.join(version_dir, tflite_export.SERVING_FILE), 'wb') as f:
        f.write(content)
    return Written(size_bytes=len(content), seconds=time.perf_counter() - started,
                   images=len(images))


def write_in_child(version_dir: str, images: Sequence[bytes]) -> Written:
    """write() in a child process; a child that ends without an answer (killed, out of
    memory) is a reason too: never raises for the conversion (see write)."""
    try:
        return child_process.call(write, version_dir, list(images))
    except ChildProcessError as error:
        return Written(reason=f'{type(error).__name__}: {_first_line(str(error))}')


def _first_line(message: str) -> str:
    lines = [line for line in message.splitlines() if line.strip()]
    return lines[0][:300] if lines else '(no message)'
