"""Sample-level confidence intervals of one run's metrics: hand-computed values and calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from seqrec.intervals import dominant_user_warnings, mean_interval, metric_intervals, wilson_interval
from seqrec.sample_metrics import dcg_gains


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


# ------------------------------------------------------------------------- samples clustered by user


def clustered_test_set(rng: np.random.Generator, num_users: int, hit_rate: float, concentration: float):
    """(ranks [S], users [S]): each user has 1 + Poisson(9) test samples sharing a hit probability drawn
    from Beta(hit_rate * c, (1 - hit_rate) * c) (a lower c: users differ more); a hit ranks uniformly
    in 1..10, a miss at 50. Sizes do not depend on the probabilities, so DCG@10 is hit_rate times the
    mean gain of ranks 1..10, and HitRate@10 is hit_rate."""
    sizes = 1 + rng.poisson(9, num_users)
    users = np.repeat(np.arange(num_users), sizes)
    user_rates = rng.beta(hit_rate * concentration, (1 - hit_rate) * concentration, num_users)
    hits = rng.random(len(users)) < user_rates[users]
    return np.where(hits, rng.integers(1, 11, len(users)), 50), users


def test_intervals_clustered_by_user_are_calibrated_where_sample_level_ones_are_not():
    """Users whose samples share a hit rate (intra-user correlation 1/6, about 10 samples each: design
    effect about 2.5): the sample-level 95% intervals cover the truth about 78% of the time; clustered
    by user they cover it about 95% of the time. 1,000 test sets of 80 users: the standard error of a
    coverage is 0.007."""
    rng = np.random.default_rng(0)
    hit_rate, repeats = 0.2, 1000
    truth = {"hitrate@10": hit_rate, "dcg@10": hit_rate * float(dcg_gains(np.arange(1, 11), 10).mean())}
    clustered, naive = dict.fromkeys(truth, 0), dict.fromkeys(truth, 0)
    for _ in range(repeats):
        ranks, users = clustered_test_set(rng, num_users=80, hit_rate=hit_rate, concentration=5.0)
        by_user, by_sample = metric_intervals(ranks, [10], users=users), metric_intervals(ranks, [10])
        for name, value in truth.items():
            clustered[name] += by_user[name][0] <= value <= by_user[name][1]
            naive[name] += by_sample[name][0] <= value <= by_sample[name][1]
    for name in truth:
        assert 0.93 <= clustered[name] / repeats <= 0.975, (name, clustered[name] / repeats)
        assert naive[name] / repeats < 0.85, (name, naive[name] / repeats)


def test_one_sample_per_user_gives_the_sample_level_intervals():
    rng = np.random.default_rng(1)
    ranks = rng.integers(1, 40, 300)
    assert metric_intervals(ranks, [5, 10], users=np.arange(300)) == metric_intervals(ranks, [5, 10])


def test_clustering_never_narrows_an_interval():
    """Users whose samples disagree more than chance (every user one hit, one miss) have a clustered
    variance below the independent one: the interval stays the sample-level one."""
    ranks = np.tile([1, 50], 100)
    users = np.repeat(np.arange(100), 2)
    assert metric_intervals(ranks, [10], users=users) == metric_intervals(ranks, [10])


def test_a_user_holding_over_a_tenth_of_the_test_samples_is_named_in_a_warning():
    assert dominant_user_warnings(np.arange(100)) == []
    assert dominant_user_warnings(np.r_[np.zeros(10), np.arange(1, 91)]) == []  # exactly 10%: no warning
    (warning,) = dominant_user_warnings(np.r_[np.zeros(77), np.arange(1, 24)])
    assert warning.startswith("one user holds 77 of the 100 test samples (77%)") and "split=loo" in warning
    assert dominant_user_warnings(np.r_[np.zeros(77), np.arange(1, 24)], min_samples=101) == []  # small set
