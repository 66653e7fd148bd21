"""Small SavedModels with the project's serving contract, for tests and bench.

`export_image_model` writes a stand-in for the Trainer's export until the
trainer code exists: the same signatures, inputs and outputs as the real
model (see models/features.py), a fixed random linear layer instead of a
network. Swap it for the real trainer export in `conftest.py`'s fixture.

`export_regression_model` writes a half-plus-two model with a
`tensorflow/serving/regress` signature and a multi-input predict signature.
"""

import os
from typing import Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from models import features

STANDIN_IMAGE_SIZE = (32, 32)
CLASSIFY_METHOD = tf.saved_model.CLASSIFY_METHOD_NAME
REGRESS_METHOD = tf.saved_model.REGRESS_METHOD_NAME
REGRESS_SIGNATURE = 'regress_x_to_y'
MULTI_SIGNATURE = 'multi'


def set_method_names(export_dir: str, method_names: dict) -> None:
    """Rewrites SignatureDef.method_name in saved_model.pb.

    tf.saved_model.save writes every signature as a predict signature; TF
    Serving's :classify and :regress want theirs marked.
    """
    path = os.path.join(export_dir, 'saved_model.pb')
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, 'rb') as handle:
        saved_model.ParseFromString(handle.read())
    for meta_graph in saved_model.meta_graphs:
        for name, method in method_names.items():
            if name not in meta_graph.signature_def:
                raise ValueError(f'No signature {name!r} in {export_dir}')
            meta_graph.signature_def[name].method_name = method
    with tf.io.gfile.GFile(path, 'wb') as handle:
        handle.write(saved_model.SerializeToString())


class _ImageModel(tf.Module):
    """Encoded image -> 32x32 RGB -> fixed random dense -> softmax."""

    def __init__(self, seed: int, bias: Sequence[float],
                 class_names: Tuple[str, ...]):
        super().__init__()
        rng = np.random.RandomState(seed)
        size = STANDIN_IMAGE_SIZE[0] * STANDIN_IMAGE_SIZE[1] * 3
        self.kernel = tf.Variable(
            rng.normal(0.0, 0.01, size=(size, len(class_names))).astype(np.float32))
        self.bias = tf.Variable(np.asarray(bias, dtype=np.float32))
        self.class_names = tf.constant(class_names)

    def _probabilities(self, image_bytes):
        def pixels(data):
            image = tf.io.decode_image(data, channels=3,
                                       expand_animations=False)
            image = tf.image.resize(image, STANDIN_IMAGE_SIZE)
            return tf.reshape(image / 255.0 - 0.5, [-1])

        x = tf.map_fn(pixels, image_bytes, fn_output_signature=tf.float32)
        return tf.nn.softmax(tf.matmul(x, self.kernel) + self.bias)

    @tf.function(input_signature=[tf.TensorSpec(
        [None], tf.string, name=features.SERVING_INPUT)])
    def serve(self, image_bytes):
        probabilities = self._probabilities(image_bytes)
        class_index = tf.argmax(probabilities, axis=1)
        return {
            features.PROBABILITIES_OUTPUT: probabilities,
            features.CLASS_INDEX_OUTPUT: class_index,
            features.CLASS_NAME_OUTPUT: tf.gather(self.class_names, class_index),
        }

    @tf.function(input_signature=[tf.TensorSpec(
        [None], tf.string, name=features.EXAMPLES_INPUT)])
    def classify(self, inputs):
        parsed = tf.io.parse_example(inputs, {
            features.IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)})
        probabilities = self._probabilities(parsed[features.IMAGE_KEY])
        batch = tf.shape(probabilities)[0]
        return {
            features.CLASSES_OUTPUT: tf.tile(self.class_names[tf.newaxis],
                                             [batch, 1]),
            features.SCORES_OUTPUT: probabilities,
        }


def export_image_model(export_dir: str, *, seed: int = 0,
                       bias: Sequence[float] = (3.0, 0.0),
                       class_names: Tuple[str, ...] = features.CLASS_NAMES):
    """Exports the stand-in image classifier; returns the tf.Module.

    Args:
      export_dir: the SavedModel directory to write (a version directory).
      seed: seeds the dense layer.
      bias: logit bias per class; (3, 0) makes nearly every image a 'cat',
        (0, 3) a 'dog', so tests can tell versions apart.
      class_names: class names.
    """
    module = _ImageModel(seed, bias, class_names)
    tf.saved_model.save(module, export_dir, signatures={
        features.SERVING_SIGNATURE: module.serve,
        features.EXAMPLES_SIGNATURE: module.classify,
    })
    set_method_names(export_dir, {features.EXAMPLES_SIGNATURE: CLASSIFY_METHOD})
    return module


class _HalfPlusTwo(tf.Module):

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name='x')])
    def predict(self, x):
        return {'y': 0.5 * x + 2.0}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string,
                                                name='inputs')])
    def regress(self, inputs):
        parsed = tf.io.parse_example(
            inputs, {'x': tf.io.FixedLenFeature([], tf.float32)})
        return {'outputs': 0.5 * parsed['x'] + 2.0}

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.float32, name='x'),
        tf.TensorSpec([None], tf.string, name='tag')])
    def multi(self, x, tag):
        return {'y': 0.5 * x + 2.0, 'tag_bytes': tag,
                'length': tf.strings.length(tag)}


def export_regression_model(export_dir: str) -> None:
    """Exports half-plus-two: serving_default (x -> y), regress, multi."""
    module = _HalfPlusTwo()
    tf.saved_model.save(module, export_dir, signatures={
        features.SERVING_SIGNATURE: module.predict,
        REGRESS_SIGNATURE: module.regress,
        MULTI_SIGNATURE: module.multi,
    })
    set_method_names(export_dir, {REGRESS_SIGNATURE: REGRESS_METHOD})
