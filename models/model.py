"""run_fn (Trainer): datasets -> train -> export, and the history beside the model.

The input pipeline and its caches are models/inputs.py, decided per split by
models/cache_plan.py; the training loop (fit, fine-tuning, the eval answers) is
models/training.py; the transfer model's frozen-feature path (its head trained on
frozen features of augmented views) is models/frozen_training.py; the settings are
models/trainer_settings.py, read from the Trainer's custom_config.
"""

import dataclasses
import time

import tensorflow_transform as tft
from absl import logging
from tfx.components.trainer import fn_args_utils

from models import cache_plan
from models import eval_answers
from models import export
from models import history as training_history
from models import hyperparameters
from models import trainer_settings
from models import training
from runlog import progress


def run_fn(fn_args: fn_args_utils.FnArgs) -> None:
    """TFX Trainer entry point."""
    start = time.perf_counter()
    training.keep_autograph_out_of_tf_keras()
    settings = trainer_settings.TrainerSettings.from_custom_config(fn_args.custom_config)
    # The Tuner's best settings (its best_hyperparameters artifact) replace the pipeline's.
    tuned = (hyperparameters.values(fn_args.hyperparameters, "the Tuner's best hyperparameters")
             if fn_args.hyperparameters else {})
    if tuned:
        settings = dataclasses.replace(settings, **tuned)
        progress.logger().info('settings from the Tuner: %s', ', '.join(
            f'{name} {value:g}' for name, value in sorted(tuned.items())))
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    with cache_plan.cache_folder() as cache_root:
        splits = cache_plan.plan(fn_args, settings, tf_transform_output, cache_root)
        model, history, answers = training.train(
            settings, splits.datasets['train'], splits.datasets['eval'],
            log_dir=fn_args.model_run_dir, train_steps=splits.train_steps,
            train_count=splits.counts['train'], eval_count=splits.counts['eval'],
            features_dir=cache_root, views_plan=splits.views,
            eval_features=splits.reused.get('eval'), train_photos=splits.reused.get('train'))
    trained = time.perf_counter()
    export.export_model(model, tf_transform_output, settings.class_names, fn_args.serving_model_dir)
    history['settings'] = dataclasses.asdict(settings)
    history['tuned'] = tuned
    history['seconds'].update(total=time.perf_counter() - start,
                              export=time.perf_counter() - trained)
    eval_answers.save(answers, fn_args.model_run_dir)
    training_history.save(history, fn_args.model_run_dir)
    logging.info('Training history: %s', {k: v for k, v in history.items() if k != 'settings'})
