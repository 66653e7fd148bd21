"""Pure: does served traffic look like the data the model learnt from?

Statistics of one window of traffic against the reference profile
(models/profile.py), each with a threshold calibrated on the reference itself:

- image properties (bytes, width, height, aspect, channels, brightness, contrast,
  saturation) and the model's confidence: TFDV's skew comparator, Jensen-Shannon
  divergence;
- image format and predicted class: TFDV's skew comparator, L-infinity distance;
- embeddings (the model's last-layer input, PCA-reduced): squared maximum mean
  discrepancy (MMD) with a Gaussian kernel.

Calibration, `resamples` times, under "the traffic comes from the reference's
distribution": for TFDV's statistics, a window of the traffic's size and a
pseudo-reference of the reference's size are drawn from the reference with
replacement (the bootstrap, so both samples' noise is in); for the embedding,
a window of the traffic's size (at most half the reference) is drawn without
replacement and compared with the rest (repeated points would inflate MMD).
`false_alarm_rate` is for the check as a whole: each of the k statistics gets
false_alarm_rate / k (Bonferroni), and its threshold is the larger of the
empirical quantile of its draws and the quantile of a gamma distribution fitted
to them (the draws are too few to read a 1-in-1000 tail off directly; distances
like these are close to gamma-distributed). The share of the draws in which any
statistic exceeds its threshold is reported beside it as the measured rate.
"""

import dataclasses
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from models import profile

# Which comparator each statistic gets, and the words for it.
NUMERIC = ('bytes', 'width', 'height', 'aspect', 'channels', 'brightness', 'contrast',
           'saturation', 'confidence')
CATEGORICAL = profile.CATEGORICAL_KEYS
EMBEDDING = 'embedding'
JS, L_INF, MMD = 'Jensen-Shannon divergence', 'L-infinity distance', 'MMD'
DEFAULT_FALSE_ALARM_RATE = 0.05   # of the whole check, split over its statistics
DEFAULT_RESAMPLES = 100


@dataclasses.dataclass
class Finding:
    """One statistic of the window against the reference."""
    statistic: str
    measure: str
    value: float
    threshold: float
    typical: float            # median over in-distribution resamples
    drifted: bool
    words: str                # plain words: what differs, with the numbers


@dataclasses.dataclass
class Comparison:
    """All statistics of one window."""
    findings: List[Finding]
    window: int               # traffic images compared
    calibration_window: int   # window size the thresholds were calibrated at
    resamples: int
    per_statistic_rate: float       # false_alarm_rate / k
    family_false_alarm_rate: float  # measured on the calibration draws
    anomalies: Any            # TFDV Anomalies proto (skew), thresholds as calibrated

    @property
    def drifted(self) -> List[Finding]:
        return [f for f in self.findings if f.drifted]


def _frame(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]):
    import pandas as pd  # pylint: disable=import-outside-toplevel
    return pd.DataFrame({k: [(str(r[k]) if k in CATEGORICAL else float(r[k])) for r in rows]
                         for k in keys})


def _stats(rows, keys):
    import tensorflow_data_validation as tfdv  # pylint: disable=import-outside-toplevel
    return tfdv.generate_statistics_from_dataframe(_frame(rows, keys))


def _schema(keys: Sequence[str], thresholds: Mapping[str, float]):
    from tensorflow_metadata.proto.v0 import schema_pb2  # pylint: disable=import-outside-toplevel
    schema = schema_pb2.Schema()
    for key in keys:
        feature = schema.feature.add(name=key)
        if key in CATEGORICAL:
            feature.type = schema_pb2.BYTES
            feature.skew_comparator.infinity_norm.threshold = thresholds.get(key, 1.0)
        else:
            feature.type = schema_pb2.FLOAT
            feature.skew_comparator.jensen_shannon_divergence.threshold = thresholds.get(
                key, 1.0)
    return schema


def tfdv_skew(reference_stats, window_stats, keys: Sequence[str],
              thresholds: Mapping[str, float]) -> Tuple[Dict[str, float], Any]:
    """(statistic -> TFDV's skew measurement, the Anomalies proto) of a window."""
    import tensorflow_data_validation as tfdv  # pylint: disable=import-outside-toplevel
    anomalies = tfdv.validate_statistics(reference_stats, _schema(keys, thresholds),
                                         serving_statistics=window_stats)
    values = {}
    for info in anomalies.drift_skew_info:
        key = '.'.join(info.path.step)
        for measurement in info.skew_measurements:
            values[key] = float(measurement.value)
    return values, anomalies


def gaussian_kernel(a: np.ndarray, b: np.ndarray, bandwidth: float) -> np.ndarray:
    distances = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.exp(-distances / (2 * bandwidth ** 2))


def mmd(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased squared MMD from kernel matrices (x: window, y: reference)."""
    n, m = len(k_xx), len(k_yy)
    if n < 2 or m < 2:
        return float('nan')
    xx = (k_xx.sum() - np.trace(k_xx)) / (n * (n - 1))
    yy = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(xx + yy - 2 * k_xy.mean())


def bandwidth_of(reference: np.ndarray) -> float:
    """The median pairwise distance of the reference (the usual heuristic)."""
    distances = np.sqrt(((reference[:, None, :] - reference[None, :, :]) ** 2).sum(-1))
    positive = distances[np.triu_indices(len(reference), 1)]
    positive = positive[positive > 0]
    return float(np.median(positive)) if len(positive) else 1.0


def _words(key: str, reference_rows, window_rows) -> str:
    if key in CATEGORICAL:
        def shares(rows):
            counts: Dict[str, int] = {}
            for r in rows:
                counts[str(r[key])] = counts.get(str(r[key]), 0) + 1
            return {k: v / len(rows) for k, v in counts.items()}
        ref, win = shares(reference_rows), shares(window_rows)
        value = max(set(ref) | set(win), key=lambda v: abs(ref.get(v, 0) - win.get(v, 0)))
        name = 'predicted' if key == 'predicted' else key
        return (f"{name} {value!r} share {win.get(value, 0):.0%} vs {ref.get(value, 0):.0%} "
                f"in the reference")
    ref_mean = float(np.mean([r[key] for r in reference_rows]))
    win_mean = float(np.mean([r[key] for r in window_rows]))
    return f'mean {key} {win_mean:.3g} vs {ref_mean:.3g} in the reference'


def compare(reference: Mapping[str, Any], window_rows: Sequence[Mapping[str, Any]],
            window_embeddings: Optional[np.ndarray], *,
            false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
            resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Comparison:
    """Compares a window of traffic with the reference profile.

    Args:
      reference: the profile (models/profile.py), with 'rows' and 'embedding'.
      window_rows: one row per traffic image; keys that are missing or None in
        any row (e.g. brightness when the log holds no image bytes) are skipped.
      window_embeddings: raw embeddings of the traffic images, or None.
      false_alarm_rate: the chance that in-distribution traffic is flagged by any
        statistic (split evenly over the statistics).
      resamples: calibration draws (more: steadier thresholds, slower).
      seed: of the calibration draws.

    Returns:
      The Comparison.
    """
    if not 0 < false_alarm_rate < 1:
        raise ValueError(f'false_alarm_rate must be in (0, 1), got {false_alarm_rate}')
    rng = np.random.default_rng(seed)
    n = len(window_rows)
    reference_rows = list(reference['rows'])
    answered = [r for r in reference_rows if r.get('predicted') is not None]

    def usable(key: str, rows) -> bool:
        return bool(rows) and all(r.get(key) is not None for r in (*rows, *window_rows))
    # Two groups, as predictions exist only for the reference's eval rows.
    groups = {}
    image_keys = [k for k in NUMERIC + CATEGORICAL
                  if k not in profile.PREDICTION_KEYS and usable(k, reference_rows)]
    prediction_keys = [k for k in profile.PREDICTION_KEYS if usable(k, answered)]
    if image_keys:
        groups['images'] = (reference_rows, image_keys)
    if prediction_keys:
        groups['predictions'] = (answered, prediction_keys)

    use_embedding = window_embeddings is not None and len(window_embeddings) >= 2
    if use_embedding:
        reduced_ref = np.asarray(reference['embedding']['reduced'], dtype=np.float64)
        reduced_win = profile.reduce(window_embeddings, reference['embedding'])
        width = bandwidth_of(reduced_ref)
        k_rr = gaussian_kernel(reduced_ref, reduced_ref, width)

    # The embedding's calibration window (without replacement).
    m = max(2, min(n, len(reduced_ref) // 2)) if use_embedding else n
    draws: Dict[str, List[float]] = {}

    def draw_all() -> Dict[str, float]:
        values: Dict[str, float] = {}
        for rows, keys in groups.values():
            window = [rows[i] for i in rng.integers(0, len(rows), n)]
            pseudo = [rows[i] for i in rng.integers(0, len(rows), len(rows))]
            measured, _ = tfdv_skew(_stats(pseudo, keys), _stats(window, keys), keys, {})
            values.update(measured)
        if use_embedding:
            picked = rng.permutation(len(reduced_ref))
            w, r = picked[:m], picked[m:]
            values[EMBEDDING] = mmd(k_rr[np.ix_(w, w)], k_rr[np.ix_(r, r)], k_rr[np.ix_(w, r)])
        return values

    runs = [draw_all() for _ in range(resamples)]
    for values in runs:
        for key, value in values.items():
            draws.setdefault(key, []).append(value)
    per_statistic = false_alarm_rate / max(1, len(draws))
    thresholds = {k: tail_threshold(v, per_statistic) for k, v in draws.items()}
    alarms = sum(any(v > thresholds[k] for k, v in values.items()) for values in runs)

    findings = []
    anomalies = None
    for rows, keys in groups.values():
        measured, group_anomalies = tfdv_skew(_stats(rows, keys), _stats(window_rows, keys),
                                              keys, thresholds)
        if anomalies is None:
            anomalies = group_anomalies
        else:
            anomalies.MergeFrom(group_anomalies)
        for key in keys:
            value = measured.get(key, 0.0)
            findings.append(Finding(
                key, L_INF if key in CATEGORICAL else JS, value, thresholds[key],
                float(np.median(draws[key])), value > thresholds[key],
                _words(key, rows, window_rows)))
    if use_embedding:
        k_ww = gaussian_kernel(reduced_win, reduced_win, width)
        k_wr = gaussian_kernel(reduced_win, reduced_ref, width)
        value = mmd(k_ww, k_rr, k_wr)
        findings.append(Finding(
            EMBEDDING, MMD, value, thresholds[EMBEDDING],
            float(np.median(draws[EMBEDDING])), value > thresholds[EMBEDDING],
            f'embedding distance (MMD) {value:.3g}'))
    for finding in findings:
        finding.words += (f', {"above" if finding.drifted else "within"} '
                          f'{finding.threshold:.3g} (in-distribution traffic: typically '
                          f'{finding.typical:.3g}, above {finding.threshold:.3g} with '
                          f'probability {per_statistic:.2g})')
    return Comparison(findings=findings, window=n, calibration_window=m, resamples=resamples,
                      per_statistic_rate=per_statistic,
                      family_false_alarm_rate=alarms / resamples, anomalies=anomalies)


def tail_threshold(values: Sequence[float], rate: float) -> float:
    """The value in-distribution draws exceed with probability `rate`.

    The larger of the empirical (1 - rate) quantile and that of a gamma
    distribution fitted by moments (shifted when values go below zero, as the
    unbiased MMD can).
    """
    from scipy import stats  # pylint: disable=import-outside-toplevel
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return float('inf')
    empirical = float(np.quantile(v, 1 - rate))
    shift = min(float(v.min()), 0.0)
    shifted = v - shift
    mean, var = shifted.mean(), shifted.var(ddof=1) if len(v) > 1 else 0.0
    if mean <= 0 or var <= 0:
        return empirical
    fitted = float(stats.gamma.ppf(1 - rate, mean ** 2 / var, scale=var / mean)) + shift
    return max(empirical, fitted)


def round_sig(value: float) -> float:
    """A value for JSON: finite and short."""
    return float(f'{value:.4g}') if math.isfinite(value) else None
