"""TFMA thresholds and validation failures in words (the Pusher's reason, the run report).

TFMA leaves ValidationFailure.message empty for value and change thresholds,
so the words come from the failure's value and threshold.
"""

from typing import List, Tuple

import tensorflow_model_analysis as tfma

METRIC_FORMAT = '{:.4f}'

_CHANGE = ' change vs the last pushed model'


def _bounds(threshold) -> List[Tuple[bool, str]]:
    """(is a change threshold, '>= 0.9') pairs of a tfma.MetricThreshold."""
    bounds = []
    if threshold.HasField('value_threshold'):
        value = threshold.value_threshold
        if value.HasField('lower_bound'):
            bounds.append((False, f'>= {value.lower_bound.value:g}'))
        if value.HasField('upper_bound'):
            bounds.append((False, f'<= {value.upper_bound.value:g}'))
    if threshold.HasField('change_threshold'):
        change = threshold.change_threshold
        sign = '>=' if change.direction == tfma.MetricDirection.HIGHER_IS_BETTER else '<='
        if change.HasField('absolute'):
            bounds.append((True, f'{sign} {change.absolute.value:g}'))
        if change.HasField('relative'):
            bounds.append((True, f'{sign} {change.relative.value:g} (relative)'))
    return bounds


def describe_thresholds(eval_config) -> List[str]:
    """'SparseCategoricalAccuracy >= 0.9' lines: the thresholds TFMA applied."""
    return [f"{metric.class_name}{_CHANGE if change else ''} {bound}"
            for metrics_spec in eval_config.metrics_specs for metric in metrics_spec.metrics
            if metric.HasField('threshold') for change, bound in _bounds(metric.threshold)]


def describe_failure(failure_) -> str:
    """A TFMA ValidationFailure in words (TFMA leaves its message empty for thresholds)."""
    key = failure_.metric_key
    value = (METRIC_FORMAT.format(failure_.metric_value.double_value.value)
             if failure_.metric_value.HasField('double_value') else 'missing')
    bounds = ' and '.join(bound for _, bound in _bounds(failure_.metric_threshold))
    text = f"{key.name}{_CHANGE if key.is_diff else ''} is {value}, not {bounds}"
    return f'{text} ({failure_.message})' if failure_.message.strip() else text
