"""The Tuner's executor: TFX's Tuner executor (tuner_fn, KerasTuner's search, the
best_hyperparameters and tuner_results files), with DataQuality's frozen features named in
tuner_fn's custom_config and the trials written for the run report."""

import shutil
import tempfile

from tfx.components.tuner import executor as tuner_executor
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.image_trainer import component as image_trainer
from components.tuner import spec
from models import hyperparameters
from models import tuning


class Executor(base_executor.BaseExecutor):
    """Runs tuner_fn's search; writes TFX's two files and trials.json."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        if tuner_executor.get_tune_args(exec_properties):
            raise ValueError('tune_args (parallel trials) is not supported by this Tuner')
        exec_properties = image_trainer.with_frozen_features(input_dict, exec_properties)
        # KerasTuner's own files (oracle and trial states) and local copies: this run only.
        working_dir = tempfile.mkdtemp(prefix='tuner-')
        try:
            tuner = tuner_executor.search(input_dict, exec_properties, working_dir,
                                          print_tuning_summary=False)
            tuner_executor.write_best_hyperparameters(tuner, output_dict)
            spec.write_trials(
                artifact_utils.get_single_uri(output_dict[spec.TUNER_RESULTS_KEY]),
                tuning.trial_rows(tuner), tuner.train_data.read, hyperparameters.OBJECTIVE,
                {'folds': len(tuner.splits),
                 'photos': sum(len(val_rows) for _, val_rows in tuner.splits)})
        finally:
            shutil.rmtree(working_dir, ignore_errors=True)

