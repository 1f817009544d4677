"""Sample-level confidence intervals of one run's metrics: hand-computed values and calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from seqrec.intervals import dcg_gains, mean_interval, metric_intervals, wilson_interval


def test_dcg_gains_by_hand():
    assert dcg_gains(np.array([1, 2, 3, 11]), k=10).tolist() == pytest.approx(
        [1.0, 1 / math.log2(3), 0.5, 0.0]
    )


def test_wilson_interval_by_hand():
    # 8 hits of 10 at 95%: z = 1.959964; centre = (0.8 + z²/20) / (1 + z²/10), half-width from the formula.
    z = 1.959963984540054
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z / (1 + z * z / 10) * math.sqrt(0.8 * 0.2 / 10 + z * z / 400)
    assert wilson_interval(8, 10) == pytest.approx((centre - half, centre + half))
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    low, high = wilson_interval(1, 1)  # one sample, one hit: HitRate 1.0 but a wide interval
    assert high == 1.0 and low == pytest.approx(0.2065, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_mean_interval_by_hand():
    values = np.array([0.0, 0.5, 1.0, 0.25, 0.0, 0.7, 0.3, 0.0, 0.9, 0.1, 0.6])  # 8 above 0, 10 below 1
    half = 2.228138851986274 * values.std(ddof=1) / math.sqrt(11)  # t(0.975, 10 df) * s / sqrt(n)
    assert mean_interval(values) == pytest.approx((values.mean() - half, values.mean() + half))


def test_mean_interval_falls_back_to_wilson_where_the_t_interval_would_collapse():
    assert mean_interval(np.zeros(3)) == pytest.approx(wilson_interval(0, 3))  # t would say [0, 0]
    few_hits = np.array([0.5, 0.63] + [0.0] * 40)  # only 2 values above 0
    assert mean_interval(few_hits) == pytest.approx(wilson_interval(1.13, 42))
    assert mean_interval(np.array([0.7])) == pytest.approx(wilson_interval(0.7, 1))
    assert mean_interval(np.array([])) == (0.0, 1.0)


def test_metric_intervals_cover_dcg_and_hitrate_not_coverage():
    ranks = np.array([1, 3, 7, 12, 40])
    intervals = metric_intervals(ranks, [5, 10])
    assert set(intervals) == {"dcg@5", "dcg@10", "hitrate@5", "hitrate@10"}
    assert intervals["hitrate@5"] == pytest.approx(list(wilson_interval(2, 5)))
    assert intervals["dcg@10"] == pytest.approx(list(mean_interval(dcg_gains(ranks, 10))))
    for low, high in intervals.values():
        assert 0.0 <= low <= high <= 1.0 and isinstance(low, float)


@pytest.mark.parametrize(("num_samples", "exponent"), [(60, 1.1), (300, 1.1), (300, 0.5)])
def test_intervals_are_calibrated(num_samples, exponent):
    """Draw test sets of ranks from a known distribution: the 95% intervals hold the true metric in
    about 95% of them (2,000 sets: the binomial standard error of the coverage is 0.005). With an
    exponent of 0.5 DCG@5 is about 0.02: few hits per set, so some sets take the Wilson fallback."""
    rng = np.random.default_rng(num_samples)
    num_items, repeats, ks = 500, 2000, (5, 20)
    probabilities = 1.0 / np.arange(1, num_items + 1) ** exponent
    probabilities /= probabilities.sum()
    all_ranks = np.arange(1, num_items + 1)
    truth = {f"dcg@{k}": float(probabilities @ dcg_gains(all_ranks, k)) for k in ks}
    truth |= {f"hitrate@{k}": float(probabilities[:k].sum()) for k in ks}
    covered = dict.fromkeys(truth, 0)
    for _ in range(repeats):
        intervals = metric_intervals(rng.choice(all_ranks, size=num_samples, p=probabilities), ks)
        for name, (low, high) in intervals.items():
            covered[name] += low <= truth[name] <= high
    for name, count in covered.items():
        assert 0.93 <= count / repeats <= 0.97, (name, count / repeats, truth[name])


@pytest.mark.parametrize("num_samples", [3, 10, 30])
def test_small_sets_with_rare_hits_keep_most_of_their_coverage(num_samples):
    """Tiny test sets with rare hits (HitRate@5 = 0.05): most sets have no hit at all. A t interval on
    their all-zero gains collapses to [0, 0] and misses the truth; the Wilson fallback keeps the DCG
    coverage near the level (Wilson's own coverage dips to 0.86 at n = 3 here: seqrec warns below
    min_eval_samples)."""
    rng = np.random.default_rng(num_samples)
    probabilities = np.r_[np.full(5, 0.01), np.full(95, 0.95 / 95)]
    all_ranks = np.arange(1, 101)
    truth = float(probabilities @ dcg_gains(all_ranks, 5))
    covered, covered_by_t = 0, 0
    for _ in range(2000):
        gains = dcg_gains(rng.choice(all_ranks, size=num_samples, p=probabilities), 5)
        low, high = mean_interval(gains)
        covered += low <= truth <= high
        half = stats.t.ppf(0.975, num_samples - 1) * gains.std(ddof=1) / math.sqrt(num_samples)
        covered_by_t += gains.mean() - half <= truth <= gains.mean() + half
    assert covered / 2000 >= 0.85 and covered_by_t < covered - 200, (covered, covered_by_t)
