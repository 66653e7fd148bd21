"""models/feature_pass.py: the features of augmented views are those of augmenting each
batch's views and running them, in order (the same draws), and a wrong count is an error."""

import numpy as np
import tf_keras as keras

from models import builders
from models import feature_pass
from models import tflite_base
from tests import data
from tests.models.test_model_export import SIZE, photo_dataset
from tests.models.test_tflite_base import cache, converted  # pylint: disable=unused-import


def _base(seed):
    keras.utils.set_random_seed(seed)
    model = builders.build_transfer_model(SIZE, 2, weights=str(data.WEIGHTS), seed=seed)
    return tflite_base.FrozenBase(model, str(data.WEIGHTS), SIZE)


def test_augmented_views_are_the_plain_loops(cache):  # pylint: disable=redefined-outer-name
    """Two bases built alike draw the same augmentations: features_of's equal those of
    augmenting and running each batch's views one after the other."""
    dataset = photo_dataset('train', 3, batch_size=4)                   # 6 photos, 2 batches
    views, labels, _ = feature_pass.features_of(_base(7), dataset, 2, 6, augment=True)
    base = _base(7)
    expected, expected_labels = [], []
    for images, batch_labels in dataset:
        expected.append(np.stack([base(base.augmented(images)) for _ in range(2)], axis=1))
        expected_labels.append(batch_labels.numpy())
    np.testing.assert_array_equal(labels, np.concatenate(expected_labels))
    np.testing.assert_allclose(views, np.concatenate(expected), rtol=0, atol=1e-6)
    assert not np.allclose(views[:, 0], views[:, 1])                    # two different draws


def test_a_wrong_count_is_an_error_naming_both(cache):  # pylint: disable=redefined-outer-name
    dataset = photo_dataset('train', 3, batch_size=4)
    base = _base(7)
    for count, words in ((5, 'more than the 5'), (8, 'holds 6 photos, not the 8')):
        try:
            feature_pass.features_of(base, dataset, 1, count)
        except ValueError as e:
            assert words in str(e)
        else:
            raise AssertionError(f'no error for count {count}')
