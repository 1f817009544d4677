"""Sample-level confidence intervals of one run's test metrics, from the per-sample target ranks.

They say how far a metric could move on another draw of test samples from the same population (the
model fixed); differences between seeds and paired tests between objectives are the comparison's job.
HitRate@k is a binomial proportion: Wilson score interval. DCG@k is a mean of per-sample gains in
[0, 1]: Student t interval when at least MIN_EACH_SIDE gains are above 0 and below 1 (where the
normal approximation is fair), else the Wilson interval of the mean, which holds for any variable in
[0, 1] (its variance is at most mean * (1 - mean)) and does not collapse to [0, 0] on a set without
hits. Coverage@k is a property of the whole set, not a mean over samples: no interval.
Wilson's coverage swings around the level on small sets (0.86 at 3 samples and HitRate 0.05), which
is one reason seqrec warns below `min_eval_samples`.

A user's test samples are not independent (a time split tests every event of the test period, and a
user with a long history can hold most of them), so with `users` the independent units are users: the
variance of a mean is the user-clustered one that the comparison uses too
(clustered_variance_of_mean), never below the variance that treats samples as independent. The t
interval then has G - 1 df over G users, and the Wilson intervals use the effective number of samples
N / design effect (the clustered over the independent variance; 1 where the values do not vary).
tests/test_intervals.py shows the clustered interval calibrated where the sample-level one is not. It
needs many users of comparable weight: where one user holds much of the set, that user's deviation
from the mean is small by construction and no interval describes other users; seqrec warns when one
user holds more than DOMINANT_USER_SHARE of the test samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from seqrec.sample_metrics import dcg_gains

LEVEL = 0.95
MIN_EACH_SIDE = 5  # the usual rule for a normal approximation: >= 5 values on each side


def wilson_interval(
    successes: float, trials: int, level: float = LEVEL, design_effect: float = 1.0
) -> tuple[float, float]:
    """Wilson score interval of a proportion successes / trials; (0, 1) without trials. design_effect
    (>= 1) shrinks the sample to trials / design_effect independent ones (clustered samples)."""
    if trials == 0:
        return 0.0, 1.0
    successes, trials = successes / design_effect, trials / design_effect
    z = stats.norm.ppf(0.5 + level / 2)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def mean_interval(
    values: np.ndarray, level: float = LEVEL, users: np.ndarray | None = None
) -> tuple[float, float]:
    """Interval of the mean of values [S] in [0, 1]: Student t (clipped to [0, 1]) when at least
    MIN_EACH_SIDE values are above 0 and below 1, else Wilson's on the mean (conservative). users [S]:
    each value's user, the independent unit (None: every value its own)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    variance, n_users = _mean_variance(values, users)
    if min((values > 0).sum(), (values < 1).sum()) < MIN_EACH_SIDE:
        return wilson_interval(float(values.sum()), n, level, _design_effect(values, variance))
    half = stats.t.ppf(0.5 + level / 2, df=n_users - 1) * np.sqrt(variance)
    mean = values.mean()
    return float(max(0.0, mean - half)), float(min(1.0, mean + half))


def clustered_variance_of_mean(
    values: np.ndarray, groups: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """Variance of the mean of values [..., N] with the groups [N] (users; None: every value its own
    group) as the independent units: G/(G-1) sum_g (sum_{i in g} (v_i - mean))^2 / N^2 over the G groups
    (0 with one group). Returns (variance [...], G)."""
    n_samples = values.shape[-1]
    centred = values - values.mean(axis=-1, keepdims=True)
    if groups is None:
        group_sums, n_groups = centred, n_samples
    else:
        order = np.argsort(groups, kind="stable")
        sorted_groups = np.asarray(groups)[order]
        starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
        group_sums, n_groups = np.add.reduceat(centred[..., order], starts, axis=-1), starts.size
    if n_groups < 2:
        return np.zeros(values.shape[:-1]), n_groups
    return n_groups / (n_groups - 1) * (group_sums**2).sum(axis=-1) / n_samples**2, n_groups


def _mean_variance(values: np.ndarray, users: np.ndarray | None) -> tuple[float, int]:
    """Variance of the mean of values [S] and the number of independent units: the samples, or the
    users, whose clustered variance is used when it is the larger."""
    independent = values.var(ddof=1) / len(values) if len(values) > 1 else 0.0
    if users is None:
        return independent, len(values)
    clustered, n_users = clustered_variance_of_mean(values, np.asarray(users))
    return (float(clustered), n_users) if clustered > independent else (independent, len(values))


def _design_effect(values: np.ndarray, variance: float) -> float:
    independent = values.var(ddof=1) / len(values) if len(values) > 1 else 0.0
    return variance / independent if independent > 0 else 1.0


def metric_intervals(
    ranks: np.ndarray, ks: Sequence[int], level: float = LEVEL, users: np.ndarray | None = None
) -> dict[str, list[float]]:
    """{'dcg@k': [low, high], 'hitrate@k': [low, high]} for every k, from ranks [S] (1-based); users
    [S]: the user of each sample, so that intervals count users as the independent units."""
    ranks = np.asarray(ranks)
    intervals = {}
    for k in ks:
        intervals[f"dcg@{k}"] = list(mean_interval(dcg_gains(ranks, k), level, users))
    for k in ks:
        hits = (ranks <= k).astype(np.float64)
        variance, _ = _mean_variance(hits, users)
        effect = _design_effect(hits, variance)
        intervals[f"hitrate@{k}"] = list(wilson_interval(float(hits.sum()), len(ranks), level, effect))
    return intervals


DOMINANT_USER_SHARE = 0.1


def dominant_user_warnings(
    users: np.ndarray, share: float = DOMINANT_USER_SHARE, min_samples: int = 0
) -> list[str]:
    """One warning when a single user holds more than `share` of the test samples users [S]; none for a
    set below `min_samples` (min_eval_samples: it has its own warning)."""
    if len(users) == 0 or len(users) < min_samples:
        return []
    _, counts = np.unique(np.asarray(users), return_counts=True)
    largest = int(counts.max())
    if largest <= share * len(users):
        return []
    return [
        f"one user holds {largest} of the {len(users)} test samples ({largest / len(users):.0%}): the test "
        "metrics lean on that user, and their intervals (test_ci, clustered by user) assume many users of "
        "comparable weight, so they are too narrow; split=loo tests one sample per user"
    ]
