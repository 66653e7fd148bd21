"""How run_fn reads its two splits, decided once per split: one CachePlan.

For each split: its count (the Trainer reads only its declared input); whether it is
read once, in order (a transfer model's head trained on frozen features, an eval
split only the head reads), or every epoch; where its decoded images are cached (in
memory under inputs.cache_limit, else a file in this run's cache folder when it fits
the disk, else nowhere); whether DataQuality's frozen features stand in for the
base's (frozen_features.reusable). training.train follows the same plan.
"""

import contextlib
import dataclasses
import os
import shutil
import tempfile
from typing import Any, Dict, Iterator, Optional, Tuple

import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx.components.trainer import fn_args_utils

from models import features
from models import frozen_features
from models import frozen_training
from models import inputs
from models import trainer_settings
from runlog import progress

# The Trainer's local cache folder (decoded images, features) in the temp folder:
# <prefix><pid>-<random>. A killed Trainer cannot remove its own; the next removes it.
CACHE_DIR_PREFIX = 'trainer-cache-'


@dataclasses.dataclass(frozen=True)
class CachePlan:
    """run_fn's splits as it decided to read them.

    datasets: 'train' and 'eval' batches (inputs.make_dataset).
    counts: photos per split.
    train_steps: batches per epoch of an endless train split; None: one pass per epoch.
    views: frozen_training.feature_views' answer for the train split.
    reused: per split, DataQuality's frozen features, labels and paths (None: computed).
    """
    datasets: Dict[str, tf.data.Dataset]
    counts: Dict[str, int]
    train_steps: Optional[int]
    views: Optional[Tuple[int, bool]]
    reused: Dict[str, Any]


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


@contextlib.contextmanager
def cache_folder() -> Iterator[str]:
    """This run's local cache folder (removed at the end), after removing the folders of
    Trainers that were stopped. A split too large for memory is cached on this
    machine's disk for the run only, when it fits there."""
    for path in remove_stale_caches(tempfile.gettempdir()):
        progress.logger().info('removed the cache of a Trainer that was stopped: %s', path)
    with tempfile.TemporaryDirectory(prefix=f'{CACHE_DIR_PREFIX}{os.getpid()}-') as root:
        yield root


def plan(fn_args: fn_args_utils.FnArgs, settings: trainer_settings.TrainerSettings,
         tf_transform_output: tft.TFTransformOutput, cache_root: str) -> CachePlan:
    """Decides how each split is read and cached (in cache_root) and builds its dataset."""
    # The transfer model's head reads the eval split once (FrozenFeatureValidation):
    # caching it would only hold memory. Fine-tuning validates on it every epoch.
    cache_eval = settings.model_variant != 'transfer' or settings.fine_tune_epochs > 0
    limit = inputs.cache_limit(tf_transform_output)
    datasets, train_steps, counts, views_plan, reused = {}, None, {}, None, {}
    for name, files, training in (('train', fn_args.train_files, True),
                                  ('eval', fn_args.eval_files, False)):
        # Counted whole, once: the count picks the caches (pixels, features) and gives
        # the steps per epoch.
        count = counts[name] = inputs.count_records(files)
        # A head trained on the features of augmented copies reads the train split
        # once, in order (view_batches shuffles); only fine-tuning reads it again.
        # Decided once, here: train() follows the same plan.
        if training:
            views_plan = frozen_training.feature_views(settings, count,
                                                       shutil.disk_usage(cache_root).free)
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
            if not inputs.file_cache_fits(count, inputs.image_bytes(tf_transform_output), free):
                progress.logger().info(
                    '%s split: %d decoded images do not fit the %.1f GB free on %s; '
                    'decoding them every epoch instead', name, count, free / 1e9, cache_root)
                cache_dir = None
        if cache_dir:
            tf.io.gfile.makedirs(cache_dir)
        repeat = training and not once
        if repeat:
            train_steps = inputs.steps_per_epoch(count, settings.batch_size)
        datasets[name] = inputs.make_dataset(
            files, fn_args.data_accessor, tf_transform_output, settings.batch_size,
            training=training and not once, seed=settings.seed,
            limit=0 if once else limit, cache_dir=cache_dir,
            count=count, repeat=repeat,
            with_paths=not training or reused.get(name) is not None)
    return CachePlan(datasets, counts, train_steps, views_plan, reused)
