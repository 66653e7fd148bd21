"""models/frozen_features.py: the features DataQuality writes are the Trainer's own, and the
Trainer validates on them without reading the eval split."""

import os

import numpy as np
import pytest
import tensorflow as tf

from models import builders
from models import features
from models import frozen_features
from models import frozen_training
from models import training
from tests import data
from tests.models.test_model_export import SIZE, photo_dataset, photo_dataset_with_paths, settings


def write_examples(path: str, split: str, per_class: int) -> None:
    """A split's gzipped TFRecords as ImageExampleGen writes them (image, label, path)."""
    with tf.io.TFRecordWriter(path, options='GZIP') as writer:
        for label, name in enumerate(('cats', 'dogs')):
            for photo in data.photos(split, name, per_class):
                writer.write(tf.train.Example(features=tf.train.Features(feature={
                    features.IMAGE_KEY: tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[photo.read_bytes()])),
                    features.LABEL_KEY: tf.train.Feature(
                        int64_list=tf.train.Int64List(value=[label])),
                    features.PATH_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(
                        value=[f'{split}/{name}/{photo.name}'.encode()])),
                })).SerializeToString())


@pytest.fixture(scope='module')
def stored(tmp_path_factory):
    """A FrozenFeatures artifact of 4 train and 3 eval photos per class, as DataQuality
    writes it."""
    work = tmp_path_factory.mktemp('frozen_features')
    model = frozen_features.featurizer(str(data.WEIGHTS), SIZE)
    writer = frozen_features.Writer(str(work / 'artifact'),
                                    frozen_features.meta(str(data.WEIGHTS), SIZE))
    for split, folder, per_class in (('train', 'train', 4), ('eval', 'validation', 3)):
        files = [str(work / f'{split}.gz')]
        write_examples(files[0], folder, per_class)
        for batch in frozen_features.batches(files, SIZE, model, batch_size=4):
            writer.add(split, batch['features'], batch['labels'], batch['paths'])
    writer.close()
    return str(work / 'artifact')


def test_rows_meta_and_photos_of_each_split(stored):
    meta = frozen_features.read_meta(stored)
    assert meta['splits'] == {'train': [0, 8], 'eval': [8, 6]} and meta['count'] == 14
    assert frozen_features.read_features(stored).shape == (14, builders.POOLED_FEATURES)
    pooled, labels, paths = frozen_features.load_split(stored, 'eval')
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert paths[0].decode().startswith('validation/cats/cat.')


def test_reusable_only_for_the_same_weights_size_and_photos(stored):
    found, why_not = frozen_features.reusable(stored, 'eval', str(data.WEIGHTS), SIZE, 6)
    assert why_not is None and len(found[0]) == 6
    for weights, size, count, reason in (
            (str(data.WEIGHTS), (128, 128), 6, 'image_size'), ('imagenet', SIZE, 6, 'weights'),
            (str(data.WEIGHTS), SIZE, 7, '6 eval photos instead of 7')):
        found, why_not = frozen_features.reusable(stored, 'eval', weights, size, count)
        assert found is None and reason in why_not
    assert frozen_features.reusable(None, 'eval', str(data.WEIGHTS), SIZE, 6) == (
        None, 'no frozen features given')


def test_trainer_validates_on_them_as_on_its_own_without_reading_the_eval_split(stored):
    eval_ds, _ = photo_dataset_with_paths('validation', 3)
    own = training.train(settings(), photo_dataset('train', 4), eval_ds, eval_count=6)
    precomputed, _ = frozen_features.reusable(stored, 'eval', str(data.WEIGHTS), SIZE, 6)

    def never():
        raise AssertionError('the eval split was read')
        yield  # pylint: disable=unreachable

    unread = tf.data.Dataset.from_generator(never, output_signature=eval_ds.element_spec)
    reused = training.train(settings(), photo_dataset('train', 4), unread, eval_count=6,
                            eval_features=precomputed)
    (_, own_history, own_answers), (_, history, answers) = own, reused
    assert history['eval_features_reused'] and not own_history['eval_features_reused']
    np.testing.assert_allclose(history['val_loss'], own_history['val_loss'], rtol=1e-4)
    assert history['val_accuracy'] == own_history['val_accuracy']
    # The same answers: the same photos, classes and counts; probabilities equal up to
    # float rounding (the features come from another pass of the base, its own threading).
    def numbers(found):
        return ([p for a in found['sample'] for p in a['probabilities']]
                + [m['probability'] for m in found['misclassified']])

    def rest(found):
        return (found['images'], [a['path'] for a in found['sample']],
                [{k: v for k, v in m.items() if k != 'probability'}
                 for m in found['misclassified']])
    assert rest(answers) == rest(own_answers)
    np.testing.assert_allclose(numbers(answers), numbers(own_answers), atol=1e-6)


def test_head_trains_on_the_photo_itself_as_one_view_and_the_split_is_not_read(stored):
    """No augmentation: the one view is the photo itself, DataQuality's features: the
    train split is not read, and the training is the one on the Trainer's own view."""
    eval_ds, _ = photo_dataset_with_paths('validation', 3)
    plain = settings(augmentation='none', augmented_views=3)
    train_ds, _ = photo_dataset_with_paths('train', 4)
    own = training.train(plain, train_ds, eval_ds, train_count=8, eval_count=6)

    def never():
        raise AssertionError('the train split was read')
        yield  # pylint: disable=unreachable

    unread = tf.data.Dataset.from_generator(never, output_signature=train_ds.element_spec)
    photos, _ = frozen_features.reusable(stored, 'train', str(data.WEIGHTS), SIZE, 8)
    reused = training.train(plain, unread, eval_ds, train_count=8, eval_count=6,
                            train_photos=photos)
    assert reused[1]['photo_view_reused'] and not own[1]['photo_view_reused']
    assert reused[1]['views'] == own[1]['views'] == 1
    np.testing.assert_allclose(reused[1]['val_loss'], own[1]['val_loss'], rtol=1e-3)


def test_with_augmentation_the_photo_is_the_first_of_the_views(stored):
    photos, _ = frozen_features.reusable(stored, 'train', str(data.WEIGHTS), SIZE, 8)
    train_ds, _ = photo_dataset_with_paths('train', 4)
    eval_ds, _ = photo_dataset_with_paths('validation', 3)
    _, history, _ = training.train(settings(augmented_views=3, epochs=3), train_ds, eval_ds,
                                   train_count=8, eval_count=6, train_photos=photos)
    assert history['photo_view_reused'] and history['views'] == 3
    # One view: an augmented model's single view stays a fresh augmented copy.
    _, history, _ = training.train(settings(augmented_views=1, epochs=3), train_ds, eval_ds,
                                   train_count=8, eval_count=6, train_photos=photos)
    assert not history['photo_view_reused']


def test_view_batches_take_the_photo_then_each_copy():
    labels = np.arange(4)
    copies = np.stack([np.full((4, 2), 10.0 + view) + labels[:, None] for view in range(2)],
                      axis=1).astype(np.float32)                    # [photos, 2 copies, 2]
    photo_features = np.array([[3.0, 3.0], [2.0, 2.0], [1.0, 1.0], [0.0, 0.0]], np.float32)
    rows = np.array([3, 2, 1, 0])                                   # photo i is row 3 - i
    batches = iter(frozen_training.view_batches(copies, labels, 4, seed=0,
                                        photo=(photo_features, rows)))
    for epoch in range(6):
        features_, batch_labels = next(batches)
        view = epoch % 3
        expected = (batch_labels.numpy()[:, None] * np.ones(2) if view == 0
                    else 10.0 + (view - 1) + batch_labels.numpy()[:, None] * np.ones(2))
        np.testing.assert_array_equal(features_.numpy(), expected)


def test_photo_rows_refuse_other_photos_or_labels():
    paths = np.array([b'a', b'b'], dtype=object)
    rows = frozen_training.photo_rows(paths, np.array([0, 1]), paths[::-1], np.array([1, 0]))
    assert rows.tolist() == [1, 0]
    with pytest.raises(ValueError, match='not there'):
        frozen_training.photo_rows(paths, np.array([0, 1]), np.array([b'a', b'c'], dtype=object),
                                   np.array([0, 1]))
    with pytest.raises(ValueError, match='another label'):
        frozen_training.photo_rows(paths, np.array([0, 1]), paths, np.array([1, 1]))


def _rows(count, seed=0):
    return np.random.default_rng(seed).random((count, builders.POOLED_FEATURES), np.float32)


def _write(uri, batches, split='train'):
    writer = frozen_features.Writer(uri, frozen_features.meta(None, SIZE))
    for rows in batches:
        writer.add(split, rows, [0] * len(rows), [b'p'] * len(rows))
    return writer


@pytest.mark.parametrize('where', ['local', 'remote'])
def test_features_are_streamed_into_the_artifact_and_read_memory_mapped(where, tmp_path):
    """Local: the rows go straight into the artifact folder, under a temporary name until
    close; remote (TF's ram:// file system): one local file, copied once at close."""
    uri = str(tmp_path / 'artifact') if where == 'local' else f'ram://{tmp_path}/artifact'
    batches = [_rows(5, 1), _rows(32, 2), _rows(1, 3)]
    writer = _write(uri, batches)
    if where == 'local':
        assert sorted(os.listdir(uri)) == [frozen_features.PARTIAL_PREFIX + n for n in (
            frozen_features.FEATURES_FILE, frozen_features.PHOTOS_FILE)]
    assert not tf.io.gfile.exists(os.path.join(uri, frozen_features.FEATURES_FILE))
    writer.close()
    assert writer.count == 38 and frozen_features.read_meta(uri)['count'] == 38
    stored = frozen_features.read_features(uri, str(tmp_path))
    assert isinstance(stored, np.memmap) and stored.shape == (38, builders.POOLED_FEATURES)
    np.testing.assert_array_equal(stored, np.concatenate(batches))
    assert sorted(tf.io.gfile.listdir(uri)) == sorted(
        [frozen_features.FEATURES_FILE, frozen_features.PHOTOS_FILE, frozen_features.META_FILE])
    assert frozen_features.read_meta(uri)['splits'] == {'train': [0, 38]}


def test_a_failure_halfway_leaves_no_features_file(tmp_path):
    uri = str(tmp_path / 'artifact')
    _write(uri, [_rows(4)]).close()                       # an earlier attempt's artifact
    writer = _write(uri, [_rows(3)])                      # this one stops before close
    assert not [n for n in os.listdir(uri) if not n.startswith(frozen_features.PARTIAL_PREFIX)]
    writer.abort()
    assert os.listdir(uri) == []
    with pytest.raises(RuntimeError, match='stopped'):
        with frozen_features.Writer(uri, frozen_features.meta(None, SIZE)) as writer:
            writer.add('train', _rows(2), [0, 1], [b'a', b'b'])
            raise RuntimeError('stopped')
    assert os.listdir(uri) == []
    with pytest.raises(ValueError, match=f'{frozen_features.FEATURES_FILE}: rows of '):
        with frozen_features.Writer(uri, frozen_features.meta(None, SIZE)) as writer:
            writer.add('train', _rows(2)[:, :7], [0, 1], [b'a', b'b'])
    assert os.listdir(uri) == []


def test_a_header_that_does_not_fit_in_place_fails_clearly(tmp_path, monkeypatch):
    """A numpy whose header grew with the row count could not be rewritten in place: the
    close says so and leaves nothing."""
    padded = frozen_features.npy_header
    monkeypatch.setattr(frozen_features, 'npy_header',
                        lambda rows, dimensions: padded(rows, dimensions) + b' ' * 64 * (rows > 0))
    uri = str(tmp_path / 'artifact')
    writer = _write(uri, [_rows(3)])
    with pytest.raises(ValueError, match='cannot be rewritten in place'):
        writer.close()
    assert os.listdir(uri) == []
    # numpy's own header keeps its length from 0 rows to far more than any split holds.
    assert len(padded(0, builders.POOLED_FEATURES)) == len(padded(10 ** 15,
                                                                   builders.POOLED_FEATURES))
