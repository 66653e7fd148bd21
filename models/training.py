"""The training loop: build the model, fit it (its head on frozen features for the
transfer model, models/frozen_training.py), fine-tune it when asked, and answer on
the eval split."""

import shutil
import time
from typing import Any, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
import tf_keras as keras

from models import builders
from models import callbacks
from models import eval_answers
from models import feature_pass
from models import frozen_training
from models import inputs
from models import trainer_settings
from runlog import progress

# settings.reduce_lr_patience: the learning rate's factor on each plateau of the eval loss.
PLATEAU_FACTOR = 0.5


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


def train(settings: trainer_settings.TrainerSettings, train_ds: tf.data.Dataset,
          eval_ds: tf.data.Dataset,
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
    features when they exceed the memory budget (frozen_training.feature_views,
    frozen_training.FrozenFeatureValidation); None: memory only.
    views_plan: frozen_training.feature_views' answer when the caller already decided
    how it reads the train split from it (cache_plan); None: decided here, with the
    disk's free space now.
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
      kept), 'lr' (with reduce_lr_patience, each first-phase epoch's learning rate) and
      'seconds': wall seconds of the model build, the eval features, the training
      copies' features, fit (those features and all epochs of the head, with what Keras
      does between them), fine_tune and the eval answers; the final model's answers on
      the eval split (eval_answers.summarize)).

    Raises:
      ValueError: fine-tuning asked with train_photos (TrainerSettings refuses it of a
        model without a pretrained base).
    """
    start = time.perf_counter()
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
    # Like early stopping, it watches the eval loss; it halves the learning rate of the
    # model being fit (the head's own on frozen features).
    reducer = (keras.callbacks.ReduceLROnPlateau(monitor='val_loss', factor=PLATEAU_FACTOR,
                                                 patience=settings.reduce_lr_patience)
               if settings.reduce_lr_patience else None)
    first_phase = watchers + [c for c in (reducer, stopper) if c is not None]
    validation, views, photo = None, 0, None
    if settings.model_variant == 'transfer':
        # Frozen base: eval features once, then only the head per epoch. It
        # precedes the timer, so epoch times include validation.
        start = time.perf_counter()
        # One frozen base for the eval features and the augmented copies: its weights
        # hashed, its TFLite model read and checked once (on first use, if any).
        base = frozen_training.frozen_base(model, settings.weights)
        validation = frozen_training.FrozenFeatureValidation(
            model, eval_ds, eval_count, features_dir, precomputed=eval_features, base=base)
        seconds['eval_features'] = time.perf_counter() - start
        views, in_file = views_plan or frozen_training.feature_views(
            settings, train_count, shutil.disk_usage(features_dir).free if features_dir else None)
        start = time.perf_counter()
        if views and train_photos is not None and frozen_training.photo_is_a_view(
                views, settings.augmentation):
            photo = train_photos
        else:
            photo = None
        if views:
            fit = frozen_training.train_head(
                model, settings, train_ds, views, in_file, photo, train_steps=train_steps,
                train_count=train_count, features_dir=features_dir,
                callbacks=[validation] + first_phase, seconds=seconds, base=base)
        else:
            fit = model.fit(train_ds, epochs=settings.epochs, verbose=2,
                            steps_per_epoch=train_steps, callbacks=[validation] + first_phase)
    else:
        start = time.perf_counter()
        fit = model.fit(train_ds, validation_data=inputs.without_paths(eval_ds),
                        epochs=settings.epochs, steps_per_epoch=train_steps,
                        callbacks=first_phase, verbose=2)
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
        logits, labels, paths = feature_pass.features_of(model, eval_ds, 1)
        probabilities = tf.nn.softmax(logits[:, 0], axis=-1).numpy()
    elif validation is not None:
        # The final weights' answers (the best epoch's, with early stopping): the
        # frozen features through the head.
        probabilities = validation.probabilities()
        labels, paths = validation.labels, validation.paths
    else:
        logits, labels, paths = feature_pass.features_of(model, eval_ds, 1)
        probabilities = tf.nn.softmax(logits[:, 0], axis=-1).numpy()
    answers = eval_answers.summarize(probabilities, np.asarray(labels), paths,
                                     settings.class_names)
    seconds['eval_answers'] = time.perf_counter() - start
    history['views'] = views
    history['eval_features_reused'] = validation is not None and eval_features is not None
    history['photo_view_reused'] = bool(views) and photo is not None
    history['seconds'] = seconds
    return model, history, answers


def fine_tune(model: keras.Model, settings: trainer_settings.TrainerSettings,
              train_ds: tf.data.Dataset,
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
    tuned = model.fit(train_ds, validation_data=inputs.without_paths(eval_ds),
                      initial_epoch=head_epochs,
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
