"""monitoring/drift.py's pure parts on generated data: the tests' statistics, their
calibration (the false-alarm rate holds), robustness to extremes, and the words of a finding."""

import math

import numpy as np
import pytest
from scipy import stats

from monitoring import drift


def rows(rng: np.random.Generator, count: int, *, brightness: float = 0.5,
         confidence_low: float = 0.0, png: int = 0):
    """Rows like models/profile.py makes them: photo-like sizes with many ties, a few
    categories, answers and 16-dimensional embeddings."""
    out = []
    for i in range(count):
        width = int(rng.choice([500, 499, 400, 375, 320, 300, 250]))
        height = int(rng.choice([375, 374, 500, 333, 280, 240]))
        low = rng.random() < confidence_low
        out.append({
            'bytes': int(rng.lognormal(10, 0.5)), 'width': width, 'height': height,
            'aspect': width / height, 'brightness': float(rng.beta(5, 5) * 2 * brightness),
            'contrast': float(rng.beta(3, 8)), 'saturation': float(rng.beta(2, 5)),
            'format': 'png' if i < png else 'jpeg', 'channels': 3,
            'predicted': 'cats' if rng.random() < 0.5 else 'dogs',
            'confidence': float(rng.uniform(0.5, 0.6) if low else rng.beta(8, 1)),
            'embedding': rng.normal(size=16).tolist()})
    return out


@pytest.mark.parametrize('values', ['continuous', 'ties'])
def test_ks_statistic_is_scipys(values):
    rng = np.random.default_rng(3)
    pooled = rng.normal(size=300) if values == 'continuous' else rng.integers(0, 6, 300) * 1.0
    n = 120
    real = np.zeros((1, len(pooled)), dtype=bool)
    real[0, :n] = True
    ours = drift.ks_test(pooled, n)(real)[0]
    assert ours == pytest.approx(stats.ks_2samp(pooled[:n], pooled[n:]).statistic)
    one_sided = drift.ks_test(pooled, n, one_sided=True)(real)[0]
    # scipy's 'greater' alternative: the window's CDF above the reference's.
    assert one_sided == pytest.approx(
        stats.ks_2samp(pooled[:n], pooled[n:], alternative='greater').statistic)


def test_threshold_and_p_value_agree():
    null = np.arange(1, 1000) / 1000.0            # 999 permutations
    threshold, p_value, drifted = drift.decide(0.9985, null, 0.005)
    assert threshold == pytest.approx(0.995)       # 5 permuted values at or above 0.995
    assert drifted and p_value <= 0.005
    threshold, p_value, drifted = drift.decide(0.995, null, 0.005)
    assert not drifted and p_value > 0.005
    with pytest.raises(ValueError, match='permutations cannot reach'):
        drift.decide(1.0, null[:50], 0.005)


@pytest.mark.parametrize('window', [20, 400])
def test_in_distribution_windows_are_flagged_at_the_stated_rate(window):
    """Windows drawn from the reference's distribution: the share flagged by any statistic
    stays within the stated rate (here a large 0.2, so that 100 windows measure it)."""
    rng = np.random.default_rng(window)
    reference = {'rows': rows(rng, 150)}
    rate = 0.2
    flagged = [bool(drift.compare(reference, rows(rng, window), false_alarm_rate=rate,
                                  seed=seed).drifted) for seed in range(100)]
    print(f'window {window}: {sum(flagged)} of 100 flagged at false-alarm rate {rate}')
    # Bonferroni over 12 statistics keeps the family's rate below the stated one; 100
    # windows at 0.2 exceed 30 flagged with probability 0.01.
    assert sum(flagged) <= stats.binom.ppf(0.99, 100, rate)


def test_one_extreme_image_does_not_move_a_quantity():
    rng = np.random.default_rng(5)
    reference = {'rows': rows(rng, 100)}
    window = rows(rng, 399)
    extreme = dict(window[0], width=59, height=41, aspect=59 / 41, bytes=1800)
    huge = dict(window[1], width=6000, height=4000, aspect=1.5, bytes=9_000_000)
    comparison = drift.compare(reference, window + [extreme, huge])
    plain = drift.compare(reference, window)
    for key in ('width', 'height', 'bytes', 'aspect'):
        [with_extremes] = [f for f in comparison.findings if f.statistic == key]
        [without] = [f for f in plain.findings if f.statistic == key]
        assert not with_extremes.drifted
        assert abs(with_extremes.value - without.value) <= 2 / 399 + 1e-9


@pytest.mark.parametrize('reference_size', [100, 1000])
def test_one_png_is_within_tolerance_a_quarter_is_not(reference_size):
    rng = np.random.default_rng(reference_size)
    reference = {'rows': rows(rng, reference_size)}
    one = drift.compare(reference, rows(rng, 400, png=1))
    [finding] = [f for f in one.findings if f.statistic == 'format']
    assert not finding.drifted and finding.measured == pytest.approx(1 / 400)
    many = drift.compare(reference, rows(rng, 400, png=100))
    [finding] = [f for f in many.findings if f.statistic == 'format']
    assert finding.drifted and finding.measure == "share of format 'png'"
    assert finding.measured == pytest.approx(0.25) and finding.reference == 0.0
    assert set(finding.contributors) <= set(range(100))     # the PNG images


def test_low_confidence_fires_and_only_towards_low_values():
    rng = np.random.default_rng(7)
    reference = {'rows': rows(rng, 200)}
    window = rows(rng, 200, confidence_low=0.3)
    [finding] = [f for f in drift.compare(reference, window).findings
                 if f.statistic == 'confidence']
    assert finding.drifted, finding.words
    assert finding.measure.startswith('share of answers with confidence at or below ')
    assert finding.measured > finding.reference + 0.2
    # The most telling images are the least confident ones, least first.
    shown = [window[i]['confidence'] for i in finding.contributors]
    assert shown == sorted(r['confidence'] for r in window)[:len(shown)]
    sure = rows(rng, 200)
    for row in sure:
        row['confidence'] = 0.99
    [finding] = [f for f in drift.compare(reference, sure).findings
                 if f.statistic == 'confidence']
    assert not finding.drifted


def test_shifted_quantity_and_embedding_are_flagged_by_their_statistic():
    rng = np.random.default_rng(11)
    reference = {'rows': rows(rng, 300)}
    dark = drift.compare(reference, rows(rng, 100, brightness=0.3))
    assert [f.statistic for f in dark.drifted] == ['brightness']
    [finding] = dark.drifted
    assert finding.measure.startswith('share of images with brightness at or below ')
    window = rows(rng, 100)
    for row in window:
        row['embedding'] = (np.asarray(row['embedding']) + 0.8).tolist()
    moved = drift.compare(reference, window)
    assert [f.statistic for f in moved.drifted] == ['embedding']


def test_words_name_the_statistic_both_values_and_the_threshold():
    rng = np.random.default_rng(13)
    reference = {'rows': rows(rng, 200)}
    [finding] = drift.compare(reference, rows(rng, 100, brightness=0.3)).drifted
    words = finding.words
    assert words.startswith('brightness: share of images with brightness at or below ')
    assert f'{finding.measured:.3g} in the window vs {finding.reference:.3g} in the reference' \
        in words
    assert (f'Kolmogorov-Smirnov distance {finding.value:.3g}, above the threshold '
            f'{finding.threshold:.3g}') in words


def test_rate_is_split_over_the_statistics_and_sets_the_permutations():
    rng = np.random.default_rng(17)
    comparison = drift.compare({'rows': rows(rng, 50)}, rows(rng, 30), false_alarm_rate=0.05)
    assert len(comparison.findings) == len(drift.STATISTICS)
    assert comparison.per_statistic_rate == pytest.approx(0.05 / len(drift.STATISTICS))
    assert comparison.permutations == math.ceil(drift.TAIL_DRAWS / comparison.per_statistic_rate)
    header_only = [{k: r[k] for k in ('bytes', 'width', 'height', 'aspect')}
                   for r in rows(rng, 30)]
    comparison = drift.compare({'rows': rows(rng, 50)}, header_only)
    assert [f.statistic for f in comparison.findings] == ['bytes', 'width', 'height', 'aspect']
    assert comparison.skipped['brightness'] == 'no values in the window'
    comparison = drift.compare({'rows': rows(rng, 50)}, header_only[:1] + rows(rng, 1))
    assert comparison.skipped['brightness'] == 'fewer than 2 values in the window'
    with pytest.raises(ValueError, match='false_alarm_rate'):
        drift.compare({'rows': []}, header_only, false_alarm_rate=1.5)
