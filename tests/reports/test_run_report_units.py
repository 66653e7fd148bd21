"""Thresholds and validation failures in words (Pusher reason, run report); metric format."""

import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.proto import validation_result_pb2

from components.image_pusher import validation_text
from pipeline import configs
from pipeline import nodes
from pipeline import pipeline as pipeline_def
from reports import run_report


def test_thresholds_of_the_pipeline_eval_config_in_words():
    config = configs.local('/tmp/work', '/tmp/data', accuracy_threshold=0.75,
                           regression_tolerance=0.02)
    assert validation_text.describe_thresholds(pipeline_def.eval_config(config)) == [
        'SparseCategoricalAccuracy >= 0.75',
        'SparseCategoricalAccuracy change vs the last pushed model >= -0.02',
    ]


def test_validation_failures_in_words():
    failure = validation_result_pb2.ValidationFailure()
    failure.metric_key.name = nodes.ACCURACY_METRIC
    failure.metric_threshold.value_threshold.lower_bound.value = 0.9
    failure.metric_value.double_value.value = 0.5
    assert validation_text.describe_failure(failure) == (
        'sparse_categorical_accuracy is 0.5000, not >= 0.9')

    failure.metric_key.is_diff = True
    failure.metric_threshold.Clear()
    failure.metric_threshold.change_threshold.absolute.value = -0.01
    failure.metric_threshold.change_threshold.direction = tfma.MetricDirection.HIGHER_IS_BETTER
    failure.metric_value.double_value.value = -0.35
    failure.message = 'worse than the baseline'
    assert validation_text.describe_failure(failure) == (
        'sparse_categorical_accuracy change vs the last pushed model is -0.3500, not >= -0.01 '
        '(worse than the baseline)')


def test_metric_format():
    assert run_report.fmt(0.949999988079071) == '0.9500'
    assert run_report.fmt(None) == '-'


def test_training_table_and_words_tell_the_fine_tuning_phase_apart():
    history = {'accuracy': [0.8, 0.9, 0.95, 0.96], 'val_accuracy': [0.85, 0.9, 0.93, 0.92],
               'loss': [0.5, 0.3, 0.2, 0.1], 'val_loss': [0.4, 0.3, 0.2, 0.25],
               'epoch_seconds': [1.0, 1.0, 9.0, 9.0], 'fine_tune_from_epoch': 2,
               'best_epoch': 3}
    settings = {'fine_tune_from_layer': 100, 'fine_tune_learning_rate': 1e-5,
                'fine_tune_epochs': 5}
    rows = run_report._history_rows(history)  # pylint: disable=protected-access
    assert [row[0] for row in rows] == [1, 2, '3 (fine-tuning 1)', '4 (fine-tuning 2)']
    words = run_report._fine_tuning(history, settings)  # pylint: disable=protected-access
    assert 'from epoch 3' in words and 'base from layer 100 on' in words
    assert '2 epochs of at most 5, the weights of epoch 3 kept (lowest eval loss)' in words
    kept_head = run_report._fine_tuning(dict(history, best_epoch=2), settings)  # pylint: disable=protected-access
    assert 'the head alone: fine-tuning did not lower it' in kept_head
    assert [row[0] for row in run_report._history_rows(  # pylint: disable=protected-access
        dict(history, fine_tune_from_epoch=None))] == [1, 2, 3, 4]
