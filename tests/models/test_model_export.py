"""Trainer pieces and the exported signatures, on real photos."""

import dataclasses
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from tensorflow.core.protobuf import saved_model_pb2

from models import builders
from models import export
from models import features
from models import frozen_training
from models import inputs
from models import preprocessing
from models import trainer_settings
from models import training
from tests import data
from tests import transform_graph

SIZE = (96, 96)


def _photos(split, per_class):
    """(images, paths as the examples name them, labels) of per_class cats, then dogs."""
    paths = data.photos(split, 'cats', per_class) + data.photos(split, 'dogs', per_class)
    images = preprocessing.preprocess_images(tf.constant([p.read_bytes() for p in paths]), SIZE)
    names = tf.constant([f'{split}/{p.parent.name}/{p.name}' for p in paths])
    return images, names, tf.constant([0] * per_class + [1] * per_class, tf.int64)


def photo_dataset(split, per_class, batch_size=8):
    images, _, labels = _photos(split, per_class)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)


def settings(**overrides):
    # The Training defaults, smaller and quicker, as custom_config carries them.
    values = dict(dataclasses.asdict(trainer_settings.Training()), class_names=['cats', 'dogs'],
                  image_size=list(SIZE), weights=str(data.WEIGHTS), epochs=2, batch_size=8,
                  seed=1, augmented_views=0)
    values.update(overrides)
    return trainer_settings.TrainerSettings.from_custom_config(values)


@pytest.mark.parametrize('where', ['memory', 'file'])
def test_frozen_feature_validation_equals_keras_evaluate(where, tmp_path, monkeypatch):
    train_ds, (eval_ds, names) = photo_dataset('train', 8), photo_dataset_with_paths('validation', 6)
    if where == 'file':
        # Any split exceeds the memory budget; the head evaluates 5 eval images at a time.
        monkeypatch.setattr(inputs, 'CACHE_BUDGET_BYTES', 1)
        monkeypatch.setattr(frozen_training, 'EVAL_CHUNK', 5)
    model, history, answers = training.train(settings(), train_ds, eval_ds, eval_count=12,
                                             features_dir=str(tmp_path))
    stored = tmp_path / frozen_training.EVAL_FEATURES_FILE
    assert stored.is_file() == (where == 'file')
    if where == 'file':
        assert np.load(stored).shape == (12, 1, builders.POOLED_FEATURES)
    assert len(history['val_accuracy']) == len(history['epoch_seconds']) == 2
    assert_answers_are_the_models(model, history, answers, eval_ds, names)
    assert_last_validation_is_keras_evaluate(model, history, eval_ds)


def test_fine_tuning_continues_the_history(fine_tuned):
    # The module's one fine-tuned model (below): 2 head epochs, then 1 of fine-tuning.
    model, history, answers, eval_ds, names, _ = fine_tuned
    head_epochs = FINE_TUNE['epochs']
    assert len(history['accuracy']) == len(history['val_accuracy']) == head_epochs + 1
    assert len(history['epoch_seconds']) == head_epochs + 1
    assert history['fine_tune_from_epoch'] == head_epochs
    # The base changed: the answers come from one more pass, not the first features.
    assert_answers_are_the_models(model, history, answers, eval_ds, names)


def test_early_stopping_keeps_the_epoch_with_the_lowest_eval_loss():
    train_ds, eval_ds = photo_dataset('train', 6), photo_dataset('validation', 4)
    # A learning rate this high makes the eval loss go up again within a few epochs.
    model, history, answers = training.train(settings(epochs=8, learning_rate=0.3,
                                                   early_stopping_patience=1), train_ds, eval_ds)
    trained = len(history['val_loss'])
    best = history['best_epoch']
    assert 1 <= best <= trained
    assert history['val_loss'][best - 1] == min(history['val_loss'])
    assert trained == 8 or trained == best + 1    # stopped one epoch after the best
    loss, _ = model.evaluate(eval_ds, verbose=0)
    assert loss == pytest.approx(min(history['val_loss']), rel=1e-4)   # best weights restored
    assert_answers_are_the_models(model, history, answers, eval_ds)   # no paths: None


def photo_dataset_with_paths(split, per_class, batch_size=8):
    """((image, path), label) batches, as the Trainer's eval split with_paths."""
    images, names, labels = _photos(split, per_class)
    return tf.data.Dataset.from_tensor_slices(((images, names), labels)).batch(batch_size), names


def assert_last_validation_is_keras_evaluate(model, history, eval_ds):
    """The last epoch's val_loss and val_accuracy are Keras' evaluate() of the final model."""
    loss, accuracy = model.evaluate(inputs.without_paths(eval_ds), verbose=0)
    assert history['val_accuracy'][-1] == pytest.approx(accuracy, abs=1e-6)
    assert history['val_loss'][-1] == pytest.approx(loss, rel=1e-4)


def assert_answers_are_the_models(model, history, answers, eval_ds, names=None):
    """The Trainer's eval answers are what the final model predicts, image by image."""
    images = eval_ds.map(lambda x, label: x[0] if isinstance(x, tuple) else x)
    labels = np.concatenate([label.numpy() for _, label in eval_ds])
    predicted = np.argmax(model.predict(images, verbose=0), axis=-1)
    wrong = np.flatnonzero(predicted != labels)
    assert answers['images'] == len(labels)
    assert [a['path'] for a in answers['misclassified']] == [
        names[i].numpy().decode() if names is not None else None for i in wrong]
    for answer, i in zip(answers['misclassified'], wrong):
        assert answer['true_label'] == ['cats', 'dogs'][labels[i]]
        assert answer['predicted_label'] == ['cats', 'dogs'][predicted[i]]
        assert 0.5 <= answer['probability'] <= 1.0
    # The accuracy they imply is the last (or, with early stopping, the best) epoch's.
    last = history['best_epoch'] - 1 if 'best_epoch' in history else -1
    assert 1 - len(wrong) / len(labels) == pytest.approx(history['val_accuracy'][last], abs=1e-6)


def test_eval_answers_of_a_model_without_a_frozen_base():
    eval_ds, names = photo_dataset_with_paths('validation', 3)
    model, history, answers = training.train(
        settings(model_variant='cnn', weights=None, epochs=1), photo_dataset('train', 3), eval_ds)
    assert_answers_are_the_models(model, history, answers, eval_ds, names)


def test_label_smoothing_and_augmentation_strengths_train():
    train_ds, eval_ds = photo_dataset('train', 4), photo_dataset('validation', 2)
    for strength, smoothing in (('none', 0.1), ('strong', 0.0)):
        model, history, _ = training.train(settings(epochs=1, augmentation=strength,
                                                label_smoothing=smoothing), train_ds, eval_ds)
        assert np.isfinite(history['loss'][0])
        names = [layer.name for layer in model.layers]
        assert ('augmentation' in names) == (strength != 'none')
    smoothed = builders.SmoothedSparseCrossentropy(0.2)
    logits = tf.constant([[10.0, -10.0]])
    # Smoothing 0.2 over 2 classes: targets 0.9 / 0.1, so a confident right answer still costs.
    assert float(smoothed(tf.constant([0]), logits)) == pytest.approx(0.1 * 20, rel=1e-3)
    plain = builders.compile_model(builders.build_transfer_model(
        SIZE, 2, weights=None), 1e-3).loss
    assert float(plain(tf.constant([0]), logits)) == pytest.approx(0.0, abs=1e-6)


def test_served_signatures_match_the_model_on_transform_output(fine_tuned_export):
    # The module's fine-tuned model, exported once (below) in chunks of 3: the 4 photos
    # below go through the model as 3 + 1.
    model, export_dir = fine_tuned_export
    export_path = pathlib.Path(export_dir)

    photos = data.photos('validation', 'cats', 2) + data.photos('validation', 'dogs', 2)
    raw = tf.constant([p.read_bytes() for p in photos])
    expected = tf.nn.softmax(model(preprocessing.preprocess_images(raw, SIZE), training=False)).numpy()
    loaded = tf.saved_model.load(export_dir)
    served = loaded.signatures[features.SERVING_SIGNATURE](**{features.SERVING_INPUT: raw})
    np.testing.assert_allclose(served[features.PROBABILITIES_OUTPUT].numpy(), expected,
                               atol=1e-5)
    assert [l.decode() for l in served[features.CLASS_NAME_OUTPUT].numpy()] == [
        ['cats', 'dogs'][i] for i in expected.argmax(axis=1)]
    assert (export_path / 'assets.extra' / 'labels.txt').read_text() == 'cats\ndogs\n'
    embedded = loaded.signatures[features.EMBEDDING_SIGNATURE](**{features.SERVING_INPUT: raw})
    np.testing.assert_allclose(embedded[features.PROBABILITIES_OUTPUT].numpy(), expected,
                               atol=1e-5)
    # The head's input: the frozen base's pooled features.
    features_model = keras.Model(model.inputs, model.get_layer(builders.HEAD_LAYER).input)
    np.testing.assert_allclose(
        embedded[features.EMBEDDING_OUTPUT].numpy(),
        features_model(preprocessing.preprocess_images(raw, SIZE), training=False).numpy(),
        atol=1e-4)

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((export_path / 'saved_model.pb').read_bytes())
    signatures = saved_model.meta_graphs[0].signature_def
    assert signatures[features.EXAMPLES_SIGNATURE].method_name == 'tensorflow/serving/classify'
    assert signatures[features.SERVING_SIGNATURE].method_name == 'tensorflow/serving/predict'
    assert set(signatures[features.SERVING_SIGNATURE].inputs) == {features.SERVING_INPUT}
    transformed = loaded.signatures[features.TRANSFORM_SIGNATURE](examples=tf.constant([
        tf.train.Example(features=tf.train.Features(feature={features.IMAGE_KEY: tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[photos[0].read_bytes()]))})).SerializeToString()]))
    np.testing.assert_allclose(transformed[features.transformed_name(features.IMAGE_KEY)],
                               preprocessing.preprocess_images(raw[:1], SIZE), atol=1e-6)

    examples = tf.constant([tf.train.Example(features=tf.train.Features(feature={
        features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))}))
        .SerializeToString() for image in raw.numpy()])
    classified = loaded.signatures[features.EXAMPLES_SIGNATURE](
        **{features.EXAMPLES_INPUT: examples})
    np.testing.assert_allclose(classified[features.SCORES_OUTPUT].numpy(), expected, atol=1e-5)
    assert classified[features.CLASSES_OUTPUT].numpy().tolist() == [[b'cats', b'dogs']] * 4
    # No images, no answers (and no error).
    empty = loaded.signatures[features.SERVING_SIGNATURE](
        **{features.SERVING_INPUT: tf.constant([], tf.string)})
    assert empty[features.PROBABILITIES_OUTPUT].shape == (0, 2)
    assert empty[features.CLASS_NAME_OUTPUT].shape == (0,)
    assert loaded.signatures[features.EMBEDDING_SIGNATURE](
        **{features.SERVING_INPUT: tf.constant([], tf.string)})[
        features.EMBEDDING_OUTPUT].shape == (0, builders.POOLED_FEATURES)


def test_signatures_run_a_batch_in_chunks_with_the_same_answers():
    def double(x):
        # Each row also says how many rows its call saw.
        return {'twice': tf.stack([x, x], axis=1), 'seen': tf.fill(tf.shape(x), tf.size(x))}

    inputs = tf.constant([str(i) * (i + 1) for i in range(7)])
    for chunk, seen in ((1, [1] * 7), (3, [3, 3, 3, 3, 3, 3, 1]), (7, [7] * 7), (10, [7] * 7)):
        parts = tf.function(lambda x, c=chunk: export.in_chunks(double, x, c))(inputs)
        assert parts['twice'].numpy().tolist() == double(inputs)['twice'].numpy().tolist()
        assert parts['seen'].numpy().tolist() == seen


def test_count_records_counts_every_shard_of_the_split(tmp_path):
    split = tmp_path / 'Split-train'
    split.mkdir()
    for shard, count in enumerate((3, 4)):
        with tf.io.TFRecordWriter(str(split / f'data-{shard}.gz'), options='GZIP') as writer:
            for i in range(count):
                writer.write(f'record {i}'.encode())
    pattern = [str(split / '*')]
    assert inputs.count_records(pattern) == 7
    with pytest.raises(FileNotFoundError, match='no files match'):
        inputs.count_records([str(tmp_path / 'missing' / '*')])


def _pairs(n):
    images = tf.random.stateless_uniform((n, 4, 4, 3), seed=(1, 2), minval=-1.0, maxval=1.0)
    return tf.data.Dataset.from_tensor_slices((images, tf.range(n, dtype=tf.int64)))


def _epoch(dataset):
    images, labels = zip(*[(i.numpy(), l.numpy()) for i, l in dataset])
    return np.concatenate(images), np.concatenate(labels)


@pytest.mark.parametrize('count, limit, where', [
    (40, 100, 'memory'),       # fits: cached in memory, no file
    (40, 10, 'file'),          # too large for memory: cached in a file under cache_dir
    (None, 100, 'none'),       # not counted: read and decoded every epoch
])
def test_input_pipeline_caches_in_memory_or_in_a_file(tmp_path, count, limit, where):
    decoded = _pairs(40)
    dataset = inputs.input_pipeline(decoded, 8, training=True, seed=3, count=count, limit=limit,
                                    cache_dir=str(tmp_path))
    # No autotuning thread: TF 2.16 waits up to a minute for it when an iterator goes.
    assert dataset.options().autotune.enabled is False
    first_images, first = _epoch(dataset)
    second_images, second = _epoch(dataset)
    assert sorted(first) == sorted(second) == list(range(40))
    assert list(first) != list(second)                 # reshuffled every epoch
    source_images, source_labels = _epoch(decoded.batch(40))
    expected = {int(label): image for image, label in zip(source_images, source_labels)}
    cached = where != 'none'
    for images, labels in ((first_images, first), (second_images, second)):
        for image, label in zip(images, labels):
            # uint8 pixels when cached: within half a step of 255 levels over [-1, 1].
            np.testing.assert_allclose(image, expected[int(label)],
                                       atol=1.0 / 127.5 if cached else 1e-6)
    files = os.listdir(tmp_path)
    assert bool(files) == (where == 'file'), files


def test_file_cache_only_when_the_decoded_split_fits_the_disk():
    image = 224 * 224 * 3
    spare = inputs.CACHE_DISK_HEADROOM_BYTES
    assert inputs.file_cache_fits(10_000, image, 10_000 * image + spare)
    assert not inputs.file_cache_fits(10_000, image, 10_000 * image + spare - 1)
    assert not inputs.file_cache_fits(1_000_000, image, 100 * 2**30)   # 150 GB of pixels


@pytest.mark.parametrize('limit', [100, 10])   # in memory, in a file
def test_cached_eval_split_keeps_each_images_path(tmp_path, limit):
    images, labels = next(iter(_pairs(12).batch(12)))
    paths = tf.constant([f'validation/c/{i}.jpg' for i in range(12)])
    decoded = tf.data.Dataset.from_tensor_slices(((images, paths), labels))
    dataset = inputs.input_pipeline(decoded, 5, training=False, seed=3, count=12, limit=limit,
                                    cache_dir=str(tmp_path))
    for _ in range(2):                                  # filled, then read from the cache
        batches = list(dataset)
        got_paths = np.concatenate([x[1].numpy() for x, _ in batches])
        got_labels = np.concatenate([label.numpy() for _, label in batches])
        assert [p.decode() for p in got_paths] == [f'validation/c/{i}.jpg' for i in got_labels]
        got_images = np.concatenate([x[0].numpy() for x, _ in batches])
        np.testing.assert_allclose(got_images, images.numpy()[got_labels], atol=1.0 / 127.5)
    assert inputs.without_paths(dataset).element_spec[0].shape.as_list() == [None, 4, 4, 3]


@pytest.mark.parametrize('count, limit', [(40, 100), (40, 10)])   # in memory, in a file
def test_repeated_pipeline_gives_reshuffled_whole_epochs(tmp_path, count, limit):
    dataset = inputs.input_pipeline(_pairs(count), 16, training=True, seed=3, count=count,
                                    limit=limit, cache_dir=str(tmp_path), repeat=True)
    steps = inputs.steps_per_epoch(count, 16)
    assert steps == 3                                       # 16 + 16 + 8
    batches = [labels.numpy() for _, labels in dataset.take(3 * steps)]
    assert [len(b) for b in batches] == [16, 16, 8] * 3    # each epoch ends on its short batch
    epochs = [np.concatenate(batches[i * steps:(i + 1) * steps]) for i in range(3)]
    for epoch in epochs:
        assert sorted(epoch) == list(range(count))
    assert list(epochs[0]) != list(epochs[1]) != list(epochs[2])


def test_head_trained_on_augmented_copies_is_the_models_head():
    train_ds, (eval_ds, names) = photo_dataset('train', 8), photo_dataset_with_paths('validation', 6)
    model, history, answers = training.train(settings(epochs=3, augmented_views=2), train_ds,
                                             eval_ds, train_count=16)
    assert history['views'] == 2
    assert history['seconds']['train_features'] <= history['seconds']['fit']
    assert len(history['accuracy']) == len(history['val_accuracy']) == 3
    # The head model shares the transfer model's layers: what it learnt, the model answers.
    assert_answers_are_the_models(model, history, answers, eval_ds, names)
    assert_last_validation_is_keras_evaluate(model, history, eval_ds)


def test_fine_tuning_after_a_head_trained_on_augmented_copies():
    train_ds, eval_ds = photo_dataset('train', 4), photo_dataset('validation', 2)
    model, history, answers = training.train(
        settings(epochs=2, augmented_views=2, fine_tune_from_layer=150, fine_tune_epochs=1),
        train_ds, eval_ds, train_count=8)
    assert history['views'] == 2 and history['fine_tune_from_epoch'] == 2
    assert len(history['accuracy']) == len(history['val_accuracy']) == 3
    assert_answers_are_the_models(model, history, answers, eval_ds)


def test_augmented_copies_are_new_draws_of_the_augmentation(tmp_path):
    model = builders.build_transfer_model(SIZE, 2, weights=str(data.WEIGHTS), seed=4)
    train_ds = photo_dataset('train', 5, batch_size=4)          # batches of 4, 4, 2
    copies, labels = frozen_training.view_features(model, train_ds, 3, None, 10)
    assert copies.shape == (10, 3, builders.POOLED_FEATURES)
    assert list(labels) == [0] * 5 + [1] * 5
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert np.abs(copies[:, a] - copies[:, b]).mean() > 0.05 * np.abs(copies).mean()
    # Without augmentation every copy is the photo itself: the model's own pooled features,
    # photo by photo.
    plain = builders.build_transfer_model(SIZE, 2, weights=str(data.WEIGHTS), augment='none')
    pooled = keras.Model(plain.inputs, plain.get_layer(builders.POOL_LAYER).output).predict(
        train_ds.map(lambda x, _: x), verbose=0)
    # In memory, or written to a memory-mapped file as they come: the same.
    for path in (None, str(tmp_path / frozen_training.FEATURES_FILE)):
        copy, labels = frozen_training.view_features(plain, train_ds, 2, None, 10, path)
        assert list(labels) == [0] * 5 + [1] * 5
        for view in range(2):
            np.testing.assert_allclose(copy[:, view], pooled, rtol=1e-5, atol=1e-5)
    assert isinstance(copy, np.memmap)
    np.testing.assert_array_equal(np.load(tmp_path / frozen_training.FEATURES_FILE), copy)
    with pytest.raises(ValueError, match='holds 10 photos, not the 11 counted'):
        frozen_training.view_features(plain, train_ds, 1, None, 11)


def test_each_epoch_takes_the_next_copy_of_every_photo_in_a_new_order():
    count, views = 10, 3
    # Copy v of photo i holds (i, v), so every batch says which photos and copies it took.
    copies = np.array([[[i, v] for v in range(views)] for i in range(count)], np.float32)
    labels = np.arange(count, dtype=np.int64)
    dataset = frozen_training.view_batches(copies, labels, 4, seed=7)
    assert dataset.options().autotune.enabled is False
    steps = inputs.steps_per_epoch(count, 4)
    batches = list(dataset.take(5 * steps))
    orders = []
    for epoch in range(5):
        x = np.concatenate([b[0].numpy() for b in batches[epoch * steps:(epoch + 1) * steps]])
        y = np.concatenate([b[1].numpy() for b in batches[epoch * steps:(epoch + 1) * steps]])
        assert sorted(y) == list(range(count))                  # every photo once
        assert list(x[:, 0]) == list(y)                         # its own features
        assert set(x[:, 1]) == {epoch % views}                  # copy e mod views
        orders.append(list(y))
    assert len({tuple(o) for o in orders}) == 5                 # reshuffled every epoch


def test_augmented_copies_in_memory_in_a_file_or_not_at_all():
    per_photo = 3 * builders.POOLED_FEATURES * 4
    fits = inputs.CACHE_BUDGET_BYTES // per_photo
    spare = inputs.CACHE_DISK_HEADROOM_BYTES
    three = settings(augmented_views=3, epochs=10)
    feature_views = frozen_training.feature_views
    assert feature_views(three, fits) == (3, False)                   # in memory
    assert feature_views(three, fits + 1) == (0, False)               # base every epoch
    assert feature_views(three, fits + 1, (fits + 1) * per_photo + spare) == (3, True)
    assert feature_views(three, fits + 1, (fits + 1) * per_photo + spare - 1) == (0, False)
    assert feature_views(three, None) == (0, False)
    assert feature_views(settings(augmented_views=0), 100) == (0, False)
    assert feature_views(settings(augmented_views=3, model_variant='cnn'), 100) == (0, False)
    # Without augmentation all copies would be the same photo: one.
    assert feature_views(settings(augmented_views=3, augmentation='none'), 100) == (1, False)
    # No more copies than epochs to use them: one epoch is the tutorial's fresh augmentation.
    assert feature_views(settings(augmented_views=3, epochs=1), 100) == (1, False)
    assert feature_views(settings(augmented_views=3, epochs=2), 100) == (2, False)


def test_head_trained_on_augmented_copies_kept_in_a_file(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, 'CACHE_BUDGET_BYTES', 1)     # any split exceeds memory
    train_ds, eval_ds = photo_dataset('train', 4), photo_dataset('validation', 2)
    model, history, answers = training.train(settings(epochs=2, augmented_views=2), train_ds,
                                             eval_ds, train_count=8, features_dir=str(tmp_path))
    assert history['views'] == 2 and len(history['accuracy']) == 2
    stored = np.load(tmp_path / frozen_training.FEATURES_FILE)
    assert stored.shape == (8, 2, builders.POOLED_FEATURES) and np.abs(stored).sum() > 0
    assert_answers_are_the_models(model, history, answers, eval_ds)


def test_train_follows_the_plan_its_caller_read_the_split_by(tmp_path, monkeypatch):
    # run_fn decides once whether the train split is read once (copies) or every epoch;
    # train() must not decide again with the disk's free space of a later moment.
    monkeypatch.setattr(inputs, 'CACHE_BUDGET_BYTES', 1)     # copies would go to a file
    train_ds, eval_ds = photo_dataset('train', 4), photo_dataset('validation', 2)
    _, history, _ = training.train(settings(epochs=1, augmented_views=2), train_ds, eval_ds,
                                   train_count=8, features_dir=str(tmp_path),
                                   views_plan=(0, False))
    assert history['views'] == 0 and 'train_features' not in history['seconds']
    assert not (tmp_path / frozen_training.FEATURES_FILE).exists()


# Fine-tuning: the model validates on the photos it trains on, without augmentation or
# dropout, so one epoch at this rate lowers the eval loss below the head's and the
# fine-tuned weights are the ones kept (asserted, not assumed).
FIRST_TRAINABLE = 140
FINE_TUNE = dict(epochs=2, augmentation='none', dropout=0.0, fine_tune_from_layer=FIRST_TRAINABLE,
                 fine_tune_learning_rate=1e-4, fine_tune_patience=0)


@pytest.fixture(scope='module')
def fine_tuned():
    """(model, history, answers, eval paths, eval photos' bytes) of train() with 1 fine-tuning
    epoch on 6 photos, validated on the same photos (with their paths)."""
    images, names, labels = _photos('train', 3)
    train_ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    eval_ds = tf.data.Dataset.from_tensor_slices(((images, names), labels)).batch(4)
    model, history, answers = training.train(settings(fine_tune_epochs=1, **FINE_TUNE),
                                             train_ds, eval_ds)
    raw = [p.read_bytes() for p in data.photos('train', 'cats', 3) + data.photos('train', 'dogs', 3)]
    return model, history, answers, eval_ds, names, raw


def test_fine_tuning_trains_the_base_from_its_first_trainable_layer_only(fine_tuned):
    model, history, _, _, _, _ = fine_tuned
    assert history['fine_tune_from_epoch'] == 2
    assert history['best_epoch'] == 3          # the fine-tuned epoch, not the head's
    assert history['val_loss'][2] < history['val_loss'][1]
    pretrained = builders.build_transfer_model(SIZE, 2, weights=str(data.WEIGHTS),
                                               augment='none').get_layer(builders.BASE_MODEL_NAME)
    base = model.get_layer(builders.BASE_MODEL_NAME)
    changed = set()
    for index, (tuned_layer, layer) in enumerate(zip(base.layers, pretrained.layers)):
        batch_norm = isinstance(layer, keras.layers.BatchNormalization)
        for tuned_weight, weight in zip(tuned_layer.weights, layer.weights):
            statistic = batch_norm and 'moving_' in weight.name
            same = np.array_equal(tuned_weight.numpy(), weight.numpy())
            # Below the first trainable layer nothing moves; BatchNorm's moving statistics
            # never do (inference mode), even in the trained top.
            if index < FIRST_TRAINABLE or statistic:
                assert same, (index, weight.name)
            elif not same:
                changed.add(index)
    assert changed and min(changed) >= FIRST_TRAINABLE      # the top did train


@pytest.fixture(scope='module')
def fine_tuned_export(fine_tuned, tmp_path_factory):
    """(model, SavedModel dir) of the fine-tuned model exported with its Transform graph,
    the serving signatures running the model in chunks of 3 photos."""
    model = fine_tuned[0]
    folder = tmp_path_factory.mktemp('fine_tuned_export')
    tf_transform_output = transform_graph.write_transform_graph(str(folder / 'tft'), SIZE)
    export.export_model(model, tf_transform_output, ['cats', 'dogs'], str(folder / 'export'),
                        chunk=3)
    return model, str(folder / 'export')


def test_exported_fine_tuned_model_answers_as_the_trainer_recorded(fine_tuned, fine_tuned_export):
    model, history, answers, eval_ds, names, raw = fine_tuned
    assert_answers_are_the_models(model, history, answers, eval_ds, names)
    served = tf.saved_model.load(fine_tuned_export[1]).signatures[features.SERVING_SIGNATURE](
        **{features.SERVING_INPUT: tf.constant(raw)})[features.PROBABILITIES_OUTPUT].numpy()
    assert [a['path'] for a in answers['sample']] == [n.decode() for n in names.numpy()]
    recorded = np.array([a['probabilities'] for a in answers['sample']])
    np.testing.assert_allclose(served, recorded, atol=1e-5)


def test_a_run_without_fine_tuning_is_the_head_phase_of_one_with_it(fine_tuned):
    _, tuned_history, _, eval_ds, names, _ = fine_tuned
    images, _, labels = _photos('train', 3)
    train_ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    # Off: the fine-tuning settings change nothing, whatever they are.
    model, history, answers = training.train(
        settings(fine_tune_epochs=0, **dict(FINE_TUNE, fine_tune_from_layer=0,
                                            fine_tune_learning_rate=1.0)), train_ds, eval_ds)
    head = tuned_history['fine_tune_from_epoch']
    for key in ('loss', 'accuracy', 'val_loss', 'val_accuracy'):
        assert history[key] == pytest.approx(tuned_history[key][:head], rel=1e-6), key
    assert history['fine_tune_from_epoch'] is None and 'best_epoch' not in history
    assert 'fine_tune' not in history['seconds']
    base = model.get_layer(builders.BASE_MODEL_NAME)
    assert not base.trainable and not any(layer.trainable for layer in base.layers)
    pretrained = builders.build_transfer_model(SIZE, 2, weights=str(data.WEIGHTS), augment='none')
    for weight, reference in zip(base.weights,
                                 pretrained.get_layer(builders.BASE_MODEL_NAME).weights):
        np.testing.assert_array_equal(weight.numpy(), reference.numpy())
    assert_answers_are_the_models(model, history, answers, eval_ds, names)


def test_fine_tuning_needs_a_pretrained_base():
    # The settings refuse it, so train() never sees it.
    with pytest.raises(ValueError, match='fine_tune_epochs needs the transfer model'):
        settings(model_variant='cnn', weights=None, fine_tune_epochs=1)


@pytest.mark.parametrize('views', [0, 2], ids=['whole_model', 'head_on_frozen_features'])
def test_reduce_lr_patience_halves_the_learning_rate_of_the_model_being_fit(views):
    train_ds, eval_ds = photo_dataset('train', 2), photo_dataset('validation', 2)
    # A learning rate this small leaves the eval loss where it was: a plateau from epoch 2.
    tiny = 1e-12
    _, history, _ = training.train(settings(epochs=4, learning_rate=tiny, augmented_views=views,
                                            reduce_lr_patience=1), train_ds, eval_ds,
                                   train_count=4, eval_count=4)
    assert history['views'] == views
    assert history['lr'] == pytest.approx([tiny, tiny, tiny / 2, tiny / 4], rel=1e-5)
