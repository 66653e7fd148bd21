"""TFLite: convert a model on decoded pixels, run it with tf.lite.Interpreter, compare it.

The served SavedModel takes encoded image bytes and decodes them with TensorFlow ops
(DecodeImage, ResizeBilinear inside a map) that TFLite's built-in ops cannot run. So
what is converted is the model from the Transform output on: float32 [N, H, W, 3] in
[-1, 1] -> probabilities (the SavedModel's `export.PIXELS_FUNCTION`), or any Keras model
on pixels (the frozen base). Whoever feeds a TFLite model decodes and resizes exactly as
the SavedModel does: `preprocessing.preprocess_images` (tf.io.decode_image with 3
channels, bilinear resize to the model's input size, x / 127.5 - 1), or the SavedModel's
own `transform_features` signature on serialized examples.

Variants (VARIANTS):
  float32  no quantization: the same numbers as TensorFlow, at XNNPACK's speed
  float16  weights stored as float16 (half the size), computed in float32
  int8     full-integer: int8 weights, activations, input and output, calibrated on
           representative pixels (from the train split); `Runner` quantizes the float
           pixels and dequantizes the probabilities, so callers see float32 either way

TensorFlow is imported by the functions that need it: the settings below are read by
pipeline/configs.py, which a runner imports before anything runs.
"""

import dataclasses
import os
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

FLOAT32 = 'float32'
FLOAT16 = 'float16'
INT8 = 'int8'
VARIANTS = (FLOAT32, FLOAT16, INT8)
# A converted model is refused (not marked ready) when its accuracy on the eval images
# is lower than the SavedModel's by more than this (1 point).
MAX_ACCURACY_DROP = 0.01
# Train images the int8 calibration runs through the float model (TF's guide: 100-500).
REPRESENTATIVE_IMAGES = 100
# Eval images each variant is checked on (the first of the split, in file order).
EVAL_IMAGES = 1000
# Threads of the interpreter when none are given: every core, as XNNPACK can use them.
DEFAULT_THREADS = os.cpu_count() or 1


def saved_model_pixels_function(saved_model_dir: str):
    """(concrete function on pixels -> {probabilities}, the loaded SavedModel that owns its
    variables) of an exported model.

    Raises:
      ValueError: the SavedModel has no PIXELS_FUNCTION (exported before it existed).
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from models import export  # pylint: disable=import-outside-toplevel
    loaded = tf.saved_model.load(saved_model_dir)
    function = getattr(loaded, export.PIXELS_FUNCTION, None)
    if function is None:
        raise ValueError(f'{saved_model_dir} has no {export.PIXELS_FUNCTION} function (an '
                         'export older than the TFLite stage): train it again to convert it')
    return function.concrete_functions[0], loaded


def keras_function(model, input_shape: Sequence[int]):
    """A Keras model on float32 pixels [None, *input_shape] as a concrete function, in
    inference mode (e.g. the frozen base, for its features at TFLite's speed); convert it
    with the model as `trackable`."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return tf.function(lambda pixels: model(pixels, training=False)).get_concrete_function(
        tf.TensorSpec([None, *input_shape], tf.float32))


def convert(function, variant: str, *, trackable=None,
            representative: Optional[Callable[[], Iterable[np.ndarray]]] = None) -> bytes:
    """A concrete function on float32 pixels -> a TFLite flatbuffer.

    Args:
      function: a concrete function (saved_model_pixels_function, keras_function).
      variant: one of VARIANTS.
      trackable: the object owning the function's variables (the loaded SavedModel).
      representative: for int8, a callable yielding float32 pixel batches of one image
        [1, H, W, 3] that cover what the model will see (TFLite's representative_dataset).

    Returns:
      The .tflite file's bytes.

    Raises:
      ValueError: an unknown variant, or int8 without representative data.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    if variant not in VARIANTS:
        raise ValueError(f'TFLite variant must be one of {VARIANTS}, got {variant!r}')
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], trackable)
    if variant == FLOAT16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == INT8:
        if representative is None:
            raise ValueError('an int8 model needs representative data to calibrate on')
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([batch] for batch in representative())
        # Integer-only: an op without an int8 kernel fails the conversion rather than
        # silently staying float.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


class Runner:
    """A TFLite model in tf.lite.Interpreter (XNNPACK for float models, TF's default):
    float32 pixels in, float32 outputs out, whatever the model's own input type."""

    def __init__(self, model_content: bytes, threads: int = DEFAULT_THREADS):
        """Args: model_content: the .tflite bytes; threads: the interpreter's threads."""
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        self._interpreter = tf.lite.Interpreter(model_content=model_content,
                                                num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = None

    @property
    def input_shape(self) -> tuple:
        """One image's input shape (H, W, 3)."""
        return tuple(int(d) for d in self._input['shape'][1:])

    def run(self, pixels: np.ndarray) -> np.ndarray:
        """The model's output for a batch of float32 pixels [N, H, W, 3]."""
        pixels = np.asarray(pixels, np.float32)
        if len(pixels) != self._batch:
            self._interpreter.resize_tensor_input(self._input['index'], pixels.shape)
            self._interpreter.allocate_tensors()
            self._batch = len(pixels)
        self._interpreter.set_tensor(self._input['index'], _quantize(pixels, self._input))
        self._interpreter.invoke()
        return _dequantize(self._interpreter.get_tensor(self._output['index']), self._output)


def _quantize(values: np.ndarray, details: dict) -> np.ndarray:
    scale, zero_point = details['quantization']
    if not scale:
        return values.astype(details['dtype'])
    limits = np.iinfo(details['dtype'])
    return np.clip(np.round(values / scale + zero_point), limits.min, limits.max).astype(
        details['dtype'])


def _dequantize(values: np.ndarray, details: dict) -> np.ndarray:
    scale, zero_point = details['quantization']
    if not scale:
        return values.astype(np.float32)
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A converted model against the SavedModel on the same images."""
    images: int
    reference_accuracy: float     # the SavedModel's
    accuracy: float               # the converted model's
    agreement: float              # share of images where both give the same class
    max_abs_difference: float     # largest difference of a probability

    @property
    def accuracy_drop(self) -> float:
        """Accuracy lost by the conversion (negative: gained)."""
        return self.reference_accuracy - self.accuracy


def compare(reference: np.ndarray, converted: np.ndarray, labels: np.ndarray) -> Comparison:
    """Probabilities [N, K] of the SavedModel and of a converted model, with the labels [N].

    Raises:
      ValueError: shapes that do not match, or no images.
    """
    reference, converted, labels = np.asarray(reference), np.asarray(converted), np.asarray(labels)
    if reference.shape != converted.shape or reference.shape[:1] != labels.shape or not len(labels):
        raise ValueError(f'cannot compare probabilities {reference.shape} and {converted.shape} '
                         f'with labels {labels.shape}')
    expected, answered = reference.argmax(axis=1), converted.argmax(axis=1)
    return Comparison(images=len(labels),
                      reference_accuracy=float(np.mean(expected == labels)),
                      accuracy=float(np.mean(answered == labels)),
                      agreement=float(np.mean(expected == answered)),
                      max_abs_difference=float(np.max(np.abs(reference - converted))))


def refusal(comparison: Comparison, max_accuracy_drop: float = MAX_ACCURACY_DROP) -> Optional[str]:
    """Why a converted model is not ready, or None when it is."""
    if comparison.accuracy_drop > max_accuracy_drop + 1e-9:
        return (f'accuracy {comparison.accuracy:.4f} is {comparison.accuracy_drop * 100:.1f} '
                f'points below the SavedModel\'s {comparison.reference_accuracy:.4f} on '
                f'{comparison.images} eval images (at most {max_accuracy_drop * 100:g} allowed)')
    return None


def describe(variant: str, size_bytes: int, comparison: Comparison, reason: Optional[str]) -> str:
    """One line on a converted model: size, accuracy against the SavedModel, verdict."""
    verdict = f'REFUSED: {reason}' if reason else 'ready'
    return (f'TFLite {variant}: {size_bytes / 1e6:.1f} MB, accuracy {comparison.accuracy:.4f} '
            f'vs {comparison.reference_accuracy:.4f} (SavedModel) on {comparison.images} eval '
            f'images, agreement {comparison.agreement * 100:.1f}%, largest probability '
            f'difference {comparison.max_abs_difference:.4f}: {verdict}')

