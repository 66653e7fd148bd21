"""TFLite: convert a model on decoded pixels, run it with tf.lite.Interpreter (the
comparison with the SavedModel: models/tflite_check.py).

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

The served model (`SERVING_FILE`, written by the Pusher beside saved_model.pb for the
server's --prefer_tflite_model) is float32 and is the whole `serving_default` from the
Transform output on: `serving_function` adds the class index and label to the pixels
function, so the file has a TFLite signature of that name with the SavedModel's outputs.
Whoever serves it computes its input, the Transform output, with the SavedModel's own
`transform_features` signature (`transformed_images`).

TensorFlow is imported where needed: pipeline/configs.py reads the settings below early.
"""

import os
from typing import Any, Callable, Dict, Iterable, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from models import features

FLOAT32 = 'float32'
FLOAT16 = 'float16'
INT8 = 'int8'
VARIANTS = (FLOAT32, FLOAT16, INT8)
# Train images the int8 calibration runs through the float model (TF's guide: 100-500).
REPRESENTATIVE_IMAGES = 100
# Eval images each variant is checked on (the first of the split, in file order).
EVAL_IMAGES = 1000
# Threads of the interpreter when none are given: every core, as XNNPACK can use them.
DEFAULT_THREADS = os.cpu_count() or 1
# The served model as TFLite, in the version folder beside saved_model.pb: TF Serving's
# name for it (kTfLiteModelFilename), which its --prefer_tflite_model looks for.
SERVING_FILE = 'model.tflite'


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


class ServingFunction(NamedTuple):
    """What serving_function gives: convert `function` with `trackable`; the SavedModel's
    signatures (`saved_model`) compute its input and the answers to check it against."""
    function: Any
    trackable: Any
    saved_model: Any


def serving_function(saved_model_dir: str) -> ServingFunction:
    """The SavedModel's `serving_default` from the Transform output on: float32 pixels
    [N, H, W, 3] -> probabilities, class index and label, with the signature's own output
    names; what the Pusher converts to SERVING_FILE.

    The trackable holds only the variables the function reads: with the whole SavedModel
    as trackable, the converter would first save all its signatures again (docs/benchmarks.md
    has the cost).

    Raises:
      ValueError: no PIXELS_FUNCTION (see saved_model_pixels_function) or no class names
        file.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from models import export  # pylint: disable=import-outside-toplevel
    pixels_function, loaded = saved_model_pixels_function(saved_model_dir)
    names_path = os.path.join(saved_model_dir, export.CLASS_NAMES_FILE)
    if not tf.io.gfile.exists(names_path):
        raise ValueError(f'{saved_model_dir} has no {export.CLASS_NAMES_FILE} (the class names)')
    with tf.io.gfile.GFile(names_path) as f:
        names = tf.constant([line for line in f.read().splitlines() if line])
    spec = pixels_function.structured_input_signature[0][0]

    @tf.function(input_signature=[spec])
    def serve_pixels(pixels):
        return export.class_answers(
            pixels_function(pixels)[features.PROBABILITIES_OUTPUT], names)

    function = serve_pixels.get_concrete_function()
    trackable = tf.Module()
    trackable.captured_variables = list(function.variables)
    return ServingFunction(function, trackable, loaded)


def keras_function(model, input_shape: Sequence[int]):
    """A Keras model on float32 pixels [None, *input_shape] as a concrete function, in
    inference mode (e.g. the frozen base, for its features at TFLite's speed); convert it
    with the model as `trackable`."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return tf.function(lambda pixels: model(pixels, training=False)).get_concrete_function(
        tf.TensorSpec([None, *input_shape], tf.float32))


def convert(function, variant: str, *, trackable=None,
            representative: Optional[Callable[[], Iterable[np.ndarray]]] = None,
            signatures: bool = True) -> bytes:
    """A concrete function on float32 pixels -> a TFLite flatbuffer.

    Args:
      function: a concrete function (saved_model_pixels_function, keras_function), or a
        SavedModel folder holding it as serving_default (components/tflite_export: lowered).
      variant: one of VARIANTS.
      trackable: the object owning the function's variables (the loaded SavedModel).
      representative: for int8, a callable yielding float32 pixel batches of one image
        [1, H, W, 3] that cover what the model will see (TFLite's representative_dataset).
      signatures: keep the function's signature (serving_default) in the model; without
        it, only the plain input and output (Runner.run), converted much faster.

    Returns:
      The .tflite file's bytes.

    Raises:
      ValueError: an unknown variant, or int8 without representative data.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    if variant not in VARIANTS:
        raise ValueError(f'TFLite variant must be one of {VARIANTS}, got {variant!r}')
    if isinstance(function, str):
        converter = tf.lite.TFLiteConverter.from_saved_model(function)
    else:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([function], trackable)
        # Without signatures: variables frozen in memory; with them: a SavedModel saved and
        # reloaded first (many times slower, docs/benchmarks.md issue 40), signatures kept.
        converter.experimental_lower_to_saved_model = signatures
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
    """A TFLite model in tf.lite.Interpreter (XNNPACK for float models without string
    outputs: those are dynamic-sized, which XNNPACK refuses): float32 pixels in, float32
    outputs out, whatever the model's input type. Not thread-safe."""

    def __init__(self, model_content: bytes, threads: int = DEFAULT_THREADS):
        """Args: model_content: the .tflite bytes; threads: the interpreter's threads."""
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        self._interpreter = tf.lite.Interpreter(model_content=model_content,
                                                num_threads=threads)
        if all(d['dtype'] != np.bytes_ for d in self._interpreter.get_output_details()):
            self._interpreter.allocate_tensors()   # applies XNNPACK (a signature runner won't)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = None
        self._signatures = {}

    @property
    def input_shape(self) -> tuple:
        """One image's input shape (H, W, 3)."""
        return tuple(int(d) for d in self._input['shape'][1:])

    def run(self, pixels: np.ndarray, batch: Optional[int] = None) -> np.ndarray:
        """The model's output for float32 pixels [N, H, W, 3]: `batch` images per invoke
        (the last chunk padded with zeros, whose outputs are dropped), or None: all N in
        one invoke (the input resized to every new N, each resize re-planning XNNPACK)."""
        pixels = np.asarray(pixels, np.float32)
        if batch is None or len(pixels) in (0, batch):
            return self._invoke(pixels)
        if batch < 1:
            raise ValueError(f'images per invoke must be at least 1, got {batch}')
        outputs = []
        for start in range(0, len(pixels), batch):
            chunk = pixels[start:start + batch]
            padding = [(0, batch - len(chunk))] + [(0, 0)] * (chunk.ndim - 1)
            outputs.append(self._invoke(np.pad(chunk, padding))[:len(chunk)])
        return np.concatenate(outputs)

    def _invoke(self, pixels: np.ndarray) -> np.ndarray:
        """One invoke on all of pixels (the input resized to them when its size differs)."""
        if len(pixels) != self._batch:
            self._interpreter.resize_tensor_input(self._input['index'], pixels.shape)
            self._interpreter.allocate_tensors()
            self._batch = len(pixels)
        self._interpreter.set_tensor(self._input['index'], _quantize(pixels, self._input))
        self._interpreter.invoke()
        return _dequantize(self._interpreter.get_tensor(self._output['index']), self._output)

    def signatures(self) -> Dict[str, Dict[str, list]]:
        """The model's TFLite signatures: {key: {'inputs': [names], 'outputs': [names]}}."""
        return self._interpreter.get_signature_list()

    def signature_details(self, key: str) -> Tuple[Dict[str, dict], Dict[str, dict]]:
        """(input details, output details) of a signature, by tensor name.

        Raises:
          ValueError: no signature of that key.
        """
        if key not in self._signatures:
            runner = self._interpreter.get_signature_runner(key)
            self._signatures[key] = (runner.get_input_details(), runner.get_output_details())
        return self._signatures[key]

    def run_signature(self, key: str, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """A signature's outputs by name, for its float32 inputs by name (quantized and
        dequantized as in run; outputs that are not numbers, e.g. labels, as they are).

        Raises:
          ValueError: no signature of that key, or inputs of other names.
        """
        input_details, output_details = self.signature_details(key)
        if set(inputs) != set(input_details):
            raise ValueError(f'signature {key!r} takes {sorted(input_details)}, got '
                             f'{sorted(inputs)}')
        # Made for each call and dropped after it: while a signature runner exists, the
        # interpreter refuses `run`'s resize (it counts references to itself).
        runner = self._interpreter.get_signature_runner(key)
        outputs = runner(**{name: _quantize(np.asarray(value, np.float32), input_details[name])
                            for name, value in inputs.items()})
        del runner
        return {name: _dequantize(value, output_details[name]) for name, value in outputs.items()}


def transformed_images(transform, images: Sequence[bytes]) -> Dict[str, np.ndarray]:
    """The Transform output of encoded images, by a SavedModel's own `transform_features`
    signature (serialized Examples holding each image under features.IMAGE_KEY): exactly
    the pixels the SavedModel's serving signatures compute from the same bytes.

    Raises:
      tf.errors.OpError: an image the Transform graph cannot decode.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    examples = [tf.train.Example(features=tf.train.Features(feature={
        features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))}))
                .SerializeToString() for image in images]
    outputs = transform(examples=tf.constant(examples, tf.string))
    return {name: np.asarray(tensor) for name, tensor in outputs.items()}   # no copy


def run_one_by_one(runner: Runner, key: str, input_name: str,
                   pixels: np.ndarray) -> Dict[str, np.ndarray]:
    """A one-input signature's outputs for a batch of pixels, run one image at a time
    (batch 1: the interpreter's tensors are never reallocated), concatenated.

    Raises ValueError for an empty batch."""
    if not len(pixels):
        raise ValueError('no images to run')
    rows = [runner.run_signature(key, {input_name: pixels[i:i + 1]})
            for i in range(len(pixels))]
    return {name: np.concatenate([row[name] for row in rows]) for name in rows[0]}


def probe_image() -> bytes:
    """A small PNG with gradients in every channel (the same bytes each call): to compare
    a converted model with the SavedModel when no photo is at hand."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    rows, columns = np.mgrid[0:48, 0:64]
    pixels = np.stack([rows * 5, columns * 4, (rows * columns) % 256], axis=-1)
    return tf.io.encode_png(pixels.astype(np.uint8)).numpy()


def _quantize(values: np.ndarray, details: dict) -> np.ndarray:
    scale, zero_point = details['quantization']
    if not scale:
        return values.astype(details['dtype'], copy=False)
    info = np.iinfo(details['dtype'])
    return np.clip(np.round(values / scale + zero_point), info.min, info.max).astype(info.dtype)


def _dequantize(values: np.ndarray, details: dict) -> np.ndarray:
    scale, zero_point = details['quantization']
    if not scale:
        return values.astype(np.float32) if np.issubdtype(values.dtype, np.floating) else values
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)
