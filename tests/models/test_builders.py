"""Model builders: the tutorial's exact models."""

import h5py
import numpy as np
import pytest
import tensorflow as tf

from models import builders
from tests import data


@pytest.mark.parametrize('variant', ['cnn', 'cnn_augment', 'cnn_preprocess_augment'])
def test_cnn_models_have_the_tutorials_parameter_count(variant):
    model = builders.build(variant, (160, 160), 2, weights=None, dropout=0.2, learning_rate=1e-3)
    # model1.summary() in the tutorial: Total params 433,634, non-trainable 320.
    assert model.count_params() == 433_634
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert non_trainable == 320


def test_transfer_model_freezes_the_base_and_augments_only_in_training():
    model = builders.build_transfer_model((96, 96), 2, weights=str(data.WEIGHTS), seed=1)
    assert [tuple(w.shape) for w in model.trainable_weights] == [(1280, 2), (2,)]
    base = model.get_layer(builders.BASE_MODEL_NAME)
    assert not base.trainable
    # The ImageNet weights file was loaded.
    with h5py.File(data.WEIGHTS, 'r') as weights:
        np.testing.assert_array_equal(base.get_layer('Conv1').kernel.numpy(),
                                      weights['Conv1']['Conv1']['kernel:0'][()])
    images = tf.random.uniform((2, 96, 96, 3), -1.0, 1.0, seed=3)
    np.testing.assert_allclose(model(images, training=False), model(images, training=False))
    augmented = builders.augmentation(seed=1)
    assert not np.allclose(augmented(images, training=True), images)
    np.testing.assert_array_equal(augmented(images, training=False), images)


def test_fine_tuning_unfreezes_the_base_from_a_layer_index():
    model = builders.build_transfer_model((96, 96), 2, weights=None)
    builders.unfreeze_from(model, 140, 1e-5)
    base = model.get_layer(builders.BASE_MODEL_NAME)
    trainable = {layer.name for layer in base.layers if layer.trainable and layer.weights}
    assert trainable == {layer.name for layer in base.layers[140:] if layer.weights}
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-5)
    for bad in (-1, len(base.layers)):
        with pytest.raises(ValueError, match='fine_tune_from_layer'):
            builders.unfreeze_from(model, bad, 1e-5)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="unknown model variant 'resnet'"):
        builders.build('resnet', (96, 96), 2, weights=None, dropout=0.2, learning_rate=1e-3)
