"""The frozen-feature path of the transfer model: its base is frozen, so only its head trains.

By default (augmented_views) the base's pooled features of a few augmented copies of
every training photo are computed in one pass and the epochs train the head on them, one
copy per photo and epoch, instead of running the base on fresh augmentations every epoch.
The eval split's features are computed once (or DataQuality's reused) for validation.
"""

import itertools
import os
import shutil
import time
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tf_keras as keras

from models import builders
from models import inputs
from models import feature_pass
from models import tf_data
from models import tflite_base
from models import trainer_settings
from runlog import progress

# Frozen features (augmented copies of the training photos, the eval split) beyond
# inputs.CACHE_BUDGET_BYTES are kept in these files in the Trainer's local cache folder.
FEATURES_FILE = 'train_features.npy'
EVAL_FEATURES_FILE = 'eval_features.npy'
# Eval images whose features the head evaluates at once (80 MB of features).
EVAL_CHUNK = 16384


class FrozenFeatureValidation(keras.callbacks.Callback):
    """Validation of a model whose base is frozen, at the cost of its head only.

    The eval images are not augmented, so their pooled features are computed once and
    each epoch evaluates only the Dense head on them, EVAL_CHUNK at a time, writing
    val_loss and val_accuracy into the epoch logs as `fit(validation_data=...)` would;
    after fit, `probabilities()` are the head's answers on the eval split. With the
    split's count and a local folder, features beyond CACHE_BUDGET_BYTES go to a
    memory-mapped EVAL_FEATURES_FILE there. With `precomputed` (DataQuality's features,
    labels, paths: models/frozen_features.py) the split is not read. `base`: the Trainer's
    tflite_base.FrozenBase, shared with its augmented copies; None: one of its own in TF.
    """

    def __init__(self, model: keras.Model, eval_ds: tf.data.Dataset,
                 count: Optional[int] = None, features_dir: Optional[str] = None,
                 precomputed: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None,
                 base: Optional[tflite_base.FrozenBase] = None):
        super().__init__()
        self._head = model.get_layer(builders.HEAD_LAYER)
        if precomputed is not None:
            self._features, self.labels, self.paths = precomputed
            return
        # Where the features cannot go to a file (nor fit the budget), memory as before.
        in_file = inputs.features_in_file(count, builders.POOLED_FEATURES * 4,
                                   shutil.disk_usage(features_dir).free if features_dir else None)
        features, self.labels, self.paths = feature_pass.features_of(
            base if base is not None else frozen_base(model, None), eval_ds, 1, count,
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


def feature_views(settings: trainer_settings.TrainerSettings, count: Optional[int],
                  free_bytes: Optional[int] = None) -> Tuple[int, bool]:
    """(augmented copies of each training photo the head trains on, their frozen features
    computed once; whether they are kept in a file); (0, False): the base runs on every
    epoch's photos. Only a transfer model has a frozen base; without augmentation one
    copy is the photo itself; with fewer epochs than copies, each epoch's copy is all it
    needs. The features stay in memory up to CACHE_BUDGET_BYTES, else in a file when they
    fit free_bytes of local disk (file_cache_fits); the count must be known.
    """
    if settings.model_variant != 'transfer' or not settings.augmented_views or count is None:
        return 0, False
    views = head_views(settings)
    in_file = inputs.features_in_file(count, views * builders.POOLED_FEATURES * 4, free_bytes)
    return (0, False) if in_file is None else (views, in_file)


def head_views(settings: trainer_settings.TrainerSettings) -> int:
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
             settings: trainer_settings.TrainerSettings,
             photo: Optional[Tuple[np.ndarray, np.ndarray]] = None,
             callbacks: Sequence[keras.callbacks.Callback] = (), verbose: int = 2):
    """Fits a head (builders.head, builders.build_head) on frozen features for
    settings.epochs: view_batches of the copies [photos, copies, D] and, with `photo`,
    the photo itself as view 0. Returns fit's History."""
    return head_model.fit(
        view_batches(copies, labels, settings.batch_size, settings.seed, photo=photo),
        epochs=settings.epochs, verbose=verbose,
        steps_per_epoch=inputs.steps_per_epoch(len(labels), settings.batch_size),
        callbacks=list(callbacks))


def train_head(model: keras.Model, settings: trainer_settings.TrainerSettings,
               train_ds: tf.data.Dataset, views: int, in_file: bool,
               photo: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]], *,
               train_steps: Optional[int], train_count: Optional[int],
               features_dir: Optional[str], callbacks: Sequence[keras.callbacks.Callback],
               seconds: Dict[str, float], base: Optional[tflite_base.FrozenBase] = None):
    """Trains the transfer model's head on frozen features of `views` views of every
    training photo (feature_views): the features of views - 1 augmented copies and
    `photo` (DataQuality's features, labels and paths of the photo itself: view 0),
    or of `views` copies without it; in a file in features_dir when in_file. The
    copies' features by `base` (view_features; None: from settings.weights). Writes
    the seconds the copies' features took into seconds['train_features']; returns
    fit's History (fit_head)."""
    start = time.perf_counter()
    copies = views - (photo is not None)
    if copies:
        features_, labels, paths = view_features(
            model, train_ds, copies, train_steps, train_count,
            os.path.join(features_dir, FEATURES_FILE) if in_file else None, with_paths=True,
            weights=settings.weights, base=base)
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
    return fit_head(builders.head(model, settings.learning_rate, settings.label_smoothing),
                    features_, labels, settings,
                    photo=(photo[0], rows) if photo is not None else None, callbacks=callbacks)


def view_features(model: keras.Model, train_ds: tf.data.Dataset, views: int,
                  steps: Optional[int], count: int, path: Optional[str] = None, *,
                  with_paths: bool = False, weights: Optional[str] = None,
                  base: Optional[tflite_base.FrozenBase] = None):
    """(features [count, views, dimensions], labels [count]): the frozen base's pooled
    features of `views` augmented copies of every training photo (feature_pass.features_of: in
    memory, or in a memory-mapped file at `path`). steps: batches in one pass of an
    endless train_ds. with_paths: also the photos' paths (train_ds carries them).
    base: the model's tflite_base.FrozenBase (the Trainer's one for the run); None: one
    made here from `weights`, what the model's base was built from: then the base and
    pooling run in TFLite, the augmentation in TensorFlow; None (random weights): all
    in TensorFlow."""
    if base is None:
        base = frozen_base(model, weights)
    features, labels, paths = feature_pass.features_of(
        base, train_ds.take(steps) if steps else train_ds, views, count, path, augment=True)
    return (features, labels, paths) if with_paths else (features, labels)


def frozen_base(model: keras.Model, weights: Optional[str]) -> tflite_base.FrozenBase:
    """The transfer model's frozen base (tflite_base.FrozenBase) at its input size: one
    per Trainer run, shared by FrozenFeatureValidation and the augmented copies."""
    return tflite_base.FrozenBase(model, weights, model.inputs[0].shape[1:3])


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
    """Endless (features, label) batches for fit() with inputs.steps_per_epoch: epoch e takes
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
