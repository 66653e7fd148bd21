"""Serving signatures and SavedModel export (the contract in models/features.py).

- serving_default: encoded image bytes -> probabilities, class index, label name
- classification: serialized tf.train.Example -> classes, scores (TFMA; TF Serving
  :classify, hence its SignatureDef's method_name is set to classify)
- transform_features: serialized raw Example -> Transform output
- embedding: encoded image bytes -> the last layer's input (monitoring) and probabilities
and one function that is not a signature (so no server lists it):
- PIXELS_FUNCTION: the Transform output (float32 [N, H, W, 3]) -> probabilities, the
  model without decoding, what models/tflite_export.py converts to TFLite (with
  class_answers after it, for the Pusher's model.tflite)
All run the Transform graph inside the model, so clients never preprocess. The three
that run the model run it over at most CHUNK_IMAGES images at a time: a request's or a
TFMA batch's size changes the time, not the memory (Beam's BatchElements grows TFMA's
batches up to 1,000 examples; what whole batches held: docs/scale.md, Evaluator).
"""

import os
from typing import Callable, Dict, Sequence

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tensorflow.core.protobuf import saved_model_pb2

from models import builders
from models import features

CLASSIFY_METHOD_NAME = 'tensorflow/serving/classify'
CLASS_NAMES_FILE = os.path.join(features.ASSETS_EXTRA, 'labels.txt')
# The saved module's attribute holding the model on decoded pixels (not a signature:
# clients send encoded images; TFLite, whose built-in ops cannot decode them, takes pixels).
PIXELS_FUNCTION = 'classify_pixels'

# Images decoded and run through the model at once inside a signature. 32: as fast as
# larger batches on CPU, with less memory than larger chunks or none (TFMA measured each
# way: docs/scale.md, Evaluator).
CHUNK_IMAGES = 32

_IMAGE_SPEC = {features.IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)}


class ServingModule(tf.Module):
    """What is saved: the model's variables, the Transform layer, the signatures.

    The Keras model itself is not attached: saving it would trace every layer's
    call for Keras' own metadata, which costs more than the rest of the export
    and is not needed to serve (the signatures call the model directly).
    """

    def __init__(self, model: keras.Model, tf_transform_output: tft.TFTransformOutput):
        super().__init__(name='serving_module')
        self.model_variables = list(model.variables)
        self.tft_layer = tf_transform_output.transform_features_layer()


def in_chunks(fn: Callable[[tf.Tensor], Dict[str, tf.Tensor]], inputs: tf.Tensor,
              chunk: int) -> Dict[str, tf.Tensor]:
    """fn over inputs[0:chunk], inputs[chunk:2 * chunk], ..., one after the other, with
    the outputs concatenated: what fn(inputs) gives, with the memory of one chunk.

    fn maps a 1-D batch to a dict of tensors whose first dimension is the batch's.
    """
    shapes = tf.function(fn).get_concrete_function(
        tf.TensorSpec([None], inputs.dtype)).structured_outputs
    count = tf.shape(inputs)[0]
    parts = {key: tf.TensorArray(value.dtype, size=0, dynamic_size=True, infer_shape=False,
                                 element_shape=value.shape)
             for key, value in shapes.items()}

    def body(i, parts):
        outputs = fn(inputs[i * chunk:(i + 1) * chunk])
        return i + 1, {key: parts[key].write(i, outputs[key]) for key in parts}

    _, parts = tf.while_loop(lambda i, _: i * chunk < count, body, (tf.constant(0), parts),
                             parallel_iterations=1)     # the default, 10, runs 10 chunks at once
    return {key: part.concat() for key, part in parts.items()}


def class_answers(probabilities: tf.Tensor, names: tf.Tensor) -> Dict[str, tf.Tensor]:
    """serving_default's outputs from the probabilities [N, K] and the class names [K]: also
    what the TFLite model served with --prefer_tflite_model computes
    (models/tflite_export.py: serving_function)."""
    index = tf.argmax(probabilities, axis=-1)
    return {features.PROBABILITIES_OUTPUT: probabilities, features.CLASS_INDEX_OUTPUT: index,
            features.CLASS_NAME_OUTPUT: tf.gather(names, index)}


def make_signatures(model: keras.Model, module: ServingModule,
                    tf_transform_output: tft.TFTransformOutput, class_names: Sequence[str],
                    chunk: int = CHUNK_IMAGES):
    """The serving signatures, closing over model, Transform layer and class names."""
    names = tf.constant(list(class_names))
    image_xf = features.transformed_name(features.IMAGE_KEY)

    def chunk_probabilities(image_bytes):
        transformed = module.tft_layer({features.IMAGE_KEY: image_bytes})
        return {features.PROBABILITIES_OUTPUT: tf.nn.softmax(
            model(transformed[image_xf], training=False), axis=-1)}

    def probabilities(image_bytes):
        return in_chunks(chunk_probabilities, image_bytes, chunk)[features.PROBABILITIES_OUTPUT]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.SERVING_INPUT)])
    def serve_images(image_bytes):
        return class_answers(probabilities(image_bytes), names)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.EXAMPLES_INPUT)])
    def classify_examples(inputs):
        parsed = tf.io.parse_example(inputs, _IMAGE_SPEC)
        probs = probabilities(parsed[features.IMAGE_KEY])
        classes = tf.tile(names[tf.newaxis, :], [tf.shape(probs)[0], 1])
        return {features.CLASSES_OUTPUT: classes, features.SCORES_OUTPUT: probs}

    raw_spec = tf_transform_output.raw_feature_spec()
    raw_spec.pop(features.LABEL_KEY, None)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
    def transform_features(examples):
        parsed = tf.io.parse_example(examples, {features.IMAGE_KEY: raw_spec[features.IMAGE_KEY]})
        return module.tft_layer(parsed)

    # The input of the model's last layer (for the transfer model, the frozen base's
    # pooled features): what a monitor compares between training and served images.
    # One graph with both outputs, so the base runs once for the two.
    embedding_and_logits = keras.Model(
        model.inputs, [model.get_layer(builders.HEAD_LAYER).input, model.outputs[0]])

    def chunk_embeddings(image_bytes):
        pixels = module.tft_layer({features.IMAGE_KEY: image_bytes})[image_xf]
        embedding, logits = embedding_and_logits(pixels, training=False)
        return {features.EMBEDDING_OUTPUT: embedding,
                features.PROBABILITIES_OUTPUT: tf.nn.softmax(logits, axis=-1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.SERVING_INPUT)])
    def embed_images(image_bytes):
        return in_chunks(chunk_embeddings, image_bytes, chunk)

    return {features.SERVING_SIGNATURE: serve_images,
            features.EXAMPLES_SIGNATURE: classify_examples,
            features.TRANSFORM_SIGNATURE: transform_features,
            features.EMBEDDING_SIGNATURE: embed_images}


def pixels_function(model: keras.Model, tf_transform_output: tft.TFTransformOutput):
    """The model on the Transform output: float32 [N, H, W, 3] in [-1, 1] -> probabilities."""
    image_xf = features.transformed_name(features.IMAGE_KEY)
    shape = tf_transform_output.transformed_feature_spec()[image_xf].shape

    @tf.function(input_signature=[tf.TensorSpec([None, *shape[-3:]], tf.float32, name=image_xf)])
    def classify_pixels(pixels):
        return {features.PROBABILITIES_OUTPUT: tf.nn.softmax(model(pixels, training=False),
                                                              axis=-1)}

    return classify_pixels


def set_classify_method_name(export_dir: str) -> None:
    """Marks the classification signature as a classify SignatureDef in saved_model.pb."""
    path = os.path.join(export_dir, 'saved_model.pb')
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, 'rb') as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        meta_graph.signature_def[features.EXAMPLES_SIGNATURE].method_name = CLASSIFY_METHOD_NAME
    with tf.io.gfile.GFile(path, 'wb') as f:
        f.write(saved_model.SerializeToString())


def export_model(model: keras.Model, tf_transform_output: tft.TFTransformOutput,
                 class_names: Sequence[str], export_dir: str,
                 chunk: int = CHUNK_IMAGES) -> None:
    """Saves the served model: signatures, classify method name, labels.txt."""
    module = ServingModule(model, tf_transform_output)
    signatures = make_signatures(model, module, tf_transform_output, class_names, chunk)
    setattr(module, PIXELS_FUNCTION, pixels_function(model, tf_transform_output))
    tf.saved_model.save(module, export_dir, signatures=signatures)
    set_classify_method_name(export_dir)
    tf.io.gfile.makedirs(os.path.join(export_dir, os.path.dirname(CLASS_NAMES_FILE)))
    with tf.io.gfile.GFile(os.path.join(export_dir, CLASS_NAMES_FILE), 'w') as f:
        f.write('\n'.join(class_names) + '\n')
