"""What one test sample adds to the rank metrics, from its 1-based target rank; a metric is their mean.

DCG@k: 1 / log2(rank + 1) where rank <= k, else 0 (with one relevant item this equals NDCG@k).
HitRate@k: 1 where rank <= k, else 0. Coverage@k is a property of the whole ranking, not of one sample.
numpy only, so that `seqrec.compare` uses the same formulas without torch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def dcg_gains(ranks: np.ndarray, k: int) -> np.ndarray:
    """[S] 1-based ranks -> [S] float64: 1 / log2(rank + 1) where rank <= k, else 0."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)


def hits(ranks: np.ndarray, k: int) -> np.ndarray:
    """[S] 1-based ranks -> [S] float64: 1 where rank <= k, else 0."""
    return (np.asarray(ranks) <= k).astype(np.float64)


PER_SAMPLE_METRICS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {"dcg": dcg_gains, "hitrate": hits}


def metric_from_ranks(name: str, ranks: np.ndarray) -> float | None:
    """dcg@k or hitrate@k of [S] 1-based ranks; None for a metric the ranks cannot give (coverage, a
    malformed name) or no ranks."""
    kind, _, cutoff = name.partition("@")
    if kind not in PER_SAMPLE_METRICS or not cutoff.isdigit() or not np.size(ranks):
        return None
    return float(np.mean(PER_SAMPLE_METRICS[kind](ranks, int(cutoff))))
