"""models/frozen_features.py: the features DataQuality writes are the Trainer's own, and the
Trainer validates on them without reading the eval split."""

import os

import numpy as np
import pytest
import tensorflow as tf

from models import builders
from models import features
from models import frozen_features
from models import model as trainer
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
    own = trainer.train(settings(), photo_dataset('train', 4), eval_ds, eval_count=6)
    precomputed, _ = frozen_features.reusable(stored, 'eval', str(data.WEIGHTS), SIZE, 6)

    def never():
        raise AssertionError('the eval split was read')
        yield  # pylint: disable=unreachable

    unread = tf.data.Dataset.from_generator(never, output_signature=eval_ds.element_spec)
    reused = trainer.train(settings(), photo_dataset('train', 4), unread, eval_count=6,
                           eval_features=precomputed)
    (_, own_history, own_answers), (_, history, answers) = own, reused
    assert history['eval_features_reused'] and not own_history['eval_features_reused']
    np.testing.assert_allclose(history['val_loss'], own_history['val_loss'], rtol=1e-4)
    assert history['val_accuracy'] == own_history['val_accuracy']
    assert answers == own_answers
