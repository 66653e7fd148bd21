"""Pure: does a window of served traffic look like the data the model learnt from?

Each statistic compares the window's images with the reference profile's
(models/profile.py) by a two-sample test:

- quantities (bytes, width, height, aspect, brightness, contrast, saturation):
  the Kolmogorov-Smirnov distance, the largest gap between the two empirical
  distribution functions. It depends only on the order of the values, so a few
  extreme images (a 59-pixel thumbnail, a 12-megapixel photo) move it by at
  most their share of the window;
- the model's confidence: the one-sided KS distance towards low values (more
  of the window's answers at or below some confidence than of the reference's);
- categories (format, channels, predicted class): the L-infinity distance of
  the two samples' shares;
- the model's embeddings (on the profile's random projection): the squared
  maximum mean discrepancy (MMD) with a Gaussian kernel whose width is the
  median distance between the pooled points.

Thresholds come from permutations, the way traffic arrives: the window and the
reference are pooled, and `permutations` times a random window of the same
size is drawn from the pool (the rest is the reference) and the statistic
computed again. Under "the traffic comes from the reference's distribution"
every such split is as likely as the real one, so the real statistic exceeds
the (1 - rate) quantile of the permuted ones with probability at most the
rate, whatever the window size, the ties in the data, or the extremes in the
window itself (they are in the pool). `false_alarm_rate` is for the whole
check: each of the k statistics is tested at false_alarm_rate / k
(Bonferroni), and the number of permutations is TAIL_DRAWS / that rate, so
that TAIL_DRAWS permuted windows lie at or above each threshold.

Reference rows: all rows with a value for the statistic's key (image
properties on train and eval rows; answers on eval rows; embeddings where the
profile has them).
"""

import dataclasses
import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from models import profile

DEFAULT_FALSE_ALARM_RATE = 0.01   # of the whole check, split over its statistics
# Permuted windows at or above each threshold: the number of permutations is
# TAIL_DRAWS divided by the per-statistic rate (3600 for 0.01 over 12 statistics).
TAIL_DRAWS = 3
# Permutations computed at once (memory: chunk x pooled images).
_CHUNK = 400
# The embedding test uses at most this many window and reference images each (a
# random subset): its cost grows with the square of the pooled count.
MMD_MAX_IMAGES = 500
# Window images listed as the ones that contributed most to a statistic.
TOP_IMAGES = 8

KS = 'Kolmogorov-Smirnov distance'
KS_LOW = 'one-sided Kolmogorov-Smirnov distance (towards low values)'
L_INF = 'L-infinity distance of the shares'
MMD = 'squared maximum mean discrepancy'


@dataclasses.dataclass(frozen=True)
class Statistic:
    """One check: the row key it reads and its test."""
    name: str
    test: str


STATISTICS = (
    *(Statistic(key, KS) for key in ('bytes', 'width', 'height', 'aspect', 'brightness',
                                      'contrast', 'saturation')),
    Statistic('format', L_INF),
    Statistic('channels', L_INF),
    Statistic(profile.PREDICTED, L_INF),
    Statistic(profile.CONFIDENCE, KS_LOW),
    Statistic(profile.EMBEDDING, MMD),
)


@dataclasses.dataclass
class Finding:
    """One statistic of the window against the reference.

    `value` is the test statistic, `threshold` what in-distribution windows of
    this size exceed with probability `rate`; `measured` and `reference` are what
    a person reads (a share at a point, a median, a mean distance), with
    `measure` saying what they are.
    """
    statistic: str
    test: str
    value: float
    threshold: float
    p_value: float
    rate: float
    drifted: bool
    measure: str
    measured: float
    reference: float
    window_images: int
    reference_images: int
    contributors: List[int]   # indices into the window rows, the most telling first

    @property
    def words(self) -> str:
        """The finding in one line: statistic, measured and reference value, test value and
        threshold."""
        relation = 'above' if self.drifted else 'within'
        return (f'{self.statistic}: {self.measure}: {_number(self.measured)} in the window vs '
                f'{_number(self.reference)} in the reference; {self.test} '
                f'{_number(self.value)}, {relation} the threshold {_number(self.threshold)} '
                f'(p = {self.p_value:.2g}, {self.window_images} vs {self.reference_images} '
                'images)')


@dataclasses.dataclass
class Comparison:
    """All statistics of one window."""
    findings: List[Finding]
    skipped: Dict[str, str]      # statistic -> why it was not checked
    false_alarm_rate: float
    permutations: int

    @property
    def drifted(self) -> List[Finding]:
        return [f for f in self.findings if f.drifted]

    @property
    def per_statistic_rate(self) -> float:
        return self.false_alarm_rate / max(1, len(self.findings))


def _number(value: float) -> str:
    return f'{value:.3g}' if math.isfinite(value) else str(value)


# ----------------------------------------------------------------- the tests
# Each test is a function of a membership matrix [B, N] (True: the image is in
# the window) over the pooled images (window first, then the reference), giving
# the statistic of each of the B splits.

def ks_test(values: np.ndarray, n: int, *, one_sided: bool = False
            ) -> Callable[[np.ndarray], np.ndarray]:
    """Two-sample KS distance of pooled `values`; one_sided: max(F_window - F_reference)."""
    order = np.argsort(values, kind='stable')
    ordered = values[order]
    # The last position of each run of equal values: distribution functions are
    # compared only there, so ties count as they should.
    ends = np.flatnonzero(np.append(np.diff(ordered) != 0, True))
    at_or_below = (ends + 1).astype(np.float64)
    m = len(values) - n

    def statistic(members: np.ndarray) -> np.ndarray:
        in_window = np.cumsum(members[:, order], axis=1, dtype=np.int32)[:, ends]
        gap = in_window / n - (at_or_below - in_window) / m
        return gap.max(axis=1) if one_sided else np.abs(gap).max(axis=1)
    return statistic


def shares_test(categories: Sequence[str], n: int) -> Callable[[np.ndarray], np.ndarray]:
    """L-infinity distance between the window's and the reference's category shares."""
    names, codes = np.unique(np.asarray(categories, dtype=str), return_inverse=True)
    one_hot = np.eye(len(names), dtype=np.float32)[codes]
    totals = one_hot.sum(axis=0)
    m = len(categories) - n

    def statistic(members: np.ndarray) -> np.ndarray:
        in_window = members.astype(np.float32) @ one_hot
        return np.abs(in_window / n - (totals - in_window) / m).max(axis=1)
    return statistic


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of a and of b."""
    return np.maximum((a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2 * a @ b.T, 0.0)


def gaussian_kernel(points: np.ndarray) -> np.ndarray:
    """The Gaussian kernel matrix of the points, width the median pairwise distance."""
    squared = squared_distances(points, points)
    distances = np.sqrt(squared[np.triu_indices(len(points), 1)])
    positive = distances[distances > 0]
    width = float(np.median(positive)) if len(positive) else 1.0
    return np.exp(-squared / (2 * width ** 2)).astype(np.float32)


def mmd_test(kernel: np.ndarray, n: int) -> Callable[[np.ndarray], np.ndarray]:
    """Squared MMD (the biased estimate: the permutations calibrate it) from the pooled kernel."""
    m = len(kernel) - n
    row_sums = kernel.sum(axis=1, dtype=np.float64)
    total = row_sums.sum()

    def statistic(members: np.ndarray) -> np.ndarray:
        weights = members.astype(np.float32)
        within = ((weights @ kernel) * weights).sum(axis=1, dtype=np.float64)   # w'Kw
        across = weights.astype(np.float64) @ row_sums - within                # w'K(1-w)
        rest = total - 2 * across - within                                     # (1-w)'K(1-w)
        return within / n ** 2 + rest / m ** 2 - 2 * across / (n * m)
    return statistic


def random_windows(n: int, m: int, permutations: int, rng: np.random.Generator
                   ) -> List[np.ndarray]:
    """Membership matrices [<= _CHUNK, n + m] of `permutations` random windows of n images
    out of n + m pooled ones."""
    real = np.zeros((1, n + m), dtype=bool)
    real[0, :n] = True
    return [rng.permuted(np.repeat(real, min(_CHUNK, permutations - start), axis=0), axis=1)
            for start in range(0, permutations, _CHUNK)]


def permutation_null(statistic: Callable[[np.ndarray], np.ndarray],
                     windows: Sequence[np.ndarray]) -> Tuple[float, np.ndarray]:
    """(the statistic of the real split, its values on the random windows)."""
    n = int(windows[0][0].sum())
    real = np.zeros((1, windows[0].shape[1]), dtype=bool)
    real[0, :n] = True
    return float(statistic(real)[0]), np.concatenate([statistic(w) for w in windows])


def decide(value: float, null: np.ndarray, rate: float) -> Tuple[float, float, bool]:
    """(threshold, p-value, drifted) of a statistic against its permutation values.

    The p-value counts the permuted splits at least as extreme, plus the real
    one; drifted when it is at most `rate`, i.e. when the value is above the
    threshold, the (c + 1)-th largest permuted value with c = floor(rate (P + 1)) - 1.
    """
    permutations = len(null)
    allowed = int(math.floor(rate * (permutations + 1) + 1e-9)) - 1
    if allowed < 0:
        raise ValueError(f'{permutations} permutations cannot reach the rate {rate:g}; '
                         f'at least {math.ceil(1 / rate) - 1} are needed')
    tolerance = 1e-9 * max(1.0, abs(value))
    threshold = float(np.sort(null)[::-1][allowed])
    p_value = (1 + int(np.sum(null >= value - tolerance))) / (permutations + 1)
    return threshold, p_value, bool(value - tolerance > threshold)


# ------------------------------------------------------ what a person reads

def _ks_point(window: np.ndarray, reference: np.ndarray, one_sided: bool
              ) -> Tuple[float, float, float]:
    """(x, share of the window at or below x, of the reference) where the gap is largest."""
    points = np.unique(np.concatenate([window, reference]))
    in_window = np.searchsorted(np.sort(window), points, side='right') / len(window)
    in_reference = np.searchsorted(np.sort(reference), points, side='right') / len(reference)
    gap = in_window - in_reference
    best = int(np.argmax(gap if one_sided else np.abs(gap)))
    return float(points[best]), float(in_window[best]), float(in_reference[best])


def _quantity(name: str, window: np.ndarray, reference: np.ndarray, one_sided: bool):
    point, window_share, reference_share = _ks_point(window, reference, one_sided)
    side = 'at or below' if window_share >= reference_share else 'above'
    if side == 'above':
        window_share, reference_share = 1 - window_share, 1 - reference_share
        picked = np.flatnonzero(window > point)
        picked = picked[np.argsort(-window[picked], kind='stable')]
    else:
        picked = np.flatnonzero(window <= point)
        picked = picked[np.argsort(window[picked], kind='stable')]
    what = 'answers' if name == profile.CONFIDENCE else 'images'
    return (f'share of {what} with {name} {side} {_number(point)}', window_share,
            reference_share, picked)


def _categories(name: str, window: np.ndarray, reference: np.ndarray,
                confidence: Optional[np.ndarray]):
    names = np.unique(np.concatenate([window, reference]))
    gaps = {c: float(np.mean(window == c) - np.mean(reference == c)) for c in names}
    category = max(gaps, key=lambda c: (gaps[c], c))   # the most over-represented
    picked = np.flatnonzero(window == category)
    if confidence is not None:
        picked = picked[np.argsort(-confidence[picked], kind='stable')]
    return (f'share of {name} {category!r}', float(np.mean(window == category)),
            float(np.mean(reference == category)), picked)


def _embedding(kernel: np.ndarray, points: np.ndarray, n: int):
    """Mean distance to the nearest reference image, of window images and of reference images
    (leaving each out); window images ordered by the MMD witness (most window-like and least
    reference-like first)."""
    squared = squared_distances(points, points[n:])
    reference_part = squared[n:]
    np.fill_diagonal(reference_part, np.inf)
    nearest = np.sqrt(np.min(squared, axis=1))
    witness = kernel[:n, :n].mean(axis=1) - kernel[:n, n:].mean(axis=1)
    return ('mean distance to the nearest reference image', float(nearest[:n].mean()),
            float(nearest[n:].mean()), np.argsort(-witness, kind='stable'))


# --------------------------------------------------------------- comparison

def _values(rows: Sequence[Mapping[str, Any]], key: str) -> Tuple[List[int], List[Any]]:
    picked = [(i, row[key]) for i, row in enumerate(rows) if row.get(key) is not None]
    return [i for i, _ in picked], [v for _, v in picked]


def compare(reference: Mapping[str, Any], window_rows: Sequence[Mapping[str, Any]], *,
            false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE, seed: int = 0,
            min_images: int = 2) -> Comparison:
    """Compares a window of traffic with the reference profile.

    Args:
      reference: the profile (models/profile.py: load), with its 'rows'.
      window_rows: one row per traffic image, as models/profile.py makes them;
        a key missing or None in a row leaves that row out of its statistic
        (without image bytes in the log only the header keys and the answers exist).
      false_alarm_rate: the chance that a window drawn from the reference's
        distribution is flagged by any statistic.
      seed: of the permutations.
      min_images: a statistic needs at least this many window and reference images.

    Returns:
      The Comparison; findings in STATISTICS order.

    Raises:
      ValueError: for a rate outside (0, 1).
    """
    if not 0 < false_alarm_rate < 1:
        raise ValueError(f'false_alarm_rate must be in (0, 1), got {false_alarm_rate}')
    rng = np.random.default_rng(seed)
    reference_rows = reference['rows']
    skipped: Dict[str, str] = {}
    usable = []
    for statistic in STATISTICS:
        window_index, window_values = _values(window_rows, statistic.name)
        _, reference_values = _values(reference_rows, statistic.name)
        if len(window_values) < min_images or len(reference_values) < min_images:
            where, count = (('window', len(window_values)) if len(window_values) < min_images
                            else ('reference profile', len(reference_values)))
            skipped[statistic.name] = (f'no values in the {where}' if not count else
                                       f'fewer than {min_images} values in the {where}')
            continue
        usable.append((statistic, window_index, window_values, reference_values))
    rate = false_alarm_rate / max(1, len(usable))
    permutations = math.ceil(TAIL_DRAWS / rate)

    findings = []
    windows: Dict[Tuple[int, int], List[np.ndarray]] = {}   # shared by statistics of one pool
    for statistic, window_index, window_values, reference_values in usable:
        if statistic.test == MMD:
            if len(window_values) > MMD_MAX_IMAGES:
                keep = np.sort(rng.choice(len(window_values), MMD_MAX_IMAGES, replace=False))
                window_index = [window_index[i] for i in keep]
                window_values = [window_values[i] for i in keep]
            if len(reference_values) > MMD_MAX_IMAGES:
                keep = np.sort(rng.choice(len(reference_values), MMD_MAX_IMAGES, replace=False))
                reference_values = [reference_values[i] for i in keep]
        n, m = len(window_values), len(reference_values)
        if statistic.test == MMD:
            points = np.asarray(window_values + reference_values, dtype=np.float64)
            kernel = gaussian_kernel(points)
            test = mmd_test(kernel, n)
            measure, measured, ref_value, picked = _embedding(kernel, points, n)
        elif statistic.test == L_INF:
            window = np.asarray([str(v) for v in window_values])
            pooled = np.concatenate([window, [str(v) for v in reference_values]])
            test = shares_test(pooled, n)
            confidence = None
            if statistic.name == profile.PREDICTED:
                confidence = np.asarray([float(window_rows[i].get(profile.CONFIDENCE) or 0.0)
                                         for i in window_index])
            measure, measured, ref_value, picked = _categories(
                statistic.name, window, pooled[n:], confidence)
        else:
            one_sided = statistic.test == KS_LOW
            pooled = np.asarray(window_values + reference_values, dtype=np.float64)
            test = ks_test(pooled, n, one_sided=one_sided)
            measure, measured, ref_value, picked = _quantity(
                statistic.name, pooled[:n], pooled[n:], one_sided)
        if (n, m) not in windows:
            windows[(n, m)] = random_windows(n, m, permutations, rng)
        value, null = permutation_null(test, windows[(n, m)])
        threshold, p_value, drifted = decide(value, null, rate)
        findings.append(Finding(
            statistic=statistic.name, test=statistic.test, value=value, threshold=threshold,
            p_value=p_value, rate=rate, drifted=drifted, measure=measure, measured=measured,
            reference=ref_value, window_images=n, reference_images=m,
            contributors=[window_index[i] for i in picked[:TOP_IMAGES]]))
    return Comparison(findings=findings, skipped=skipped, false_alarm_rate=false_alarm_rate,
                      permutations=permutations)


def round_sig(value: Optional[float]) -> Optional[float]:
    """A value for JSON: finite and short."""
    return float(f'{value:.4g}') if value is not None and math.isfinite(value) else None
