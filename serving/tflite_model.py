"""--prefer_tflite_model: predict answered from the version's model.tflite (XNNPACK).

TF Serving's flag loads `model.tflite` instead of the SavedModel when the version
folder has one. Ours loads both: the SavedModel still gives the metadata, the status,
classify, regress and every signature the TFLite model does not serve, and computes
the TFLite model's input, because decoding an image cannot be written with TFLite's
built-in ops. For `serving_default` (the Pusher's model.tflite, see
models/tflite_export.py):

    image bytes --[TensorFlow: the SavedModel's transform_features signature: decode,
    upright, resize, scale]--> float32 pixels --[TFLite on XNNPACK: the model, softmax,
    class index, label]--> the SavedModel's outputs

A SavedModel signature is served from TFLite when model.tflite has a signature of the
same name whose outputs are the SavedModel signature's (names and dtypes) and whose
one input is an output of the SavedModel's transform_features signature, while the
SavedModel signature takes one string input (the encoded images). At load, the two
are run on a probe image through every interpreter; a model.tflite that does not load,
fits no signature or answers otherwise than the SavedModel is not used (logged), and
the version is served from the SavedModel as without the flag.

Threads: a pool of `pool_size` interpreters, each with one thread (as TF Serving's
TfLiteSession: one thread each keeps them from contending), each used by one call at a
time; calls beyond the pool wait for an interpreter. A call runs its images one at a
time (batch 1: no tensor reallocation between requests of different sizes).
"""

import dataclasses
import logging
import os
import queue
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf

from models import features
from models import tflite_check
from models import tflite_export

# numpy dtype kind of a SignatureDef dtype, for the outputs' check.
_KINDS = {tf.float32.as_datatype_enum: 'f', tf.int64.as_datatype_enum: 'i',
          tf.string.as_datatype_enum: 'O'}


def default_pool_size() -> int:
    """Interpreters per model version when --num_tflite_pools is 0: one per core."""
    return os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How one SavedModel signature runs on TFLite."""
    images_input: str      # the SavedModel signature's input (encoded images)
    pixels_input: str      # the TFLite signature's input: a transform_features output


class TfLiteModel:
    """A version's model.tflite: the signatures it serves and its interpreters."""

    def __init__(self, runners: List[tflite_export.Runner], plans: Dict[str, _Plan],
                 transform):
        self._plans = plans
        self._transform = transform
        self._idle: 'queue.Queue[tflite_export.Runner]' = queue.Queue()
        for runner in runners:
            self._idle.put(runner)
        self.pool_size = len(runners)

    @property
    def signatures(self) -> List[str]:
        """The SavedModel signatures answered from TFLite."""
        return sorted(self._plans)

    def serves(self, signature_name: str) -> bool:
        """Whether predict on this signature runs on TFLite."""
        return signature_name in self._plans

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]
            ) -> Optional[Dict[str, np.ndarray]]:
        """The signature's outputs, or None when the inputs are not a batch of images
        (the SavedModel then runs them and gives its own answer or error).

        Raises:
          tf.errors.OpError: an image the Transform graph cannot decode (as the
            SavedModel would raise it).
        """
        plan = self._plans[signature_name]
        images = inputs.get(plan.images_input)
        if (len(inputs) != 1 or images is None or images.dtype != object
                or images.ndim != 1 or not len(images)):
            return None
        pixels = tflite_export.transformed_images(self._transform, list(images))[
            plan.pixels_input]
        runner = self._idle.get()
        try:
            return tflite_export.run_one_by_one(runner, signature_name,
                                                plan.pixels_input, pixels)
        finally:
            self._idle.put(runner)


def _plan(name: str, signature_def, transform_def, runner: tflite_export.Runner
          ) -> Tuple[Optional[_Plan], str]:
    """(plan, '') when TFLite can serve the SavedModel signature, else (None, why not)."""
    inputs, outputs = runner.signature_details(name)
    if len(signature_def.inputs) != 1:
        return None, 'the SavedModel signature takes more than one input'
    (images_input, info), = signature_def.inputs.items()
    if info.dtype != tf.string.as_datatype_enum:
        return None, f'its input {images_input!r} is not a string (encoded images)'
    if len(inputs) != 1:
        return None, f'the TFLite signature takes {len(inputs)} inputs, not one'
    (pixels_input,) = inputs
    if pixels_input not in transform_def.outputs:
        return None, (f'the TFLite input {pixels_input!r} is not an output of '
                      f'{features.TRANSFORM_SIGNATURE} '
                      f'({", ".join(sorted(transform_def.outputs))})')
    if set(outputs) != set(signature_def.outputs):
        return None, (f'TFLite outputs {sorted(outputs)}, the SavedModel '
                      f'{sorted(signature_def.outputs)}')
    for output, info in signature_def.outputs.items():
        details = outputs[output]
        # As Runner returns them: quantized outputs dequantized to float, bytes as objects.
        kind = ('f' if details['quantization'][0] else
                {'S': 'O'}.get(np.dtype(details['dtype']).kind, np.dtype(details['dtype']).kind))
        if _KINDS.get(info.dtype) != kind:
            return None, f'output {output!r} has another dtype than the SavedModel\'s'
    return _Plan(images_input, pixels_input), ''


def load(path: str, signature_defs: Mapping[str, object], functions: Mapping[str, object],
         pool_size: int = 0) -> Optional[TfLiteModel]:
    """The version's model.tflite, ready to serve, or None (logged why) when it is not
    to be used.

    Args:
      path: the version folder (model.tflite beside saved_model.pb).
      signature_defs: the SavedModel's SignatureDefs by name.
      functions: the SavedModel's signature functions by name.
      pool_size: interpreters (one thread each); 0: one per core.
    """
    file = os.path.join(path, tflite_export.SERVING_FILE)
    transform_def = signature_defs.get(features.TRANSFORM_SIGNATURE)
    if transform_def is None or features.TRANSFORM_SIGNATURE not in functions:
        logging.warning('%s not used: the SavedModel has no %s signature to compute its '
                        'input with', file, features.TRANSFORM_SIGNATURE)
        return None
    try:
        with tf.io.gfile.GFile(file, 'rb') as handle:
            content = handle.read()
        runners = [tflite_export.Runner(content, threads=1)
                   for _ in range(pool_size or default_pool_size())]
        plans, skipped = {}, {}
        for name in sorted(runners[0].signatures()):
            if name not in signature_defs or name not in functions:
                skipped[name] = 'the SavedModel has no signature of that name'
                continue
            plan, why = _plan(name, signature_defs[name], transform_def, runners[0])
            if plan is None:
                skipped[name] = why
            else:
                plans[name] = plan
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        logging.warning('%s not used: it does not load: %s', file, error)
        return None
    for name, why in skipped.items():
        logging.warning('%s: signature %s served from the SavedModel: %s', file, name, why)
    if not plans:
        logging.warning('%s not used: none of its signatures fits the SavedModel\'s', file)
        return None
    model = TfLiteModel(runners, plans, functions[features.TRANSFORM_SIGNATURE])
    problem = _check(model, plans, functions)
    if problem:
        logging.warning('%s not used: %s', file, problem)
        return None
    logging.info('%s serves predict on %s (%d interpreters, XNNPACK); the SavedModel '
                 'serves the rest', file, ', '.join(model.signatures), model.pool_size)
    return model


def _check(model: TfLiteModel, plans: Mapping[str, _Plan],
           functions: Mapping[str, object]) -> Optional[str]:
    """Why the TFLite answers differ from the SavedModel's on the probe image, through
    every interpreter; None when they agree."""
    image = tflite_export.probe_image()
    for name, plan in plans.items():
        reference = {key: value.numpy() for key, value in functions[name](
            **{plan.images_input: tf.constant([image])}).items()}
        for _ in range(model.pool_size):
            # Each run takes the interpreter that has waited longest: all of them in turn.
            try:
                answers = model.run(name, {plan.images_input: np.array([image], object)})
            except (ValueError, RuntimeError, tf.errors.OpError) as error:
                return f'signature {name} fails on a probe image: {error}'
            if answers is None:
                return f'signature {name} does not take a probe image'
            difference = tflite_check.output_difference(reference, answers)
            if difference:
                return (f'signature {name} does not answer as the SavedModel on a probe '
                        f'image: {difference}')
    return None
