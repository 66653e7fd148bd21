"""Trainer pieces and the exported signatures, on real photos."""

import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from models import builders
from models import export
from models import features
from models import model as trainer
from models import preprocessing
from tests import data
from tests import transform_graph

SIZE = (96, 96)


def photo_dataset(split, per_class, batch_size=8):
    paths = data.photos(split, 'cats', per_class) + data.photos(split, 'dogs', per_class)
    images = preprocessing.preprocess_images(tf.constant([p.read_bytes() for p in paths]), SIZE)
    labels = tf.constant([0] * per_class + [1] * per_class, tf.int64)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)


def settings(**overrides):
    values = dict(labels=['cats', 'dogs'], image_size=list(SIZE), model_variant='transfer',
                  weights=str(data.WEIGHTS), epochs=2, batch_size=8, learning_rate=1e-3,
                  dropout=0.2, fine_tune_layers=0, fine_tune_epochs=0,
                  fine_tune_learning_rate=1e-5, seed=1)
    values.update(overrides)
    return trainer.TrainerSettings.from_custom_config(values)


def test_frozen_feature_validation_equals_keras_evaluate():
    train_ds, eval_ds = photo_dataset('train', 8), photo_dataset('validation', 6)
    model, history = trainer.train(settings(), train_ds, eval_ds)
    assert len(history['val_accuracy']) == len(history['epoch_seconds']) == 2
    loss, accuracy = model.evaluate(eval_ds, verbose=0)
    assert history['val_accuracy'][-1] == pytest.approx(accuracy, abs=1e-6)
    assert history['val_loss'][-1] == pytest.approx(loss, rel=1e-4)


def test_fine_tuning_continues_the_history():
    train_ds, eval_ds = photo_dataset('train', 4), photo_dataset('validation', 2)
    _, history = trainer.train(settings(epochs=1, fine_tune_layers=5, fine_tune_epochs=1),
                               train_ds, eval_ds)
    assert len(history['accuracy']) == len(history['val_accuracy']) == 2
    assert history['fine_tune_from_epoch'] == 1


def test_settings_name_missing_keys():
    with pytest.raises(ValueError, match=r"misses \['seed'\]"):
        trainer.TrainerSettings.from_custom_config(
            {k: v for k, v in settings().__dict__.items() if k != 'seed'})


def test_served_signatures_match_the_model_on_transform_output(tmp_path):
    tf_transform_output = transform_graph.write_transform_graph(str(tmp_path / 'tft'), SIZE)
    model = builders.build_transfer_model(SIZE, 2, weights=str(data.WEIGHTS), seed=3)
    export_dir = str(tmp_path / 'export')
    export.export_model(model, tf_transform_output, ['cats', 'dogs'], export_dir)

    photos = data.photos('validation', 'cats', 2) + data.photos('validation', 'dogs', 2)
    raw = tf.constant([p.read_bytes() for p in photos])
    expected = tf.nn.softmax(model(preprocessing.preprocess_images(raw, SIZE), training=False)).numpy()
    loaded = tf.saved_model.load(export_dir)
    served = loaded.signatures[features.SERVING_SIGNATURE](**{features.SERVING_INPUT: raw})
    np.testing.assert_allclose(served[features.PROBABILITIES_OUTPUT].numpy(), expected,
                               atol=1e-5)
    assert [l.decode() for l in served[features.LABEL_OUTPUT].numpy()] == [
        ['cats', 'dogs'][i] for i in expected.argmax(axis=1)]
    assert (tmp_path / 'export' / 'assets.extra' / 'labels.txt').read_text() == 'cats\ndogs\n'

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((tmp_path / 'export' / 'saved_model.pb').read_bytes())
    signatures = saved_model.meta_graphs[0].signature_def
    assert signatures[features.EXAMPLES_SIGNATURE].method_name == 'tensorflow/serving/classify'
    assert signatures[features.SERVING_SIGNATURE].method_name == 'tensorflow/serving/predict'
    assert set(signatures[features.SERVING_SIGNATURE].inputs) == {features.SERVING_INPUT}
    transformed = loaded.signatures[features.TRANSFORM_SIGNATURE](examples=tf.constant([
        tf.train.Example(features=tf.train.Features(feature={features.IMAGE_KEY: tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[photos[0].read_bytes()]))})).SerializeToString()]))
    np.testing.assert_allclose(transformed[features.transformed_name(features.IMAGE_KEY)],
                               preprocessing.preprocess_images(raw[:1], SIZE), atol=1e-6)
