"""run_fn (Trainer): datasets, model, fit, optional fine-tuning, history, export.

Input pipeline: raw examples -> Transform graph (decode, resize, scale) in
parallel -> cached as uint8 pixels (later epochs skip JPEG decoding): in memory up
to CACHE_BUDGET_BYTES, else in a local file, so memory stays flat -> shuffled ->
batched -> scaled back -> prefetched. Augmentation runs inside the model, on the
training pass only.

The transfer model's base is frozen: by default (augmented_views) its pooled
features of a few augmented copies of every training photo are computed in one
pass, and the epochs train the head on them, one copy per photo and epoch,
instead of running the base on freshly augmented photos every epoch.
"""

import dataclasses
import itertools
import json
import os
import shutil
import tempfile
import time
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tfx.components.trainer import fn_args_utils
from tfx_bsl.public import tfxio

from models import builders
from models import callbacks
from models import eval_answers
from models import export
from models import features
from models import frozen_features
from models import hyperparameters
from models import preprocessing
from models import tf_data
from runlog import progress

HISTORY_FILE = 'history.json'
# Decoded training images are kept in memory (as uint8 pixels) up to this size;
# a larger split is cached in a local file instead.
CACHE_BUDGET_BYTES = 1 << 30
# A split too large for memory is cached in a file only when it fits the local
# disk with this much to spare; else it is decoded again every epoch.
CACHE_DISK_HEADROOM_BYTES = 2 << 30
# Images in the shuffle buffer of a split too large for the memory cache.
SHUFFLE_BUFFER = 1024
# Frozen features (augmented copies of the training photos, the eval split) beyond
# CACHE_BUDGET_BYTES are kept in these files in the Trainer's local cache folder.
FEATURES_FILE = 'train_features.npy'
EVAL_FEATURES_FILE = 'eval_features.npy'
# Eval images whose features the head evaluates at once (80 MB of features).
EVAL_CHUNK = 16384
# The Trainer's local cache folder (decoded images, features) in the temp folder:
# <prefix><pid>-<random>. A killed Trainer cannot remove its own; the next removes it.
CACHE_DIR_PREFIX = 'trainer-cache-'
_IMAGE_XF = features.transformed_name(features.IMAGE_KEY)
_LABEL_XF = features.transformed_name(features.LABEL_KEY)


@dataclasses.dataclass(frozen=True)
class TrainerSettings:
    """The knobs of PipelineConfig.trainer_config(), typed."""
    class_names: Sequence[str]
    image_size: Sequence[int]
    model_variant: str
    weights: Optional[str]
    epochs: int
    batch_size: int
    learning_rate: float
    dropout: float
    fine_tune_from_layer: int
    fine_tune_epochs: int
    fine_tune_learning_rate: float
    fine_tune_patience: int
    seed: int
    augmentation: str
    label_smoothing: float
    early_stopping_patience: int
    augmented_views: int

    @classmethod
    def from_custom_config(cls, custom_config: Dict[str, Any]) -> 'TrainerSettings':
        names = {f.name for f in dataclasses.fields(cls)}
        missing = names - set(custom_config)
        if missing:
            raise ValueError(f'Trainer custom_config misses {sorted(missing)}')
        return cls(**{k: custom_config[k] for k in names})


class EpochProgress(keras.callbacks.Callback):
    """One progress line per epoch of a phase: metrics and the time the timer measured.

    first_epoch: the epoch (0-based, over the whole fit) the phase starts at, so that a
    fine-tuning phase counts its own epochs (`fine-tuning epoch 1/3: ...`).
    """

    def __init__(self, timer: callbacks.EpochTimer, total_epochs: int, label: str = 'epoch',
                 first_epoch: int = 0):
        super().__init__()
        self._timer = timer
        self._total = total_epochs
        self._label = label
        self._first = first_epoch

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        metrics = ', '.join(f'{name} {logs[name]:.3f}' for name in (
            'loss', 'accuracy', 'val_loss', 'val_accuracy') if name in logs)
        seconds = self._timer.seconds[-1] if self._timer.seconds else 0.0
        progress.logger().info('%s %d/%d: %s (%.1f s)', self._label, epoch - self._first + 1,
                               self._total, metrics, seconds)


def has_paths(eval_ds: tf.data.Dataset) -> bool:
    """Whether eval_ds's elements are ((image, path), label) rather than (image, label)."""
    return isinstance(eval_ds.element_spec[0], tuple)


def without_paths(eval_ds: tf.data.Dataset) -> tf.data.Dataset:
    """(image, label) elements, what fit() validates on."""
    return eval_ds.map(lambda x, label: (x[0], label)) if has_paths(eval_ds) else eval_ds


class FrozenFeatureValidation(keras.callbacks.Callback):
    """Validation of a model whose base is frozen, at the cost of its head only.

    The eval images are not augmented, so the frozen base's pooled features of
    the eval split are the same every epoch: they are computed once, and each
    epoch evaluates only the Dense head on them, EVAL_CHUNK at a time. Writes
    val_loss and val_accuracy into the epoch logs, as `fit(validation_data=...)`
    would; after fit, `probabilities()` are the final head's answers on the eval
    split. With the split's count and a local folder, features beyond
    CACHE_BUDGET_BYTES are kept in a memory-mapped file there (EVAL_FEATURES_FILE).
    With `precomputed` (features [photos, D], labels, paths: DataQuality's, see
    models/frozen_features.py) the eval split is not read at all.
    """

    def __init__(self, model: keras.Model, eval_ds: tf.data.Dataset,
                 count: Optional[int] = None, features_dir: Optional[str] = None,
                 precomputed: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None):
        super().__init__()
        self._head = model.get_layer(builders.HEAD_LAYER)
        if precomputed is not None:
            self._features, self.labels, self.paths = precomputed
            return
        # Where the features cannot go to a file (nor fit the budget), memory as before.
        in_file = features_in_file(count, builders.POOLED_FEATURES * 4,
                                   shutil.disk_usage(features_dir).free if features_dir else None)
        featurizer = keras.Model(model.inputs, model.get_layer(builders.POOL_LAYER).output)
        features, self.labels, self.paths = features_of(
            featurizer, eval_ds, 1, count,
            os.path.join(features_dir, EVAL_FEATURES_FILE) if in_file else None)
        self._features = features[:, 0]

    def _logits(self):
        """(logits, labels) of the head on the eval features, EVAL_CHUNK images at a time."""
        for start in range(0, len(self.labels), EVAL_CHUNK):
            chunk = np.asarray(self._features[start:start + EVAL_CHUNK])
            yield self._head(chunk).numpy(), self.labels[start:start + EVAL_CHUNK]

    def on_epoch_end(self, epoch, logs=None):
        loss, correct = 0.0, 0
        for logits, labels in self._logits():
            loss += float(tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True)))
            correct += int(np.sum(np.argmax(logits, axis=-1) == labels))
        logs['val_loss'] = loss / len(self.labels)
        logs['val_accuracy'] = correct / len(self.labels)

    def probabilities(self) -> np.ndarray:
        """The head's class probabilities for every eval image, as it is now."""
        return np.concatenate([tf.nn.softmax(logits, axis=-1).numpy()
                               for logits, _ in self._logits()])


def feature_views(settings: TrainerSettings, count: Optional[int],
                  free_bytes: Optional[int] = None) -> Tuple[int, bool]:
    """(how many augmented copies of each training photo the head trains on, their
    frozen features computed once; whether they are kept in a file). (0, False): the
    base runs on every epoch's photos.

    Only a transfer model has a frozen base. Without augmentation one copy is the
    photo itself; with fewer epochs than copies, each epoch's copy is all it needs
    (one epoch: exactly the tutorial's fresh augmentation). The features (float32)
    are kept in memory up to CACHE_BUDGET_BYTES, else in a file when they fit
    free_bytes of local disk (file_cache_fits); the count must be known.
    """
    if settings.model_variant != 'transfer' or not settings.augmented_views or count is None:
        return 0, False
    views = head_views(settings)
    in_file = features_in_file(count, views * builders.POOLED_FEATURES * 4, free_bytes)
    return (0, False) if in_file is None else (views, in_file)


def head_views(settings: TrainerSettings) -> int:
    """Views of each training photo a head trained on frozen features takes its epochs
    from (augmented_views > 0): one without augmentation (the photo is all there is),
    else augmented_views, never more than the epochs use."""
    return 1 if settings.augmentation == 'none' else min(settings.augmented_views,
                                                         settings.epochs)


def photo_is_a_view(views: int, augmentation: str) -> bool:
    """Whether the photo itself, not augmented (DataQuality's features), is one of the
    `views` views, when its features are at hand: with more than one view, or without
    augmentation; one view of an augmented model is the tutorial's fresh augmentation."""
    return views > 1 or augmentation == 'none'


def fit_head(head_model: keras.Model, copies: np.ndarray, labels: np.ndarray,
             settings: TrainerSettings,
             photo: Optional[Tuple[np.ndarray, np.ndarray]] = None,
             callbacks: Sequence[keras.callbacks.Callback] = (), verbose: int = 2):
    """Fits a head (builders.head, builders.build_head) on frozen features for
    settings.epochs: view_batches of the copies [photos, copies, D] and, with `photo`,
    the photo itself as view 0. Returns fit's History."""
    return head_model.fit(
        view_batches(copies, labels, settings.batch_size, settings.seed, photo=photo),
        epochs=settings.epochs, verbose=verbose,
        steps_per_epoch=steps_per_epoch(len(labels), settings.batch_size),
        callbacks=list(callbacks))


def features_in_file(count: Optional[int], bytes_per_photo: int,
                     free_bytes: Optional[int]) -> Optional[bool]:
    """Where frozen features of `count` photos are kept: False in memory (up to
    CACHE_BUDGET_BYTES), True in a file (when they fit free_bytes of local disk,
    file_cache_fits), None in neither (or the count is unknown)."""
    if count is None:
        return None
    if count * bytes_per_photo <= CACHE_BUDGET_BYTES:
        return False
    if free_bytes is not None and file_cache_fits(count, bytes_per_photo, free_bytes):
        return True
    return None


def features_of(featurizer: keras.Model, dataset: tf.data.Dataset, views: int,
                count: Optional[int] = None, path: Optional[str] = None):
    """(features [photos, views, dimensions], labels [photos], paths [photos] or None):
    featurizer's output, `views` times per batch of dataset's (image, label) or
    ((image, path), label) elements, in one pass (each image decoded once).

    Each batch goes through featurizer `views` times in a row, so it holds one
    batch's activations at a time; the featurizer is called as a tf.function of its
    own (1.4-1.5x the images/s of Keras' predict_on_batch on the same batches, measured
    at 224 on 2 cores). With the
    count, the features are written as they come, into memory or, with `path`, into
    a memory-mapped .npy file there (bounded memory at any count); without it, they
    are gathered in memory.

    Raises:
      ValueError: the dataset does not hold `count` photos.
    """
    shape = (count, views, featurizer.output.shape[-1])
    store = None
    if path:
        store = np.lib.format.open_memmap(path, mode='w+', dtype=np.float32, shape=shape)
    elif count is not None:
        store = np.empty(shape, np.float32)
    gathered, labels, paths = [], [], []
    row = 0
    # training=False: the base in inference mode; augmentation layers keep the
    # training=True they were built with (pooled_features).
    run = tf.function(lambda images: featurizer(images, training=False), reduce_retracing=True)
    for x, batch_labels in dataset:
        images = x[0] if isinstance(x, tuple) else x
        pooled = np.stack([run(images).numpy() for _ in range(views)], axis=1)
        size = len(pooled)
        if store is None:
            gathered.append(pooled)
        elif row + size > count:
            raise ValueError(f'the split holds more than the {count} photos counted')
        else:
            store[row:row + size] = pooled
        labels.append(batch_labels.numpy())
        if isinstance(x, tuple):
            paths.append(x[1].numpy())
        row += size
    if store is None:
        store = np.concatenate(gathered)
    elif row != count:
        raise ValueError(f'the split holds {row} photos, not the {count} counted')
    if path:
        store.flush()
    return store, np.concatenate(labels), np.concatenate(paths) if paths else None


def view_features(model: keras.Model, train_ds: tf.data.Dataset, views: int,
                  steps: Optional[int], count: int, path: Optional[str] = None, *,
                  with_paths: bool = False):
    """(features [count, views, dimensions], labels [count]): the frozen base's pooled
    features of `views` augmented copies of every training photo (features_of: in
    memory, or in a memory-mapped file at `path`). steps: batches in one pass of an
    endless train_ds. with_paths: also the photos' paths (train_ds carries them)."""
    features, labels, paths = features_of(builders.pooled_features(model),
                                          train_ds.take(steps) if steps else train_ds,
                                          views, count, path)
    return (features, labels, paths) if with_paths else (features, labels)


def photo_rows(photo_paths: np.ndarray, photo_labels: np.ndarray, paths: np.ndarray,
               labels: np.ndarray) -> np.ndarray:
    """For each training photo (paths, labels in the Trainer's order), its row among
    DataQuality's (photo_paths, photo_labels).

    Raises:
      ValueError: a photo is not there, or with another label.
    """
    position = {path: row for row, path in enumerate(photo_paths)}
    missing = [p.decode() for p in paths if p not in position][:3]
    if missing or len(paths) != len(photo_paths):
        raise ValueError(f'the frozen features are not of these {len(paths)} training photos '
                         f'({len(photo_paths)} rows; not there: {missing})')
    rows = np.asarray([position[p] for p in paths])
    if not np.array_equal(np.asarray(photo_labels)[rows], np.asarray(labels)):
        raise ValueError('the frozen features give some training photos another label')
    return rows


def view_batches(view_features_: np.ndarray, labels: np.ndarray, batch_size: int,
                 seed: int, photo: Optional[Tuple[np.ndarray, np.ndarray]] = None
                 ) -> tf.data.Dataset:
    """Endless (features, label) batches for fit() with steps_per_epoch: epoch e takes
    copy e mod views of every photo, in a new random order each epoch. One
    iterator for the whole fit, autotuning off (input_pipeline says why).

    photo: (features [rows, dimensions], each training photo's row in them
    (photo_rows)): the photo itself, not augmented (DataQuality's features), as one
    more view, the first: epoch e then takes view e mod (copies + 1), view 0 the photo.
    """
    count, copies, dimensions = len(labels), view_features_.shape[1], view_features_.shape[2]
    views = copies + (photo is not None)

    def batches():
        rng = np.random.default_rng(seed)
        for epoch in itertools.count():
            order = rng.permutation(count)
            view = epoch % views - (photo is not None)
            for start in range(0, count, batch_size):
                chosen = order[start:start + batch_size]
                if view < 0:
                    yield np.asarray(photo[0][photo[1][chosen]], np.float32), labels[chosen]
                else:
                    yield view_features_[chosen, view], labels[chosen]

    dataset = tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec((None, dimensions), tf.float32),
        tf.TensorSpec((None,), tf.as_dtype(labels.dtype))))
    return dataset.prefetch(2).with_options(tf_data.no_autotune_thread())


def count_records(files: Sequence[str]) -> int:
    """Records in a split's gzipped TFRecord files.

    The Trainer reads only its declared input (the split's files, as FnArgs
    names them): the count decides where the decoded split is cached and how
    many steps an epoch has.
    """
    paths = sorted(p for pattern in files for p in tf.io.gfile.glob(pattern))
    if not paths:
        raise FileNotFoundError(f'no files match {list(files)}')
    records = tf.data.TFRecordDataset(paths, compression_type='GZIP')
    return int(records.reduce(np.int64(0), lambda count, _: count + 1))


def image_bytes(tf_transform_output: tft.TFTransformOutput) -> int:
    """Bytes of one decoded image in the cache (uint8 pixels)."""
    height, width = tf_transform_output.transformed_feature_spec()[_IMAGE_XF].shape[-3:-1]
    return height * width * 3


def cache_limit(tf_transform_output: tft.TFTransformOutput) -> int:
    """How many decoded images (uint8) fit CACHE_BUDGET_BYTES, plus one."""
    return CACHE_BUDGET_BYTES // image_bytes(tf_transform_output) + 1


def file_cache_fits(count: int, bytes_per_image: int, free_bytes: int) -> bool:
    """Whether the decoded split fits the cache's disk, CACHE_DISK_HEADROOM_BYTES to spare."""
    return count * bytes_per_image + CACHE_DISK_HEADROOM_BYTES <= free_bytes


def _on_images(fn):
    """fn applied to the images of (images, labels) or ((images, paths), labels) elements."""
    def apply(x, labels):
        return ((fn(x[0]), x[1]) if isinstance(x, tuple) else fn(x)), labels
    return apply


def input_pipeline(decoded: tf.data.Dataset, batch_size: int, *, training: bool, seed: int,
                   count: Optional[int], limit: int,
                   cache_dir: Optional[str] = None, repeat: bool = False) -> tf.data.Dataset:
    """(image, label) pairs, decoded and scaled -> batches, cached after the first epoch.

    Decoded pixels are kept as uint8 (a quarter of float32) and scaled back per batch:
    in memory when the split has fewer than `limit` images (shuffled whole), else in
    a file under cache_dir (memory stays flat however large the split is; the
    shuffle buffer is bounded; the examples' order is already random, ImageExampleGen
    reshuffles). Without a count or cache_dir nothing is cached.

    Args:
      decoded: unbatched (float image in [-1, 1], label) pairs, or ((image, path), label).
      batch_size: examples per batch.
      training: shuffle every epoch.
      seed: shuffle seed.
      count: examples in the split; None: unknown.
      limit: the split is cached in memory below this count.
      cache_dir: where a larger split is cached (removed by the caller).
      repeat: repeat the epochs forever (reshuffled each time), for fit() with
        steps_per_epoch(count): one iterator for the whole fit instead of one
        per epoch. Autotuning is off (tf_data.no_autotune_thread): with it, each
        iterator's end paused up to a minute.

    Returns:
      One epoch per iteration, or endless epochs with `repeat`.
    """
    in_memory = count is not None and count < limit
    cached = in_memory or (count is not None and cache_dir is not None)
    dataset = decoded
    if cached:
        dataset = dataset.map(_on_images(preprocessing.to_uint8),
                              num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.cache() if in_memory else dataset.cache(
            os.path.join(cache_dir, 'pixels'))
    if training:
        dataset = dataset.shuffle(max(count, 1) if in_memory else SHUFFLE_BUFFER, seed=seed,
                                  reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if repeat:
        dataset = dataset.repeat()
    if cached:
        dataset = dataset.map(_on_images(preprocessing.from_uint8),
                              num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(tf_data.no_autotune_thread())


def steps_per_epoch(count: int, batch_size: int) -> int:
    """Batches in one epoch of `count` examples (the last one may be short)."""
    return max(1, -(-count // batch_size))


def make_dataset(files: Sequence[str], data_accessor, tf_transform_output: tft.TFTransformOutput,
                 batch_size: int, *, training: bool, seed: int, limit: int,
                 count: Optional[int] = None, cache_dir: Optional[str] = None,
                 repeat: bool = False, with_paths: bool = False) -> tf.data.Dataset:
    """(image_xf, label) batches of one split, decoded by the Transform graph;
    ((image_xf, path), label) with_paths (the examples' path, for the eval answers).

    Args:
      files: the split's file patterns (FnArgs.train_files / eval_files).
      data_accessor: FnArgs.data_accessor.
      tf_transform_output: the Transform graph.
      batch_size: examples per batch.
      training: shuffle every epoch.
      seed: shuffle seed.
      limit: cache_limit(): the split is cached in memory below this count.
      count: examples in the split; None: no cache.
      cache_dir: a local folder for the cache of a split too large for memory.
      repeat: endless epochs (input_pipeline).
      with_paths: carry each example's path beside its image.

    Returns:
      One epoch per iteration, or endless epochs with `repeat`.
    """
    raw = data_accessor.tf_dataset_factory(
        files, tfxio.TensorFlowDatasetOptions(batch_size=batch_size, num_epochs=1,
                                              shuffle=False),
        tf_transform_output.raw_metadata.schema)
    tft_layer = tf_transform_output.transform_features_layer()

    def transform(raw_features):
        transformed = tft_layer({features.IMAGE_KEY: raw_features[features.IMAGE_KEY],
                                 features.LABEL_KEY: raw_features[features.LABEL_KEY]})
        images = transformed[_IMAGE_XF]
        if with_paths:
            images = (images, tf.reshape(raw_features[features.PATH_KEY], [-1]))
        return images, transformed[_LABEL_XF]

    decoded = raw.map(transform, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    return input_pipeline(decoded, batch_size, training=training, seed=seed, count=count,
                          limit=limit, cache_dir=cache_dir, repeat=repeat)


def train(settings: TrainerSettings, train_ds: tf.data.Dataset, eval_ds: tf.data.Dataset,
          log_dir: Optional[str] = None, train_steps: Optional[int] = None,
          train_count: Optional[int] = None, eval_count: Optional[int] = None,
          features_dir: Optional[str] = None,
          views_plan: Optional[Tuple[int, bool]] = None,
          eval_features: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None,
          train_photos: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None):
    """Builds and fits the model, then fine-tunes the top of its base when asked
    (settings.fine_tune_epochs, fine_tune).

    train_steps: batches per epoch when train_ds repeats endlessly (steps_per_epoch);
    None when each iteration of train_ds is one epoch.
    eval_ds: (image, label) or, for answers that name their images, ((image, path),
    label) batches.
    train_count: photos in the train split; None: unknown (then the base runs every
    epoch, whatever augmented_views asks).
    eval_count: images in the eval split; None: unknown.
    features_dir: a local folder for the augmented copies' and the eval split's
    features when they exceed the memory budget (feature_views,
    FrozenFeatureValidation); None: memory only.
    views_plan: feature_views' answer when the caller already decided how it reads
    the train split from it (run_fn); None: decided here, with the disk's free space now.
    eval_features: the frozen base's features, labels and paths of the eval split,
    computed before (DataQuality's, frozen_features.reusable): the transfer model's
    head validates on them instead of computing them from eval_ds (the head phase
    only: fine-tuning changes the base, so it validates on eval_ds).
    train_photos: the same of the train split: the photo itself is then one of the
    `augmented_views` views the head trains on (view_batches), so the base computes
    one augmented copy fewer per photo; only with more than one view (one view of an
    augmented model is the tutorial's fresh augmentation), or no augmentation at all
    (then the train split is not read). train_ds must then carry the paths, so not
    with fine-tuning (which trains on train_ds's images).

    Returns:
      (model, history dict: per-epoch metric lists (both phases, one after the other),
      'epoch_seconds', 'views' (the augmented copies the head trained on; 0: the base
      ran every epoch), 'fine_tune_from_epoch' (epochs of the head phase; None: no
      fine-tuning), 'best_epoch' (with early stopping, the epoch whose weights were
      kept) and 'seconds': wall seconds of the model build, the eval features, the
      training copies' features, fit (those features and all epochs of the head, with
      what Keras does between them), fine_tune and the eval answers; the final model's
      answers on the eval split (eval_answers.summarize)).

    Raises:
      ValueError: fine-tuning asked of a model without a pretrained base, or with
        train_photos.
    """
    start = time.perf_counter()
    if settings.fine_tune_epochs and settings.model_variant != 'transfer':
        raise ValueError(f'fine-tuning needs the transfer model\'s base, not '
                         f'{settings.model_variant!r}')
    if settings.fine_tune_epochs and train_photos is not None:
        raise ValueError('fine-tuning trains on train_ds\'s images: no train_photos with it')
    keras.utils.set_random_seed(settings.seed)
    model = builders.build(settings.model_variant, settings.image_size, len(settings.class_names),
                           weights=settings.weights, dropout=settings.dropout,
                           learning_rate=settings.learning_rate, seed=settings.seed,
                           augment=settings.augmentation,
                           label_smoothing=settings.label_smoothing)
    timer = callbacks.EpochTimer()
    watchers = [timer, EpochProgress(timer, settings.epochs)] + (
        [keras.callbacks.TensorBoard(log_dir)] if log_dir else [])
    seconds = {'build': time.perf_counter() - start}
    # Early stopping watches the eval loss (after validation wrote it) and keeps
    # the best epoch's weights; epochs is then the most it may run.
    stopper = (keras.callbacks.EarlyStopping(monitor='val_loss', restore_best_weights=True,
                                             patience=settings.early_stopping_patience)
               if settings.early_stopping_patience else None)
    first_phase = watchers + ([stopper] if stopper else [])
    validation, views, photo = None, 0, None
    if settings.model_variant == 'transfer':
        # Frozen base: eval features once, then only the head per epoch. It
        # precedes the timer, so epoch times include validation.
        start = time.perf_counter()
        validation = FrozenFeatureValidation(model, eval_ds, eval_count, features_dir,
                                             precomputed=eval_features)
        seconds['eval_features'] = time.perf_counter() - start
        views, in_file = views_plan or feature_views(
            settings, train_count, shutil.disk_usage(features_dir).free if features_dir else None)
        start = time.perf_counter()
        if views and train_photos is not None and photo_is_a_view(views, settings.augmentation):
            photo = train_photos
        else:
            photo = None
        if views:
            copies = views - (photo is not None)
            if copies:
                features_, labels, paths = view_features(
                    model, train_ds, copies, train_steps, train_count,
                    os.path.join(features_dir, FEATURES_FILE) if in_file else None,
                    with_paths=True)
            else:
                labels, paths = photo[1], photo[2]
                features_ = np.zeros((len(labels), 0, builders.POOLED_FEATURES), np.float32)
            rows = photo_rows(photo[2], photo[1], paths, labels) if photo is not None else None
            seconds['train_features'] = time.perf_counter() - start
            progress.logger().info('frozen features of %d augmented cop%s of each of %d training '
                                   'photos%s%s: %.1f s', copies, 'y' if copies == 1 else 'ies',
                                   len(labels), ' and the photo itself (DataQuality\'s)'
                                   if photo is not None else '',
                                   f' (in {features_dir})' if in_file else '',
                                   seconds['train_features'])
            fit = fit_head(builders.head(model, settings.learning_rate, settings.label_smoothing),
                           features_, labels, settings,
                           photo=(photo[0], rows) if photo is not None else None,
                           callbacks=[validation] + first_phase)
        else:
            fit = model.fit(train_ds, epochs=settings.epochs, verbose=2,
                            steps_per_epoch=train_steps, callbacks=[validation] + first_phase)
    else:
        start = time.perf_counter()
        fit = model.fit(train_ds, validation_data=without_paths(eval_ds), epochs=settings.epochs,
                        steps_per_epoch=train_steps, callbacks=first_phase, verbose=2)
    seconds['fit'] = time.perf_counter() - start
    history = {k: [float(v) for v in values] for k, values in fit.history.items()}
    if stopper is not None:
        history['best_epoch'] = int(stopper.best_epoch) + 1
    history['epoch_seconds'] = timer.seconds
    history['fine_tune_from_epoch'] = None
    start = time.perf_counter()
    if settings.fine_tune_epochs:
        fine_tune(model, settings, train_ds, eval_ds, history, train_steps=train_steps,
                  log_dir=log_dir)
        seconds['fine_tune'] = time.perf_counter() - start
        start = time.perf_counter()
        # The base has changed: the answers come from the whole model, never from
        # frozen features of the base before fine-tuning.
        logits, labels, paths = features_of(model, eval_ds, 1)
        probabilities = tf.nn.softmax(logits[:, 0], axis=-1).numpy()
    elif validation is not None:
        # The final weights' answers (the best epoch's, with early stopping): the
        # frozen features through the head.
        probabilities, labels, paths = validation.probabilities(), validation.labels, validation.paths
    else:
        logits, labels, paths = features_of(model, eval_ds, 1)
        probabilities = tf.nn.softmax(logits[:, 0], axis=-1).numpy()
    answers = eval_answers.summarize(probabilities, np.asarray(labels), paths,
                                     settings.class_names)
    seconds['eval_answers'] = time.perf_counter() - start
    history['views'] = views
    history['eval_features_reused'] = validation is not None and eval_features is not None
    history['photo_view_reused'] = bool(views) and photo is not None
    history['seconds'] = seconds
    return model, history, answers


def fine_tune(model: keras.Model, settings: TrainerSettings, train_ds: tf.data.Dataset,
              eval_ds: tf.data.Dataset, history: Dict[str, Any], *,
              train_steps: Optional[int] = None, log_dir: Optional[str] = None) -> keras.Model:
    """The second phase: the transfer model, its head trained, trains whole (its base
    from layer settings.fine_tune_from_layer on, BatchNorm in inference mode:
    builders.unfreeze_from) on train_ds's decoded photos, augmented by the model's own
    layers, at settings.fine_tune_learning_rate, for at most settings.fine_tune_epochs.

    It validates on eval_ds through the whole model every epoch and keeps the weights
    of the epoch with the lowest eval loss, the head phase's final weights counting as
    one (so fine-tuning never ends with a higher eval loss than the head alone); it
    stops after settings.fine_tune_patience epochs without a lower one (0: never early).

    Args:
      model: the transfer model after the head phase (train).
      settings: the Trainer's settings.
      train_ds: (image, label) batches; endless with train_steps.
      eval_ds: (image, label) or ((image, path), label) batches.
      history: the head phase's history (train): this phase's epochs are appended to
        its metric lists and 'epoch_seconds'; 'fine_tune_from_epoch' is set to the
        head's epoch count, 'best_epoch' to the epoch (1-based, over both phases) whose
        weights the model ends with.
      train_steps: batches per epoch of an endless train_ds; None: one pass each.
      log_dir: TensorBoard's folder, or None.

    Returns:
      The model, fine-tuned in place.
    """
    head_epochs = len(history.get('loss', []))
    last = history.get('best_epoch', head_epochs)
    head_loss = history['val_loss'][last - 1]
    builders.unfreeze_from(model, settings.fine_tune_from_layer,
                           settings.fine_tune_learning_rate, settings.label_smoothing)
    timer = callbacks.EpochTimer()
    keeper = callbacks.BestEpoch(head_loss, last - 1, settings.fine_tune_patience)
    watchers = [timer, EpochProgress(timer, settings.fine_tune_epochs, 'fine-tuning epoch',
                                     first_epoch=head_epochs), keeper] + (
        [keras.callbacks.TensorBoard(log_dir)] if log_dir else [])
    tuned = model.fit(train_ds, validation_data=without_paths(eval_ds), initial_epoch=head_epochs,
                      epochs=head_epochs + settings.fine_tune_epochs, steps_per_epoch=train_steps,
                      callbacks=watchers, verbose=2)
    for key, values in tuned.history.items():
        history.setdefault(key, []).extend(float(v) for v in values)
    history.setdefault('epoch_seconds', []).extend(timer.seconds)
    history['fine_tune_from_epoch'] = head_epochs
    history['best_epoch'] = keeper.best_epoch + 1
    return model


def keep_autograph_out_of_tf_keras() -> None:
    """Tells AutoGraph not to convert tf_keras' own code when tracing a model.

    TF 2.16's AutoGraph skips modules named `keras` but not `tf_keras`, so every
    trace of a tf_keras model (fit, predict, the serving signatures) rewrites
    Keras' internals in Python first: most of the Trainer's time outside fit.
    """
    from tensorflow.python.autograph.core import config as autograph_config  # pylint: disable=import-outside-toplevel
    rule = autograph_config.DoNotConvert('tf_keras')
    if str(rule) not in map(str, autograph_config.CONVERSION_RULES):
        autograph_config.CONVERSION_RULES = (rule,) + tuple(autograph_config.CONVERSION_RULES)


def remove_stale_caches(temp_dir: str) -> list:
    """Removes the cache folders of Trainers no longer running (killed: a finished one
    removes its own); returns their paths. A folder whose process runs is kept."""
    removed = []
    for name in os.listdir(temp_dir):
        pid = name[len(CACHE_DIR_PREFIX):].split('-')[0]
        if not (name.startswith(CACHE_DIR_PREFIX) and pid.isdigit()):
            continue
        try:
            os.kill(int(pid), 0)
            continue                    # still running (or its pid reused): keep
        except ProcessLookupError:
            pass
        except PermissionError:         # another user's running process
            continue
        shutil.rmtree(os.path.join(temp_dir, name), ignore_errors=True)
        removed.append(os.path.join(temp_dir, name))
    return removed


def run_fn(fn_args: fn_args_utils.FnArgs) -> None:
    """TFX Trainer entry point."""
    start = time.perf_counter()
    keep_autograph_out_of_tf_keras()
    settings = TrainerSettings.from_custom_config(fn_args.custom_config)
    # The Tuner's best settings (its best_hyperparameters artifact) replace the pipeline's.
    tuned = (hyperparameters.values(fn_args.hyperparameters, "the Tuner's best hyperparameters")
             if fn_args.hyperparameters else {})
    if tuned:
        settings = dataclasses.replace(settings, **tuned)
        progress.logger().info('settings from the Tuner: %s', ', '.join(
            f'{name} {value:g}' for name, value in sorted(tuned.items())))
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    # The transfer model's head reads the eval split once (FrozenFeatureValidation):
    # caching it would only hold memory. Fine-tuning validates on it every epoch.
    cache_eval = settings.model_variant != 'transfer' or settings.fine_tune_epochs > 0
    limit = cache_limit(tf_transform_output)
    datasets, train_steps, counts, views_plan, reused = {}, None, {}, None, {}
    # A split too large for memory is cached on this machine's disk for the run only,
    # when it fits there.
    for path in remove_stale_caches(tempfile.gettempdir()):
        progress.logger().info('removed the cache of a Trainer that was stopped: %s', path)
    with tempfile.TemporaryDirectory(prefix=f'{CACHE_DIR_PREFIX}{os.getpid()}-') as cache_root:
        for name, files, training in (('train', fn_args.train_files, True),
                                      ('eval', fn_args.eval_files, False)):
            # Counted whole, once: the count picks the caches (pixels, features) and gives
            # the steps per epoch.
            count = counts[name] = count_records(files)
            # A head trained on the features of augmented copies reads the train split
            # once, in order (view_batches shuffles); only fine-tuning reads it again.
            # Decided once, here: train() follows the same plan.
            if training:
                views_plan = feature_views(settings, count, shutil.disk_usage(cache_root).free)
                once = not settings.fine_tune_epochs and views_plan[0] > 0
                reuse = once
            else:
                once = not cache_eval
                reuse = True
            # DataQuality's frozen features of a split the transfer model's head reads
            # once, when they are this model's: its eval features, one view of each train
            # photo. They are of the base before fine-tuning: the head phase's only.
            if settings.model_variant == 'transfer' and reuse:
                reused[name], why_not = frozen_features.reusable(
                    (fn_args.custom_config or {}).get(frozen_features.CONFIG_KEY),
                    features.TRAIN_SPLIT if training else features.EVAL_SPLIT,
                    settings.weights, settings.image_size, count, cache_root)
                logging.info('%s split\'s frozen features: %s', name,
                             'reused' if reused[name] else f'computed ({why_not})')
            cache_dir = None if once else os.path.join(cache_root, name)
            if cache_dir and count is not None and count >= limit:
                free = shutil.disk_usage(cache_root).free
                if not file_cache_fits(count, image_bytes(tf_transform_output), free):
                    progress.logger().info(
                        '%s split: %d decoded images do not fit the %.1f GB free on %s; '
                        'decoding them every epoch instead', name, count, free / 1e9, cache_root)
                    cache_dir = None
            if cache_dir:
                tf.io.gfile.makedirs(cache_dir)
            repeat = training and not once
            if repeat:
                train_steps = steps_per_epoch(count, settings.batch_size)
            datasets[name] = make_dataset(
                files, fn_args.data_accessor, tf_transform_output, settings.batch_size,
                training=training and not once, seed=settings.seed,
                limit=0 if once else limit, cache_dir=cache_dir,
                count=count, repeat=repeat,
                with_paths=not training or reused.get(name) is not None)
        model, history, answers = train(settings, datasets['train'], datasets['eval'],
                                        log_dir=fn_args.model_run_dir, train_steps=train_steps,
                                        train_count=counts['train'], eval_count=counts['eval'],
                                        features_dir=cache_root, views_plan=views_plan,
                                        eval_features=reused.get('eval'),
                                        train_photos=reused.get('train'))
    trained = time.perf_counter()
    export.export_model(model, tf_transform_output, settings.class_names, fn_args.serving_model_dir)
    history['settings'] = dataclasses.asdict(settings)
    history['tuned'] = tuned
    history['seconds'].update(total=time.perf_counter() - start,
                              export=time.perf_counter() - trained)
    eval_answers.save(answers, fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, HISTORY_FILE), 'w') as f:
        json.dump(history, f, indent=1)
    logging.info('Training history: %s', {k: v for k, v in history.items() if k != 'settings'})
