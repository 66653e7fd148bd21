"""Pure checks on the data's statistics: label balance, label drift, anomalies, leakage.

Each check returns problems as sentences that name the split, the feature or
class, the measured value and the setting that bounds it.
"""

from typing import Any, Dict, List, Mapping, Sequence

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_metadata.proto.v0 import statistics_pb2

from models import features


def _feature_stats(stats: statistics_pb2.DatasetFeatureStatistics, name: str):
    for feature in stats.features:
        if feature.name == name or list(feature.path.step) == [name]:
            return feature
    return None


def label_counts(stats: statistics_pb2.DatasetFeatureStatistics, labels: Sequence[str],
                 key: str = features.LABEL_NAME_KEY) -> Dict[str, int]:
    """Examples per class, read from the label-name feature's rank histogram."""
    feature = _feature_stats(stats, key)
    if feature is None:
        raise ValueError(f'statistics have no feature {key!r}')
    counts = {label: 0 for label in labels}
    for bucket in feature.string_stats.rank_histogram.buckets:
        counts[bucket.label] = int(bucket.sample_count)
    return counts


def balance_problems(counts_by_split: Mapping[str, Mapping[str, int]],
                     tolerance: float) -> List[str]:
    """Classes whose share of a split is further than tolerance from 1/K."""
    problems = []
    for split, counts in counts_by_split.items():
        total = sum(counts.values())
        expected = 1.0 / len(counts)
        for label, count in counts.items():
            share = count / total if total else 0.0
            if abs(share - expected) > tolerance:
                problems.append(
                    f'label balance: class {label!r} is {share:.1%} of the {split} split '
                    f'({count} of {total}); expected {expected:.1%} '
                    f'± {tolerance:.1%} (balance_tolerance)')
    return problems


def label_drift(train: statistics_pb2.DatasetFeatureStatisticsList,
                evaluation: statistics_pb2.DatasetFeatureStatisticsList,
                schema: schema_pb2.Schema, threshold: float) -> anomalies_pb2.Anomalies:
    """TFDV's drift comparator (L-infinity) on the label, train against eval.

    Returns:
      The Anomalies TFDV reports, restricted to the label-name feature.
    """
    with_comparator = schema_pb2.Schema()
    with_comparator.CopyFrom(schema)
    label = tfdv.get_feature(with_comparator, features.LABEL_NAME_KEY)
    label.drift_comparator.infinity_norm.threshold = threshold
    anomalies = tfdv.validate_statistics(train, with_comparator, previous_statistics=evaluation)
    result = anomalies_pb2.Anomalies()
    result.CopyFrom(anomalies)
    for name in list(result.anomaly_info):
        if name != features.LABEL_NAME_KEY:
            del result.anomaly_info[name]
    result.ClearField('dataset_anomaly_info')
    return result


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
