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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95
MIN_EACH_SIDE = 5  # the usual rule for a normal approximation: >= 5 values on each side


def dcg_gains(ranks: np.ndarray, k: int) -> np.ndarray:
    """[S] float: 1 / log2(rank + 1) where rank <= k, else 0 (ranks are 1-based)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)


def wilson_interval(successes: float, trials: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion successes / trials; (0, 1) without trials."""
    if trials == 0:
        return 0.0, 1.0
    z = stats.norm.ppf(0.5 + level / 2)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def mean_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Interval of the mean of values [S] in [0, 1]: Student t (clipped to [0, 1]) when at least
    MIN_EACH_SIDE values are above 0 and below 1, else Wilson's on the mean (conservative)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if min((values > 0).sum(), (values < 1).sum()) < MIN_EACH_SIDE:
        return wilson_interval(float(values.sum()), n, level)
    half = stats.t.ppf(0.5 + level / 2, df=n - 1) * values.std(ddof=1) / np.sqrt(n)
    mean = values.mean()
    return float(max(0.0, mean - half)), float(min(1.0, mean + half))


def metric_intervals(ranks: np.ndarray, ks: Sequence[int], level: float = LEVEL) -> dict[str, list[float]]:
    """{'dcg@k': [low, high], 'hitrate@k': [low, high]} for every k, from ranks [S] (1-based)."""
    ranks = np.asarray(ranks)
    intervals = {}
    for k in ks:
        intervals[f"dcg@{k}"] = list(mean_interval(dcg_gains(ranks, k), level))
    for k in ks:
        intervals[f"hitrate@{k}"] = list(wilson_interval(int((ranks <= k).sum()), len(ranks), level))
    return intervals
