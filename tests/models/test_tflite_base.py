"""models/tflite_base.py: the frozen base in TFLite gives TensorFlow's features on real
photos, is converted once per weights and size, and a bad cached file is rebuilt."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models import builders
from models import frozen_training
from models import preprocessing
from models import tflite_base
from tests import data
from tests.models.test_model_export import SIZE, photo_dataset


def _pixels(per_class=4):
    paths = data.photos('train', 'cats', per_class) + data.photos('train', 'dogs', per_class)
    return preprocessing.preprocess_images(tf.constant([p.read_bytes() for p in paths]),
                                           SIZE).numpy()


def _featurizer(weights=str(data.WEIGHTS)):
    model = builders.build_transfer_model(SIZE, 2, weights=weights, augment='none')
    return builders.pooled_features(model)


def _cached_file(model):
    return os.path.join(tflite_base.cache_dir(), f'{tflite_base.cache_key(model, SIZE)}.tflite')


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """A cache folder holding the converted base at SIZE (one conversion for the module)."""
    folder = str(tmp_path_factory.mktemp('frozen-base'))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(tflite_base.CACHE_ENV, folder)
        patch.delenv(tflite_base.RUNTIME_ENV, raising=False)
        base = tflite_base.FrozenBase(_featurizer(), str(data.WEIGHTS), SIZE).load()
        assert base.runtime == tflite_base.TFLITE and base.converted
    return folder


@pytest.fixture
def cache(converted, tmp_path, monkeypatch):
    """This test's own copy of the converted cache folder, as the cache."""
    folder = str(tmp_path / 'cache')
    shutil.copytree(converted, folder)
    monkeypatch.setenv(tflite_base.CACHE_ENV, folder)
    monkeypatch.delenv(tflite_base.RUNTIME_ENV, raising=False)
    return folder


def test_features_equal_tensorflows_on_real_photos_and_the_cache_is_reused(cache,
                                                                          monkeypatch):
    pixels = _pixels()
    base = tflite_base.FrozenBase(_featurizer(), str(data.WEIGHTS), SIZE).load()
    assert base.runtime == tflite_base.TFLITE and not base.converted    # read from the cache
    features = base(pixels)
    monkeypatch.setenv(tflite_base.RUNTIME_ENV, 'tf')
    reference = tflite_base.FrozenBase(_featurizer(), str(data.WEIGHTS), SIZE)
    assert reference.runtime == tflite_base.TF
    expected = reference(pixels)
    assert features.shape == (8, builders.POOLED_FEATURES)
    assert tflite_base.mismatch(expected, features) is None
    largest, cosine = tflite_base.difference(expected, features)
    assert largest <= tflite_base.MAX_ABS_DIFFERENCE and cosine >= tflite_base.MIN_COSINE
    # Batches of another size, after the first, give the same rows.
    np.testing.assert_allclose(base(pixels[:3]), features[:3], atol=tflite_base.MAX_ABS_DIFFERENCE)


@pytest.mark.parametrize('damage', ['truncated', 'garbage', 'no digest'])
def test_a_damaged_cache_file_is_converted_again(cache, damage):
    model = _featurizer()
    path = _cached_file(model)
    if damage == 'no digest':
        os.remove(path + '.sha256')
    else:
        with open(path, 'r+b') as f:
            if damage == 'truncated':
                f.truncate(os.path.getsize(path) // 2)
            else:
                f.write(b'\0' * 4096)
    base = tflite_base.FrozenBase(model, str(data.WEIGHTS), SIZE).load()
    assert base.converted
    assert tflite_base.mismatch(model(_pixels(1)).numpy(), base(_pixels(1))) is None
    assert not tflite_base.FrozenBase(model, str(data.WEIGHTS), SIZE).load().converted


def test_a_wrong_model_fails_the_check_and_a_cached_one_is_converted_again(cache):
    """A flatbuffer of other weights (random ones), stored under this model's key with a
    matching digest: its features fail the check; the base converts again and passes."""
    model = _featurizer()
    keras.utils.set_random_seed(0)
    other = _featurizer(weights=None)
    wrong, _ = tflite_base.flatbuffer(other, SIZE)
    # More photos than the check looks at: all of them come from the model converted again.
    pixels = _pixels(tflite_base.CHECK_PHOTOS + 2)
    from models import tflite_export  # pylint: disable=import-outside-toplevel
    reason = tflite_base.mismatch(model(pixels).numpy(), tflite_export.Runner(wrong).run(pixels))
    assert reason is not None and 'at most 0.001 allowed' in reason and 'cosine' in reason
    with pytest.raises(tflite_base.FeaturesMismatch, match='FROZEN_BASE_RUNTIME=tf'):
        tflite_base.check(reason)
    path = _cached_file(model)
    shutil.copy(_cached_file(other), path)
    shutil.copy(_cached_file(other) + '.sha256', path + '.sha256')
    base = tflite_base.FrozenBase(model, str(data.WEIGHTS), SIZE).load()
    assert not base.converted                      # the wrong file was read ...
    features = base(pixels)
    assert base.converted                          # ... failed the check, and was replaced
    assert tflite_base.mismatch(model(pixels).numpy(), features) is None


def test_random_weights_and_the_setting_keep_tensorflow(cache, monkeypatch):
    assert tflite_base.FrozenBase(_featurizer(weights=None), None, SIZE).runtime == tflite_base.TF
    monkeypatch.setenv(tflite_base.RUNTIME_ENV, 'TF')
    assert tflite_base.FrozenBase(_featurizer(), str(data.WEIGHTS), SIZE).runtime == 'tf'
    monkeypatch.setenv(tflite_base.RUNTIME_ENV, 'onnx')
    with pytest.raises(ValueError, match='FROZEN_BASE_RUNTIME'):
        tflite_base.runtime_setting()


def test_cache_folder_default_and_setting(monkeypatch, tmp_path):
    monkeypatch.delenv(tflite_base.CACHE_ENV, raising=False)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    assert tflite_base.cache_dir() == str(tmp_path / 'tfx-image-classification' / 'frozen-base')
    monkeypatch.setenv(tflite_base.CACHE_ENV, str(tmp_path / 'elsewhere'))
    assert tflite_base.cache_dir() == str(tmp_path / 'elsewhere')


def test_augmented_views_in_tflite_are_tensorflows(cache):
    """The Trainer's views: the same augmentation draws (same seed), the base in TFLite."""
    views = {}
    for weights_given in (True, False):
        keras.utils.set_random_seed(5)
        model = builders.build_transfer_model(SIZE, 2, weights=str(data.WEIGHTS), seed=5)
        views[weights_given], _ = frozen_training.view_features(
            model, photo_dataset('train', 3, batch_size=4), 2, None, 6,
            weights=str(data.WEIGHTS) if weights_given else None)
    assert views[True].shape == (6, 2, builders.POOLED_FEATURES)
    assert not np.allclose(views[True][:, 0], views[True][:, 1])     # two different draws
    assert tflite_base.mismatch(views[False].reshape(12, -1), views[True].reshape(12, -1)) is None


def test_a_cache_that_cannot_be_written_costs_a_conversion_not_the_run(tmp_path, monkeypatch,
                                                                       caplog):
    """The cache setting names a file, not a folder (as a read-only or foreign folder would
    refuse): the base is converted, checked and used; the cache is left, with a warning."""
    blocked = tmp_path / 'not a folder'
    blocked.write_bytes(b'')
    monkeypatch.setenv(tflite_base.CACHE_ENV, str(blocked))
    monkeypatch.delenv(tflite_base.RUNTIME_ENV, raising=False)
    model = _featurizer()
    base = tflite_base.FrozenBase(model, str(data.WEIGHTS), SIZE).load()
    assert base.runtime == tflite_base.TFLITE and base.converted
    pixels = _pixels(1)
    assert tflite_base.mismatch(model(pixels).numpy(), base(pixels)) is None
    assert blocked.read_bytes() == b'' and list(tmp_path.iterdir()) == [blocked]
    assert any('not cached' in r.getMessage() and str(blocked) in r.getMessage()
               for r in caplog.records)
    # The next run converts again.
    assert tflite_base.FrozenBase(model, str(data.WEIGHTS), SIZE).load().converted


def test_invokes_of_any_size_give_the_whole_batchs_features(cache):
    """The interpreter's input sized to invoke_batch once, the batch run through it in
    chunks (the last padded): each photo's features are the ones of one whole-batch
    invoke."""
    pixels = _pixels()                                                  # 8 photos
    model = _featurizer()
    whole = tflite_base.FrozenBase(model, str(data.WEIGHTS), SIZE, invoke_batch=None)(pixels)
    for invoke_batch in (1, 3, 8, 16):
        base = tflite_base.FrozenBase(model, str(data.WEIGHTS), SIZE, invoke_batch=invoke_batch)
        np.testing.assert_allclose(base(pixels), whole, rtol=0, atol=1e-6)
        np.testing.assert_allclose(base(pixels[5:]), whole[5:], rtol=0, atol=1e-6)
    from models import tflite_export  # pylint: disable=import-outside-toplevel
    with pytest.raises(ValueError, match='at least 1'):
        tflite_export.Runner(tflite_base.flatbuffer(model, SIZE)[0]).run(pixels, 0)


def test_one_frozen_base_per_trainer_run(cache, monkeypatch):
    """The eval features and the augmented copies come from one FrozenBase: the weights
    are hashed (and the model read and checked) once."""
    from models import training  # pylint: disable=import-outside-toplevel
    from tests.models.test_model_export import settings  # pylint: disable=import-outside-toplevel
    hashed = []
    real_key = tflite_base.cache_key
    monkeypatch.setattr(tflite_base, 'cache_key',
                        lambda *args: hashed.append(1) or real_key(*args))
    _, history, _ = training.train(settings(augmented_views=2), photo_dataset('train', 4),
                                   photo_dataset('validation', 2), train_count=8, eval_count=4)
    assert history['views'] == 2 and len(hashed) == 1
