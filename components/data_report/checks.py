"""Pure checks on the data's statistics: label balance, label drift, anomalies, leakage.

Each check returns problems as sentences that name the split, the feature or
class, the measured value and the setting that bounds it. The label checks
allow for sample size: a balanced, randomly split data set of the same counts
is flagged only at the rate `label_false_alarm_rate`.
"""

import math
import statistics
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_metadata.proto.v0 import statistics_pb2

from models import features

_L_INFTY_HIGH = anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH


def _feature_stats(stats: statistics_pb2.DatasetFeatureStatistics, name: str):
    for feature in stats.features:
        if feature.name == name or list(feature.path.step) == [name]:
            return feature
    return None


def label_counts(stats: statistics_pb2.DatasetFeatureStatistics, class_names: Sequence[str],
                 key: str = features.LABEL_NAME_KEY) -> Dict[str, int]:
    """Examples per class, read from the label-name feature's rank histogram."""
    feature = _feature_stats(stats, key)
    if feature is None:
        raise ValueError(f'statistics have no feature {key!r}')
    counts = {label: 0 for label in class_names}
    for bucket in feature.string_stats.rank_histogram.buckets:
        counts[bucket.label] = int(bucket.sample_count)
    return counts


def z_bound(false_alarm_rate: float, comparisons: int) -> float:
    """Two-sided normal quantile for a false-alarm rate shared by `comparisons` tests."""
    if not 0.0 < false_alarm_rate < 1.0:
        raise ValueError(f'false_alarm_rate must be in (0, 1), got {false_alarm_rate}')
    return statistics.NormalDist().inv_cdf(1.0 - false_alarm_rate / (2 * comparisons))


def balance_margin(total: int, classes: int, false_alarm_rate: float) -> float:
    """How far a class's share of `total` images strays from 1/K by chance alone.

    A perfectly balanced source sampled `total` times gives each class a share
    of 1/K with standard error sqrt(p(1-p)/n); the margin is that error times
    the normal quantile for the false-alarm rate, split over the K classes.
    """
    if total <= 0:
        return 1.0
    expected = 1.0 / classes
    return z_bound(false_alarm_rate, classes) * math.sqrt(expected * (1 - expected) / total)


def balance_rule(total: int, classes: int, tolerance: float,
                 false_alarm_rate: float) -> Dict[str, float]:
    """How far a class's share of a split of `total` images may stray from 1/K.

    The allowed distance is the larger of `tolerance` x 1/K (the imbalance the
    user accepts, relative to the fair share, so the rule means the same for 2
    classes as for 50: at 0.2, shares of 40-60% of 2 classes, 8-12% of 10) and
    `balance_margin(n)` (what a balanced data set of n images shows by chance),
    so a small split is not stopped for noise. The numbers the data report states.
    """
    expected = 1.0 / classes
    accepted = tolerance * expected
    margin = balance_margin(total, classes, false_alarm_rate)
    return {'images': total, 'expected_share': expected, 'tolerance': tolerance,
            'accepted': accepted, 'chance_margin': margin, 'allowed': max(accepted, margin)}


def balance_problems(counts_by_split: Mapping[str, Mapping[str, int]], tolerance: float,
                     false_alarm_rate: float) -> List[str]:
    """Classes whose share of a split is further from 1/K than `balance_rule` allows."""
    problems = []
    for split, counts in counts_by_split.items():
        total = sum(counts.values())
        rule = balance_rule(total, len(counts), tolerance, false_alarm_rate)
        expected, allowed = rule['expected_share'], rule['allowed']
        for label, count in counts.items():
            share = count / total if total else 0.0
            if abs(share - expected) > allowed:
                problems.append(
                    f'label balance: class {label!r} is {share:.1%} of the {split} split '
                    f'({count} of {total}); expected {expected:.1%} ± {allowed:.1%}, the '
                    f'larger of balance_tolerance {tolerance:.0%} of that share '
                    f'({rule["accepted"]:.1%}) and the {rule["chance_margin"]:.1%} a '
                    f'balanced set of {total} images shows by chance '
                    f'(label_false_alarm_rate {false_alarm_rate:g})')
    return problems


def label_drift_threshold(train: Mapping[str, int], evaluation: Mapping[str, int],
                          false_alarm_rate: float) -> float:
    """The L-infinity distance between train and eval label shares that chance can give.

    Under "both splits come from one distribution", the difference of a class's
    shares has standard error sqrt(p(1-p)(1/n_train + 1/n_eval)), p its pooled
    share. The threshold is the largest such error over the classes times the
    normal quantile for the false-alarm rate, split over the classes.
    """
    n_train, n_eval = sum(train.values()), sum(evaluation.values())
    if not n_train or not n_eval:
        return 1.0
    spread = max(math.sqrt(p * (1 - p) * (1 / n_train + 1 / n_eval))
                 for p in ((train[c] + evaluation[c]) / (n_train + n_eval) for c in train))
    return min(1.0, z_bound(false_alarm_rate, len(train)) * spread)


def label_shift(train: Mapping[str, int], evaluation: Mapping[str, int]) -> Tuple[str, float]:
    """The class whose share differs most between train and eval, and by how much."""
    n_train, n_eval = sum(train.values()) or 1, sum(evaluation.values()) or 1
    return max(((c, abs(train[c] / n_train - evaluation[c] / n_eval)) for c in train),
               key=lambda item: item[1])


def label_drift(train: statistics_pb2.DatasetFeatureStatisticsList,
                evaluation: statistics_pb2.DatasetFeatureStatisticsList,
                schema: schema_pb2.Schema, threshold: float) -> anomalies_pb2.Anomalies:
    """TFDV's drift comparator (L-infinity) on the label, train against eval.

    Returns:
      The Anomalies TFDV reports, restricted to the label-name feature's drift
      (ExampleValidator reports its other anomalies per split).
    """
    with_comparator = schema_pb2.Schema()
    with_comparator.CopyFrom(schema)
    label = tfdv.get_feature(with_comparator, features.LABEL_NAME_KEY)
    label.drift_comparator.infinity_norm.threshold = threshold
    anomalies = tfdv.validate_statistics(train, with_comparator, previous_statistics=evaluation)
    result = anomalies_pb2.Anomalies()
    result.CopyFrom(anomalies)
    result.ClearField('dataset_anomaly_info')
    for name in list(result.anomaly_info):
        info = result.anomaly_info[name]
        drifted = [r for r in info.reason if r.type == _L_INFTY_HIGH]
        if name != features.LABEL_NAME_KEY or not drifted:
            del result.anomaly_info[name]
            continue
        del info.reason[:]
        info.reason.extend(drifted)
        info.short_description = drifted[0].short_description
        info.description = drifted[0].description
    return result


def drift_problems(drift: anomalies_pb2.Anomalies, train: Mapping[str, int],
                   evaluation: Mapping[str, int], threshold: float,
                   false_alarm_rate: float) -> List[str]:
    """TFDV's label drift anomaly in plain words (its own text speaks of spans)."""
    if features.LABEL_NAME_KEY not in drift.anomaly_info:
        return []
    label, _ = label_shift(train, evaluation)
    n_train, n_eval = sum(train.values()), sum(evaluation.values())
    return [f'train vs eval label shares: class {label!r} is '
            f'{evaluation[label] / n_eval:.1%} of eval ({evaluation[label]} of {n_eval}) '
            f'against {train[label] / n_train:.1%} of train ({train[label]} of {n_train}); '
            f'with these counts a difference up to {threshold:.1%} is expected by chance '
            f'(label_false_alarm_rate {false_alarm_rate:g}; TFDV L-infinity comparator on '
            f'{features.LABEL_NAME_KEY!r})']


def anomaly_problems(anomalies: anomalies_pb2.Anomalies, where: str) -> List[str]:
    """One sentence per anomaly of a TFDV Anomalies proto."""
    problems = []
    for name, info in sorted(anomalies.anomaly_info.items()):
        problems.append(f'{where}: feature {name!r}: {info.short_description}. '
                        f'{info.description}')
    if anomalies.HasField('dataset_anomaly_info'):
        info = anomalies.dataset_anomaly_info
        problems.append(f'{where}: dataset: {info.short_description}. {info.description}')
    return problems


def duplicate_problems(image_report: Mapping[str, Any], max_cross_split: int) -> List[str]:
    """Leakage: identical images in both train and eval, beyond the allowed number."""
    crossing = [d for d in image_report['duplicates'] if d['cross_split']]
    if len(crossing) <= max_cross_split:
        return []
    examples = '; '.join(' = '.join(f"{f['split']}:{f['path']}" for f in d['files'])
                         for d in crossing[:5])
    return [f'leakage: {len(crossing)} images appear in both train and eval with identical '
            f'bytes (max_cross_split_duplicates {max_cross_split}): {examples}']
