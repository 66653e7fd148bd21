"""preprocessing_fn: decode, resize, scale exactly like MobileNetV2's preprocess_input."""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from models import features
from models import preprocessing
from tests import data


def test_matches_keras_preprocess_input_numerically():
    photo = data.photos('train', 'cats', 1)[0].read_bytes()
    out = preprocessing.preprocessing_fn(
        {features.IMAGE_KEY: tf.constant([photo]), features.LABEL_KEY: tf.constant([[1]], tf.int64)},
        {'image_size': [160, 160]})
    images = out[features.transformed_name(features.IMAGE_KEY)].numpy()
    assert images.shape == (1, 160, 160, 3) and images.dtype == np.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    # The reference: what the tutorial does (image_dataset_from_directory's resize,
    # then keras' preprocess_input).
    decoded = tf.io.decode_jpeg(photo, channels=3)
    resized = tf.image.resize(decoded, (160, 160))
    expected = keras.applications.mobilenet_v2.preprocess_input(resized.numpy()[None])
    np.testing.assert_allclose(images, expected, atol=1e-6)
    np.testing.assert_array_equal(out[features.transformed_name(features.LABEL_KEY)].numpy(), [1])


def test_other_sizes_and_formats_and_no_label():
    source = data.photos('train', 'dogs', 1)[0]
    odd = data.odd_good_files(source)
    batch = tf.constant([odd['grey.jpg'], odd['alpha.png'], odd['palette.gif']])
    out = preprocessing.preprocessing_fn({features.IMAGE_KEY: batch}, {'image_size': [96, 128]})
    assert set(out) == {features.transformed_name(features.IMAGE_KEY)}
    images = out[features.transformed_name(features.IMAGE_KEY)].numpy()
    assert images.shape == (3, 96, 128, 3)
    grey = images[0]
    np.testing.assert_allclose(grey[..., 0], grey[..., 1])  # grey became RGB


def test_default_size_is_the_tutorials():
    photo = data.photos('train', 'cats', 1)[0].read_bytes()
    out = preprocessing.preprocessing_fn({features.IMAGE_KEY: tf.constant([photo])})
    assert out[features.transformed_name(features.IMAGE_KEY)].shape == (1, *features.IMAGE_SIZE, 3)


def test_uint8_cache_form_round_trips_within_half_a_grey_level():
    images = tf.random.uniform((2, 8, 8, 3), minval=-1.0, maxval=1.0, seed=3)
    pixels = preprocessing.to_uint8(images)
    assert pixels.dtype == tf.uint8
    back = preprocessing.from_uint8(pixels)
    assert float(tf.reduce_max(tf.abs(back - images))) <= 0.5 / 127.5 + 1e-6
    assert preprocessing.to_uint8(tf.constant([-1.0, 1.0])).numpy().tolist() == [0, 255]
