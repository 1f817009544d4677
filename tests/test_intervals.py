"""Sample-level confidence intervals of one run's metrics: hand-computed values and calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

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
    values = np.array([0.0, 0.5, 1.0, 0.25])
    half = 3.182446305284263 * values.std(ddof=1) / 2  # t(0.975, 3 df) * s / sqrt(4)
    assert mean_interval(values) == pytest.approx((max(0.0, 0.4375 - half), min(1.0, 0.4375 + half)))
    assert mean_interval(np.array([0.7])) == (0.0, 1.0)  # one value says nothing about the spread


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
    about 95% of them (2,000 sets: the binomial standard error of the coverage is 0.005)."""
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
