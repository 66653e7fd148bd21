"""TF Serving's own test models, generated: the same graphs, signatures and answers.

TF Serving's tests (tensorflow_serving/model_servers/tensorflow_model_server_test.py,
http_rest_api_handler_test.cc) run against SavedModels checked into its testdata
or built by the test itself. We never copy those files; this module builds
models that answer the same requests the same way (checked once against the
originals, see docs/serving.md):

- `half_plus_two`: a TF1 graph saved with SavedModelBuilder. `tf_example`
  (serialized Examples, unknown rank) is parsed into `x` and `x2` ([-1, 1]);
  y = 0.5 x + 2, y2 = 0.5 x + 3, y3 = 0.5 x2 + 3. Signatures serving_default
  (x -> y), regress_x_to_y, regress_x_to_y2, regress_x2_to_y3, classify_x_to_y
  (and classify_x2_to_y3 in the two-version model's flavour), an asset file.
- `half_plus_three`: a graph as TensorFlow 1.0 wrote it (GraphDef producer 21,
  placeholders whose empty shape means "unknown"), which TF2's
  `tf.saved_model.load` cannot import; y = 0.5 x + 3 and a regress signature
  whose input is declared DT_FLOAT.
- `half_plus_two_tf2`: the same signatures from a tf.Module (TF2).
- `saved_model_save`, `multiple_signatures`, `keras_sequential`,
  `keras_mirrored`: the models the test builds at run time.

Run as a program (`python -m tests.serving.tf_serving_models OUT_DIR`) it writes
all of them as `OUT_DIR/<name>/<version>/`: a process of its own, because the
mirrored Keras model needs two virtual CPUs configured before TensorFlow starts.
"""

import os
import sys
import tempfile

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

VERSION = 123
SECOND_VERSION = 124
ASSET_NAME = 'foo.txt'
ASSET_TEXT = 'asset-file-contents'
REGRESS = tf.saved_model.REGRESS_METHOD_NAME
CLASSIFY = tf.saved_model.CLASSIFY_METHOD_NAME
PREDICT = tf.saved_model.PREDICT_METHOD_NAME
# Directory names under OUT_DIR (the model names the tests serve them as).
HALF_PLUS_TWO = 'half_plus_two'
TWO_VERSIONS = 'half_plus_two_2_versions'
HALF_PLUS_THREE = 'half_plus_three'
HALF_PLUS_TWO_TF2 = 'half_plus_two_tf2'
SAVED_MODEL_SAVE = 'saved_model_save'
MULTIPLE_SIGNATURES = 'multiple_signatures'
KERAS_SEQUENTIAL = 'keras_sequential'
KERAS_MIRRORED = 'keras_mirrored'


def _signature(inputs, outputs, method):
    v1 = tf.compat.v1.saved_model
    return v1.signature_def_utils.build_signature_def(
        {k: v1.utils.build_tensor_info(t) for k, t in inputs.items()},
        {k: v1.utils.build_tensor_info(t) for k, t in outputs.items()}, method)


def _asset(sess_graph):
    """An asset file in the SavedModel and the op that reads its name."""
    v1 = tf.compat.v1
    source = os.path.join(tempfile.mkdtemp(), ASSET_NAME)
    with open(source, 'w') as handle:
        handle.write(ASSET_TEXT)
    path = tf.constant(source)
    sess_graph.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, path)
    name = v1.Variable(ASSET_NAME, name='filename_tensor', trainable=False,
                       collections=[], use_resource=False)
    return name.assign(ASSET_NAME)


def _parse_example(serialized, defaults):
    """TF1's ParseExample op (a vector of Examples) for float features of shape [1].

    Today's parse_example builds ParseExampleV2, which takes any rank; the
    original models have the first op, and with it the shapes ([-1, 1] from an
    input of unknown rank) and the error a scalar input gives.
    """
    keys = sorted(defaults)
    outputs = tf.raw_ops.ParseExample(
        serialized=serialized, names=tf.constant([], tf.string),
        sparse_keys=[], dense_keys=[tf.constant(key) for key in keys],
        dense_defaults=[tf.constant(defaults[key], tf.float32) for key in keys],
        sparse_types=[], dense_shapes=[[1]] * len(keys), name='ParseExample')
    return dict(zip(keys, outputs[-1]))


def export_half_plus_two(export_dir: str, *, two_version_flavour=False) -> None:
    """TF Serving's half_plus_two as a TF1 SavedModel.

    Args:
      export_dir: the version directory to write.
      two_version_flavour: the older export in saved_model_half_plus_two_2_versions:
        y3 shares a and c, and a classify_x2_to_y3 signature exists.
    """
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as sess:
        def variable(value, name):
            return v1.Variable(value, name=name, use_resource=False)

        a, b, c = variable(0.5, 'a'), variable(2.0, 'b'), variable(3.0, 'c')
        serialized = v1.placeholder(tf.string, name='tf_example')
        parsed = _parse_example(serialized, {'x': [], 'x2': [0.0]})
        x = tf.identity(parsed['x'], name='x')
        y = tf.identity(a * x + b, name='y')
        y2 = tf.identity(a * x + c, name='y2')
        x2 = tf.identity(parsed['x2'], name='x2')
        if two_version_flavour:
            y3 = tf.identity(a * x2 + c, name='y3')
        else:
            y3 = tf.identity(variable(0.5, 'a2') * x2 + variable(3.0, 'c2'),
                             name='y3')
        assign_asset = _asset(graph)
        signatures = {
            'regress_x_to_y': _signature({'inputs': serialized}, {'outputs': y},
                                         REGRESS),
            'regress_x_to_y2': _signature({'inputs': serialized},
                                          {'outputs': y2}, REGRESS),
            'regress_x2_to_y3': _signature({'inputs': x2}, {'outputs': y3},
                                           REGRESS),
            'classify_x_to_y': _signature({'inputs': serialized}, {'scores': y},
                                          CLASSIFY),
            tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY: _signature(
                {'x': x}, {'y': y}, PREDICT),
        }
        if two_version_flavour:
            signatures['classify_x2_to_y3'] = _signature(
                {'inputs': x2}, {'scores': y3}, CLASSIFY)
        sess.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(export_dir)
        builder.add_meta_graph_and_variables(
            sess, [tf.saved_model.SERVING], signature_def_map=signatures,
            assets_collection=graph.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
            main_op=tf.group(assign_asset))
        builder.save()


def export_half_plus_three(export_dir: str) -> None:
    """TF Serving's half_plus_three: a graph as TensorFlow 1.0 saved it.

    Built with today's API, then written as 1.0 wrote it: GraphDef producer 21,
    placeholders with an empty shape (unknown, at that version) and
    SignatureDefs whose tensors carry no shape.
    """
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as sess:
        def variable(value, name):
            return v1.Variable(value, name=name, use_resource=False)

        a, b, c = variable(0.5, 'a'), variable(3.0, 'b'), variable(3.0, 'c')
        serialized = v1.placeholder(tf.string, name='tf_example')
        parsed = _parse_example(serialized, {'x': []})
        x = tf.identity(parsed['x'], name='x')
        y = tf.add(tf.multiply(a, x), b, name='y')
        x2 = v1.placeholder(tf.float32, name='x2')
        tf.add(tf.multiply(a, x2), c, name='y2')
        y_out = tf.identity(y, name='Identity')
        assign_asset = _asset(graph)
        signatures = {
            tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY: _signature(
                {'x': x}, {'y': y}, PREDICT),
            # 1.0's export declared this input DT_FLOAT; kept as it was.
            REGRESS: _signature({'inputs': serialized}, {'outputs': y_out},
                                REGRESS),
        }
        sess.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(export_dir)
        builder.add_meta_graph_and_variables(
            sess, [tf.saved_model.SERVING], signature_def_map=signatures,
            assets_collection=graph.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
            main_op=tf.group(assign_asset))
        builder.save()
    path = os.path.join(export_dir, 'saved_model.pb')
    saved_model = saved_model_pb2.SavedModel()
    with open(path, 'rb') as handle:
        saved_model.ParseFromString(handle.read())
    meta_graph = saved_model.meta_graphs[0]
    meta_graph.graph_def.versions.producer = 21
    meta_graph.graph_def.versions.min_consumer = 0
    for node in meta_graph.graph_def.node:
        if node.op == 'Placeholder' and node.name in ('tf_example', 'x2'):
            node.attr['shape'].shape.Clear()
    for signature in meta_graph.signature_def.values():
        for info in list(signature.inputs.values()) + list(
                signature.outputs.values()):
            info.ClearField('tensor_shape')
    meta_graph.signature_def[REGRESS].inputs['inputs'].dtype = (
        tf.float32.as_datatype_enum)
    with open(path, 'wb') as handle:
        handle.write(saved_model.SerializeToString())


class _HalfPlusTwo(tf.Module):
    """half_plus_two with TF2's API: the same signatures as the TF1 graph."""

    def __init__(self):
        super().__init__()
        self.a = tf.Variable(0.5, name='a')
        self.b = tf.Variable(2.0, name='b')
        self.c = tf.Variable(3.0, name='c')
        source = os.path.join(tempfile.mkdtemp(), ASSET_NAME)
        with open(source, 'w') as handle:
            handle.write(ASSET_TEXT)
        self.asset = tf.saved_model.Asset(source)

    def _parse(self, serialized):
        return tf.io.parse_example(serialized, {
            'x': tf.io.FixedLenFeature([1], tf.float32),
            'x2': tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0])})

    @tf.function(input_signature=[tf.TensorSpec([1], tf.float32)])
    def predict(self, x):
        return {'y': self.a * x + self.b}

    @tf.function(input_signature=[tf.TensorSpec(
        [None], tf.string, name=tf.saved_model.REGRESS_INPUTS)])
    def regress_x_to_y(self, serialized):
        return {tf.saved_model.REGRESS_OUTPUTS:
                self.a * self._parse(serialized)['x'] + self.b}

    @tf.function(input_signature=[tf.TensorSpec(
        [None], tf.string, name=tf.saved_model.REGRESS_INPUTS)])
    def regress_x_to_y2(self, serialized):
        return {tf.saved_model.REGRESS_OUTPUTS:
                self.a * self._parse(serialized)['x'] + self.c}

    @tf.function(input_signature=[tf.TensorSpec(
        [1], tf.float32, name=tf.saved_model.REGRESS_INPUTS)])
    def regress_x2_to_y3(self, x2):
        return {tf.saved_model.REGRESS_OUTPUTS: self.a * x2 + self.c}

    @tf.function(input_signature=[tf.TensorSpec(
        [None], tf.string, name=tf.saved_model.CLASSIFY_INPUTS)])
    def classify_x_to_y(self, serialized):
        return {tf.saved_model.CLASSIFY_OUTPUT_SCORES:
                self.a * self._parse(serialized)['x'] + self.b}

    @tf.function(input_signature=[tf.TensorSpec(
        [1], tf.float32, name=tf.saved_model.CLASSIFY_INPUTS)])
    def classify_x2_to_y3(self, x2):
        return {tf.saved_model.CLASSIFY_OUTPUT_SCORES: self.a * x2 + self.c}


def export_half_plus_two_tf2(export_dir: str) -> None:
    """half_plus_two saved from a tf.Module (TF Serving's *_tf2_cpu model)."""
    module = _HalfPlusTwo()
    tf.saved_model.save(module, export_dir, signatures={
        tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY: module.predict,
        'regress_x_to_y': module.regress_x_to_y,
        'regress_x_to_y2': module.regress_x_to_y2,
        'regress_x2_to_y3': module.regress_x2_to_y3,
        'classify_x_to_y': module.classify_x_to_y,
        'classify_x2_to_y3': module.classify_x2_to_y3,
    })


def export_saved_model_save(export_dir: str) -> None:
    """test_tf_saved_model_save's model: y = 3 * 2 * x, any shape."""
    root = tf.train.Checkpoint()
    root.v1 = tf.Variable(3.)
    root.v2 = tf.Variable(2.)
    root.f = tf.function(lambda x: {'y': root.v1 * root.v2 * x})
    tf.saved_model.save(root, export_dir, root.f.get_concrete_function(
        tf.TensorSpec(None, tf.float32)))


def export_multiple_signatures(export_dir: str) -> None:
    """test_tf_saved_model_save_multiple_signatures': y = 1 or 2, by signature."""
    root = tf.train.Checkpoint()
    root.f = tf.function(lambda x: {'y': 1.},
                         input_signature=[tf.TensorSpec(None, tf.float32)])
    root.g = tf.function(lambda x: {'y': 2.},
                         input_signature=[tf.TensorSpec(None, tf.float32)])
    tf.saved_model.save(root, export_dir, signatures={
        tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY: root.f,
        'custom_signature_key': root.g})


def export_keras_sequential(export_dir: str, *, mirrored=False) -> None:
    """The Keras Sequential models of TF Serving's tests: y = x for x of shape [1].

    With `mirrored`, built under a MirroredStrategy over two CPUs with a
    Dense(1) of ones (needs two virtual CPUs, see main()).
    """
    import tf_keras as keras  # pylint: disable=import-outside-toplevel

    def build():
        model = keras.models.Sequential()
        model.add(keras.layers.Input(dtype='float32', shape=(1,), name='x'))
        if mirrored:
            model.add(keras.layers.Dense(1, kernel_initializer='ones',
                                         bias_initializer='zeros'))
        model.add(keras.layers.Lambda(lambda x: x, name='y'))
        return model

    if mirrored:
        strategy = tf.distribute.MirroredStrategy(devices=('/cpu:0', '/cpu:1'))
        with strategy.scope():
            model = build()
    else:
        model = build()
    tf.saved_model.save(model, export_dir)


def export_all(out_dir: str) -> None:
    """Writes every model as out_dir/<name>/<version>/."""
    def version(name, number=VERSION):
        return os.path.join(out_dir, name, str(number))

    export_half_plus_two(version(HALF_PLUS_TWO))
    export_half_plus_two(version(TWO_VERSIONS), two_version_flavour=True)
    export_half_plus_two(version(TWO_VERSIONS, SECOND_VERSION),
                         two_version_flavour=True)
    export_half_plus_three(version(HALF_PLUS_THREE))
    export_half_plus_two_tf2(version(HALF_PLUS_TWO_TF2))
    export_saved_model_save(version(SAVED_MODEL_SAVE))
    export_multiple_signatures(version(MULTIPLE_SIGNATURES))
    export_keras_sequential(version(KERAS_SEQUENTIAL))
    export_keras_sequential(version(KERAS_MIRRORED), mirrored=True)


def main(argv) -> int:
    """python -m tests.serving.tf_serving_models OUT_DIR"""
    [out_dir] = argv
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    export_all(out_dir)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
