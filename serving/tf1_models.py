"""TF1 SavedModels as TF Serving loads them, where tf.saved_model.load cannot.

A graph written by TensorFlow 1.0 (GraphDef producer 21 or older) stores a
placeholder of unknown shape with an empty shape attribute, and its
SignatureDefs carry no shapes at all; TF Serving's C++ loader reads both as
"unknown", as 1.0 meant them. TF2's `tf.saved_model.load` reads them as
scalars, so a `ParseExample` fed by such a placeholder fails to import ("Shape
must be rank 1 but is rank 0"). `load_legacy` writes those shapes as unknown
into a private copy of saved_model.pb (variables and assets are linked, not
copied) and loads that: the model then serves as it does under TF Serving.
"""

import logging
import os
import tempfile

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

# Graphs this old wrote "unknown shape" as an empty shape
# (tensorflow/core/ops/array_ops.cc, Placeholder's shape function).
LEGACY_PRODUCER = 21


def _mark_unknown(shape) -> bool:
    if shape.dim or shape.unknown_rank:
        return False
    shape.unknown_rank = True
    return True


def legacy_shapes_made_unknown(saved_model) -> bool:
    """Rewrites legacy empty shapes as unknown in place; True if any changed."""
    changed = False
    for meta_graph in saved_model.meta_graphs:
        if meta_graph.graph_def.versions.producer > LEGACY_PRODUCER:
            continue
        for node in meta_graph.graph_def.node:
            if node.op in ('Placeholder', 'PlaceholderV2') and 'shape' in node.attr:
                changed |= _mark_unknown(node.attr['shape'].shape)
        for signature in meta_graph.signature_def.values():
            for info in list(signature.inputs.values()) + list(
                    signature.outputs.values()):
                changed |= _mark_unknown(info.tensor_shape)
    return changed


def is_tf1(saved_model_dir: str) -> bool:
    """Whether the SavedModel was written without TF2's object graph."""
    saved_model = _read(saved_model_dir)
    return saved_model is not None and not any(
        meta_graph.object_graph_def.nodes for meta_graph in saved_model.meta_graphs)


def _read(saved_model_dir: str):
    path = os.path.join(saved_model_dir, 'saved_model.pb')
    if not tf.io.gfile.exists(path):
        return None
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, 'rb') as handle:
        saved_model.ParseFromString(handle.read())
    return saved_model


def load_legacy(saved_model_dir: str, tags):
    """Loads a TF1 SavedModel whose legacy shapes tf.saved_model.load refuses.

    Returns:
      The loaded object (as tf.saved_model.load returns it), or None when the
      model has no legacy shapes to read differently (the caller's error
      stands). The private copy lives as long as the returned object.
    """
    saved_model = _read(saved_model_dir)
    if saved_model is None or not legacy_shapes_made_unknown(saved_model):
        return None
    copy = tempfile.TemporaryDirectory(prefix='tf1_saved_model_')
    with open(os.path.join(copy.name, 'saved_model.pb'), 'wb') as handle:
        handle.write(saved_model.SerializeToString())
    for name in ('variables', 'assets', 'assets.extra'):
        source = os.path.join(saved_model_dir, name)
        if tf.io.gfile.exists(source):
            os.symlink(os.path.abspath(source), os.path.join(copy.name, name))
    module = tf.saved_model.load(copy.name, tags=tags)
    module.legacy_copy = copy   # removed with the module
    logging.info('Loaded %s as a TensorFlow 1.0 graph (empty shapes read as '
                 'unknown, as TF Serving reads them)', saved_model_dir)
    return module
