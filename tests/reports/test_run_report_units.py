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
