"""serving/drift.py's pure parts: thresholds from few draws, MMD, the words of a finding."""

import numpy as np
import pytest
from scipy import stats

from serving import drift


@pytest.mark.parametrize('shape', [1.5, 4.0])
def test_tail_threshold_reaches_the_tail_from_few_draws(shape):
    rng = np.random.default_rng(int(shape * 10))
    rate = 0.002
    true = stats.gamma.ppf(1 - rate, shape)
    got = [drift.tail_threshold(rng.gamma(shape, size=60), rate) for _ in range(50)]
    # The empirical quantile of 60 draws is their maximum, short of the true 0.998
    # quantile; the fitted tail is close to it.
    maxima = np.median([np.max(rng.gamma(shape, size=60)) for _ in range(50)])
    assert maxima < 0.9 * true
    assert 0.85 * true < np.median(got) < 1.2 * true


def test_tail_threshold_handles_negative_and_constant_values():
    assert drift.tail_threshold([0.0, 0.0, 0.0], 0.01) == 0.0
    values = np.random.default_rng(1).normal(0.0, 0.01, 200)   # unbiased MMD around 0
    assert drift.tail_threshold(values, 0.01) > np.quantile(values, 0.95)


def test_mmd_is_near_zero_for_one_distribution_and_large_for_two():
    rng = np.random.default_rng(2)
    same_a, same_b = rng.normal(size=(60, 4)), rng.normal(size=(80, 4))
    other = rng.normal(loc=2.0, size=(60, 4))
    width = drift.bandwidth_of(same_b)

    def mmd(x, y):
        return drift.mmd(drift.gaussian_kernel(x, x, width), drift.gaussian_kernel(y, y, width),
                         drift.gaussian_kernel(x, y, width))
    assert abs(mmd(same_a, same_b)) < 0.05 < mmd(other, same_b)
