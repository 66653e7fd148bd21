"""The input size follows the weights: native for a Keras weights file, the tutorial's otherwise."""

import pytest

from models import features
from models import weights
from pipeline import configs
from tests import data


@pytest.mark.parametrize('weights_value,variant,explicit,size,reason', [
    (str(data.WEIGHTS), 'transfer', None, (224, 224),
     'the size the weights file mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5'
     ' was trained at'),
    ('/x/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5', 'transfer', None,
     (96, 96), 'the size the weights file'),
    (weights.IMAGENET, 'transfer', None, features.IMAGE_SIZE, "the tutorial's size; Keras"),
    (None, 'transfer', None, features.IMAGE_SIZE, "the tutorial's size (random weights)"),
    ('/x/my_weights.h5', 'transfer', None, features.IMAGE_SIZE, 'does not name its size'),
    (str(data.WEIGHTS), 'cnn', None, features.IMAGE_SIZE, 'cnn has no pretrained base'),
    (str(data.WEIGHTS), 'transfer', (128, 192), (128, 192), 'set explicitly'),
])
def test_input_size_and_reason(weights_value, variant, explicit, size, reason):
    got_size, got_reason = weights.input_size(weights_value, variant, explicit)
    assert got_size == tuple(size)
    assert reason in got_reason


def test_config_hands_the_resolved_size_to_transform_and_trainer():
    config = configs.local('/tmp/w', '/tmp/d', weights=str(data.WEIGHTS))
    assert config.image_size is None
    assert config.transform_config() == {'image_size': [224, 224]}
    trainer = config.trainer_config()
    assert trainer['image_size'] == [224, 224]
    assert trainer['image_size_reason'].startswith('the size the weights file')
    online = configs.local('/tmp/w', '/tmp/d', weights=configs.IMAGENET)
    assert online.transform_config() == {'image_size': list(features.IMAGE_SIZE)}
    fixed = configs.local('/tmp/w', '/tmp/d', weights=str(data.WEIGHTS), image_size=(160, 160))
    assert fixed.trainer_config()['image_size'] == [160, 160]
