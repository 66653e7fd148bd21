"""models/tflite_export.py: conversion, the interpreter runner, the comparison and its verdict;
and the exported model's pixels function, which is what gets converted."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models import export
from models import features
from models import preprocessing
from models import tflite_check
from models import tflite_export
from tests import data

SIZE = (24, 24, 3)


@pytest.fixture(scope='module')
def tiny_model():
    """A small conv net on pixels in [-1, 1] (fast to convert), with a softmax output that
    moves with the input (large last-layer weights), so wrong inputs show in the answers."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.layers.Input(SIZE),
        keras.layers.Conv2D(8, 3, strides=2, activation='relu'),
        keras.layers.Conv2D(8, 3, activation='relu'),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3, kernel_initializer=keras.initializers.RandomNormal(stddev=20.0)),
        keras.layers.Softmax(),
    ])


def _pixels(count, seed):
    """Noise around a brightness and colour of its own per image, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    tint = rng.uniform(-0.7, 0.7, (count, 1, 1, 3))
    return np.clip(tint + rng.uniform(-0.3, 0.3, (count, *SIZE)), -1, 1).astype(np.float32)


@pytest.mark.parametrize('variant, tolerance', [('float32', 1e-5), ('float16', 1e-2),
                                                ('int8', 0.05)])
def test_each_variant_answers_as_the_keras_model(tiny_model, variant, tolerance):
    calibration = _pixels(32, seed=1)
    content = tflite_export.convert(
        tflite_export.keras_function(tiny_model, SIZE), variant, trackable=tiny_model,
        representative=lambda: (calibration[i:i + 1] for i in range(len(calibration))))
    runner = tflite_export.Runner(content, threads=2)
    assert runner.input_shape == SIZE
    pixels = _pixels(8, seed=2)
    expected = tiny_model(pixels, training=False).numpy()
    assert np.ptp(expected, axis=0).max() > 0.3      # the answers differ from image to image
    # A batch, then one image (the runner resizes its input), in float32 whatever the
    # model's own input type (int8 quantizes inside the runner).
    answers = runner.run(pixels)
    assert answers.dtype == np.float32
    np.testing.assert_allclose(answers, expected, atol=tolerance)
    np.testing.assert_allclose(runner.run(pixels[:1]), expected[:1], atol=tolerance)
    if variant != 'float32':    # weights stored in 2 bytes or 1 instead of 4
        assert len(content) < len(tflite_export.convert(
            tflite_export.keras_function(tiny_model, SIZE), 'float32', trackable=tiny_model))


def test_convert_refuses_an_unknown_variant_and_int8_without_data(tiny_model):
    function = tflite_export.keras_function(tiny_model, SIZE)
    with pytest.raises(ValueError, match='one of'):
        tflite_export.convert(function, 'int4', trackable=tiny_model)
    with pytest.raises(ValueError, match='representative'):
        tflite_export.convert(function, 'int8', trackable=tiny_model)


def test_compare_counts_accuracy_agreement_and_the_largest_difference():
    reference = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    converted = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.3, 0.7]])
    labels = np.array([0, 1, 0, 0])
    found = tflite_check.compare(reference, converted, labels)
    assert found.images == 4
    assert found.reference_accuracy == 0.75       # the third is right, the fourth wrong
    assert found.accuracy == 0.5                  # the third flipped
    assert found.agreement == 0.75
    assert found.accuracy_drop == pytest.approx(0.25)
    assert found.max_abs_difference == pytest.approx(0.2)
    with pytest.raises(ValueError, match='cannot compare'):
        tflite_check.compare(reference, converted[:3], labels)


def test_a_model_losing_more_than_the_allowed_accuracy_is_refused():
    def comparison(accuracy):
        return tflite_check.Comparison(images=200, reference_accuracy=0.95, accuracy=accuracy,
                                        agreement=0.9, max_abs_difference=0.3)
    assert tflite_check.refusal(comparison(0.94)) is None           # exactly 1 point: kept
    assert tflite_check.refusal(comparison(0.97)) is None           # a gain
    reason = tflite_check.refusal(comparison(0.935))
    assert reason.startswith('accuracy 0.9350 is 1.5 points below')
    assert tflite_check.refusal(comparison(0.935), max_accuracy_drop=0.02) is None
    assert 'REFUSED: accuracy' in tflite_check.describe('int8', 3_000_000, comparison(0.9),
                                                         reason)


def test_the_pixels_function_is_the_served_model_after_its_transform(small_run):
    """What TFLite converts (the model on the Transform output), fed by the SavedModel's own
    transform_features, answers as serving_default does on the encoded photos."""
    _, run = small_run
    from tfx.utils import path_utils  # pylint: disable=import-outside-toplevel
    model_dir = path_utils.serving_model_path(run.output('Trainer', 'model').uri)
    function, loaded = tflite_export.saved_model_pixels_function(model_dir)
    photos = data.photos('validation', 'cats', 2) + data.photos('validation', 'dogs', 2)
    raw = [p.read_bytes() for p in photos]
    examples = tf.constant([tf.train.Example(features=tf.train.Features(feature={
        features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))}))
        .SerializeToString() for image in raw])
    pixels = loaded.signatures[features.TRANSFORM_SIGNATURE](examples=examples)[
        features.transformed_name(features.IMAGE_KEY)]
    served = loaded.signatures[features.SERVING_SIGNATURE](
        **{features.SERVING_INPUT: tf.constant(raw)})[features.PROBABILITIES_OUTPUT].numpy()
    np.testing.assert_allclose(function(pixels)[features.PROBABILITIES_OUTPUT].numpy(), served,
                               atol=1e-5)
    # The documented client-side preprocessing gives the same pixels.
    size = function.structured_input_signature[0][0].shape[1:3]
    np.testing.assert_allclose(preprocessing.preprocess_images(tf.constant(raw), size), pixels,
                               atol=1e-6)
    assert not hasattr(loaded.signatures, export.PIXELS_FUNCTION)
    assert export.PIXELS_FUNCTION not in loaded.signatures


@pytest.mark.parametrize('variant', ['float32', 'int8'])
def test_signatures_run_by_name_one_image_at_a_time(tiny_model, variant):
    calibration = _pixels(16, seed=1)
    runner = tflite_export.Runner(tflite_export.convert(
        tflite_export.keras_function(tiny_model, SIZE), variant, trackable=tiny_model,
        representative=lambda: (calibration[i:i + 1] for i in range(len(calibration)))))
    [(key, names)] = runner.signatures().items()
    [input_name], [output_name] = names['inputs'], names['outputs']
    inputs, outputs = runner.signature_details(key)
    assert list(inputs) == [input_name] and list(outputs) == [output_name]
    pixels = _pixels(5, seed=3)
    whole = runner.run(pixels)
    # By name, as a batch and one image at a time: float32 out, int8 model or not.
    by_name = runner.run_signature(key, {input_name: pixels})[output_name]
    one_by_one = tflite_export.run_one_by_one(runner, key, input_name, pixels)[output_name]
    assert by_name.dtype == one_by_one.dtype == np.float32
    np.testing.assert_allclose(by_name, whole, atol=1e-6)
    np.testing.assert_allclose(one_by_one, whole, atol=1e-6)
    with pytest.raises(ValueError, match='no images'):
        tflite_export.run_one_by_one(runner, key, input_name, pixels[:0])
    with pytest.raises(ValueError, match='signature'):
        runner.run_signature('no_such_signature', {input_name: pixels})


def test_output_difference_names_the_output_that_differs():
    reference = {'probabilities': np.array([[0.9, 0.1], [0.3, 0.7]], np.float32),
                 'class_index': np.array([0, 1]), 'label': np.array([b'cats', b'dogs'], object)}
    same = {name: value.copy() for name, value in reference.items()}
    same['probabilities'] = same['probabilities'] + np.float32(5e-5)   # within 1e-4
    assert tflite_check.output_difference(reference, same) is None
    assert 'differs by up to 5e-05' in tflite_check.output_difference(reference, same, 1e-5)
    for name, value, expected in [
            ('probabilities', np.array([[0.9, 0.1], [0.3, np.nan]], np.float32), 'up to nan'),
            ('class_index', np.array([0, 0]), "output 'class_index' differs: [0, 0]"),
            ('label', np.array([b'cats', b'cats'], object), "output 'label' differs"),
            ('class_index', np.array([[0, 1]]), 'has shape [1, 2] instead of [2]')]:
        changed = dict(same, **{name: value})
        assert expected in tflite_check.output_difference(reference, changed), name
    missing = {k: v for k, v in same.items() if k != 'label'}
    assert tflite_check.output_difference(reference, missing) == (
        "outputs ['class_index', 'probabilities'] instead of "
        "['class_index', 'label', 'probabilities']")


def test_the_probe_image_is_the_same_png_each_time():
    image = tflite_export.probe_image()
    assert image == tflite_export.probe_image() and image.startswith(b'\x89PNG')
    decoded = tf.io.decode_png(image).numpy()
    assert decoded.shape == (48, 64, 3) and decoded.std() > 20
