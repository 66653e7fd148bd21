"""The Tuner's search (tuner_fn, for TFX's Tuner): the transfer model's head settings,
on the frozen features of the train split only, scored by k-fold cross-validation on it.

The base is frozen, so a trial is the head alone: the Tuner computes the frozen base's
features once, as the Trainer does (the photo itself, DataQuality's when they are given,
and augmented copies of it through the Trainer's own functions). A trial splits the
training photos into `folds` folds (per class) and, for each, trains a head on the other
folds (models/frozen_training.py: fit_head, the Trainer's own schedule of views) and scores it on
the fold's photos as they are, not augmented (cross-entropy and accuracy, as the Trainer
validates): every training photo is validated once, by a head that never saw it.
KerasTuner's random search draws the trials; the first is the pipeline's own settings,
so the best is never worse than them on these folds.

It reads the train split and nothing else: FnArgs.train_files (the Tuner's eval_args name
the train split too: its validation photos are drawn from it) and the train rows of the
frozen features. The eval split the Evaluator gates on and the held-out test split are
never opened.
"""

import dataclasses
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras_tuner
import numpy as np
import tf_keras as keras
from keras_tuner.engine import trial as trial_lib
from keras_tuner.oracles import RandomSearchOracle
from tfx.components.trainer import fn_args_utils
from tfx.components.tuner.component import TunerFnResult

from models import builders
from models import features
from models import frozen_features
from models import frozen_training
from models import hyperparameters
from models import inputs
from models import trainer_settings
from models import training
from runlog import progress

@dataclasses.dataclass
class TrainFeatures:
    """The frozen base's features of the training photos the search uses."""
    photo: np.ndarray           # [photos, D]: the photo itself, not augmented
    copies: np.ndarray          # [photos, copies, D]: augmented copies
    labels: np.ndarray          # [photos]
    photo_is_view: bool         # the Trainer trains on the photo too (DataQuality's given)
    read: Dict[str, Any]        # what was read: splits, files, frozen features


def space(settings: trainer_settings.TrainerSettings) -> keras_tuner.HyperParameters:
    """KerasTuner's search space: hyperparameters.SPACE plus the pipeline's own value of
    each setting, which is each setting's default."""
    hp = keras_tuner.HyperParameters()
    for name in hyperparameters.SPACE:
        hp.Choice(name, candidates(settings, name), default=getattr(settings, name))
    return hp


def candidates(settings: trainer_settings.TrainerSettings, name: str) -> list:
    """A setting's values in the search: hyperparameters.SPACE's and the pipeline's own."""
    return sorted(set(hyperparameters.SPACE[name]) | {getattr(settings, name)})


class DefaultsFirstOracle(RandomSearchOracle):
    """KerasTuner's random search whose first trial is the space's defaults (the
    pipeline's settings); later draws never repeat a trial."""

    def populate_space(self, trial_id):
        if not self.trials:
            return {'status': trial_lib.TrialStatus.RUNNING,
                    'values': self.get_space().values}
        return super().populate_space(trial_id)


def copies_needed(settings: trainer_settings.TrainerSettings, views: Sequence[int],
                  photo_is_view: bool) -> int:
    """Augmented copies per photo that the largest of these view counts trains on."""
    needed = 0
    for count in views:
        plan = frozen_training.head_views(dataclasses.replace(settings, augmented_views=count))
        needed = max(needed, plan - (photo_is_view and frozen_training.photo_is_a_view(
            plan, settings.augmentation)))
    return needed


def train_features(fn_args: fn_args_utils.FnArgs, settings: trainer_settings.TrainerSettings,
                   views: Sequence[int], max_photos: int, local_dir: Optional[str] = None,
                   frozen_uri: Optional[str] = None) -> TrainFeatures:
    """The frozen features of the photo itself and of as many augmented copies as the
    largest of `views` trains on, of the first `max_photos` photos of the train split
    (FnArgs.train_files), and what was read.

    The photo's come from DataQuality (frozen_uri, its train rows) when they are this
    model's (the Trainer then trains on them too), else from the same featurizer run
    here; the copies from the Trainer's own input pipeline and featurizer
    (models/inputs.py: make_dataset; models/frozen_training.py: view_features).
    """
    import tensorflow_transform as tft  # pylint: disable=import-outside-toplevel
    files = list(fn_args.train_files)
    count = inputs.count_records(files)
    reused, why_not = frozen_features.reusable(frozen_uri, features.TRAIN_SPLIT,
                                               settings.weights, settings.image_size, count,
                                               local_dir)
    if reused is not None:
        photo, photo_labels, photo_paths = reused
    else:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        model = frozen_features.featurizer(settings.weights, settings.image_size)
        # FnArgs names file patterns; batches() reads files.
        paths = sorted(p for pattern in files for p in tf.io.gfile.glob(pattern))
        rows = list(frozen_features.batches(paths, settings.image_size, model))
        photo = np.concatenate([r['features'] for r in rows])
        photo_labels = np.concatenate([r['labels'] for r in rows])
        photo_paths = np.concatenate([r['paths'] for r in rows])
    used = min(count, max_photos)
    copies = copies_needed(settings, views, reused is not None)
    keras.utils.set_random_seed(settings.seed)
    if copies:
        transfer = builders.build('transfer', settings.image_size, len(settings.class_names),
                                  weights=settings.weights, dropout=settings.dropout,
                                  learning_rate=settings.learning_rate, seed=settings.seed,
                                  augment=settings.augmentation)
        dataset = inputs.make_dataset(
            files, fn_args.data_accessor, tft.TFTransformOutput(fn_args.transform_graph_path),
            settings.batch_size, training=False, seed=settings.seed, limit=0, count=count,
            with_paths=True)
        dataset = dataset.unbatch().take(used).batch(settings.batch_size)
        augmented, labels, paths = frozen_training.view_features(
            transfer, dataset, copies, None, used, with_paths=True, weights=settings.weights)
        position = {path: row for row, path in enumerate(photo_paths)}
        rows = np.asarray([position[p] for p in paths])
        if not np.array_equal(np.asarray(photo_labels)[rows], labels):
            raise ValueError('the frozen features give some training photos another label')
        photo = np.asarray(photo[rows], np.float32)
    else:
        labels = np.asarray(photo_labels[:used])
        photo = np.asarray(photo[:used], np.float32)
        augmented = np.zeros((used, 0, photo.shape[-1]), np.float32)
    read = {'splits': [features.TRAIN_SPLIT], 'files': files, 'photos': int(used),
            'split_photos': int(count),
            'frozen_features': (f'{frozen_uri} ({features.TRAIN_SPLIT} rows)' if reused is not None
                                else f'computed here ({why_not})')}
    return TrainFeatures(photo, augmented, labels, reused is not None, read)


def folds(labels: np.ndarray, count: int, seed: int) -> List[Tuple[np.ndarray, np.ndarray]]:
    """k-fold cross-validation's (rows trained on, rows validated on), `count` folds (at
    most one per photo): each photo is validated in exactly one; per class when every
    class has `count` photos or more (sklearn's StratifiedKFold, else KFold), shuffled by
    the seed."""
    from sklearn import model_selection  # pylint: disable=import-outside-toplevel
    count = min(count, len(labels))
    _, per_class = np.unique(labels, return_counts=True)
    kind = (model_selection.StratifiedKFold if per_class.min() >= count
            else model_selection.KFold)
    splitter = kind(n_splits=count, shuffle=True, random_state=seed)
    return [(np.sort(fit_rows), np.sort(val_rows))
            for fit_rows, val_rows in splitter.split(np.zeros(len(labels)), labels)]


def fit(data: TrainFeatures, rows: np.ndarray, settings: trainer_settings.TrainerSettings):
    """A head trained as the Trainer trains it with these settings (its schedule of views,
    models/frozen_training.py: fit_head), on these rows' photos."""
    views = frozen_training.head_views(settings)
    photo_view = data.photo_is_view and frozen_training.photo_is_a_view(views,
                                                                        settings.augmentation)
    copies = views - photo_view
    if copies > data.copies.shape[1]:
        raise ValueError(f'{views} views need {copies} augmented copies of each photo; '
                         f'{data.copies.shape[1]} were computed')
    keras.utils.set_random_seed(settings.seed)
    head = builders.build_head(len(settings.class_names), dropout=settings.dropout,
                               learning_rate=settings.learning_rate,
                               label_smoothing=settings.label_smoothing)
    frozen_training.fit_head(head, data.copies[rows, :copies], data.labels[rows], settings,
                             photo=(data.photo, rows) if photo_view else None, verbose=0)
    return head


def evaluate(head, photo_features: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """{'val_loss': cross-entropy (no smoothing, as the Trainer validates), 'val_accuracy'}
    of a head on photos' features."""
    logits = head(np.asarray(photo_features, np.float32), training=False).numpy()
    loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    return {'val_loss': float(np.mean(loss)),
            'val_accuracy': float(np.mean(np.argmax(logits, axis=-1) == labels))}


def score(data: TrainFeatures, splits: Sequence[Tuple[np.ndarray, np.ndarray]],
          settings: trainer_settings.TrainerSettings) -> Dict[str, float]:
    """A trial: for each (fit rows, validation rows) of `splits` (folds), a head trained on
    the fit rows (fit) and evaluated on the validation rows' photos as they are, not
    augmented (evaluate); the metrics over all validation photos."""
    totals, photos = {'val_loss': 0.0, 'val_accuracy': 0.0}, 0
    for fit_rows, val_rows in splits:
        metrics = evaluate(fit(data, fit_rows, settings), data.photo[val_rows],
                           data.labels[val_rows])
        for name in totals:
            totals[name] += metrics[name] * len(val_rows)
        photos += len(val_rows)
    return {name: total / photos for name, total in totals.items()}


class HeadTuner(keras_tuner.Tuner):
    """A KerasTuner tuner whose trial trains the transfer model's head on the frozen
    features of the train split, cross-validated over its folds (score)."""

    def __init__(self, data: TrainFeatures, settings: trainer_settings.TrainerSettings,
                 search: hyperparameters.SearchSettings, **kwargs):
        super().__init__(**kwargs)
        # Not `search`, `settings`: KerasTuner's own names (search() runs the trials).
        self.train_data, self.trainer_settings, self.search_settings = data, settings, search
        self.splits = folds(data.labels, search.folds, settings.seed)

    def run_trial(self, trial, *args, **kwargs):
        values = dict(trial.hyperparameters.values)
        start = time.perf_counter()
        metrics = score(self.train_data, self.splits,
                        dataclasses.replace(self.trainer_settings, **values))
        metrics['seconds'] = time.perf_counter() - start
        progress.logger().info('trial %d/%d: %s: val_loss %.4f, val_accuracy %.4f (%.1f s)',
                               len(self.oracle.trials), self.search_settings.trials, ', '.join(
                                   f'{k} {v:g}' for k, v in sorted(values.items())),
                               metrics['val_loss'], metrics['val_accuracy'],
                               metrics['seconds'])
        return metrics


def trial_rows(tuner: HeadTuner) -> List[Dict[str, Any]]:
    """Every completed trial in the order run: id, settings, validation loss and accuracy,
    seconds, and whether it is the best."""
    best = tuner.oracle.get_best_trials(1)[0].trial_id
    rows = []
    for trial_id in tuner.oracle.start_order:
        trial = tuner.oracle.trials[trial_id]
        if trial.status != trial_lib.TrialStatus.COMPLETED:
            continue
        metrics = {name: trial.metrics.get_last_value(name)
                   for name in ('val_loss', 'val_accuracy', 'seconds')}
        rows.append({'trial': trial_id, 'values': dict(trial.hyperparameters.values),
                     **metrics, 'best': trial_id == best})
    return rows


def tuner_fn(fn_args: fn_args_utils.FnArgs) -> TunerFnResult:
    """TFX Tuner entry point: the features of the train split, then a HeadTuner on them.

    fn_args.custom_config: PipelineConfig.trainer_config() plus hyperparameters.CONFIG_KEY
    (SearchSettings) and, when DataQuality ran, frozen_features.CONFIG_KEY (its artifact's
    URI).
    """
    training.keep_autograph_out_of_tf_keras()
    config = dict(fn_args.custom_config or {})
    search = hyperparameters.SearchSettings(**config.pop(hyperparameters.CONFIG_KEY, {}))
    settings = trainer_settings.TrainerSettings.from_custom_config(config)
    if settings.model_variant != 'transfer':
        raise ValueError('the Tuner tunes the transfer model\'s head, not '
                         f'{settings.model_variant!r}')
    hp = space(settings)
    start = time.perf_counter()
    data = train_features(fn_args, settings, candidates(settings, 'augmented_views'),
                          search.max_photos, fn_args.working_dir,
                          config.get(frozen_features.CONFIG_KEY))
    progress.logger().info('frozen features of %d training photos and %d augmented cop%s of '
                           'each: %.1f s', len(data.labels), data.copies.shape[1],
                           'y' if data.copies.shape[1] == 1 else 'ies',
                           time.perf_counter() - start)
    tuner = HeadTuner(
        data, settings, search,
        oracle=DefaultsFirstOracle(
            objective=keras_tuner.Objective(hyperparameters.OBJECTIVE, 'min'),
            max_trials=search.trials, seed=settings.seed, hyperparameters=hp),
        directory=fn_args.working_dir, project_name='head', overwrite=True)
    return TunerFnResult(tuner=tuner, fit_kwargs={'verbose': 0})
