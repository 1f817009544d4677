"""What a run records so that `python -m seqrec.compare --segments` needs no data: per test sample the
user's training-history length and the target's training popularity (columns of test_ranks.parquet), and
the segment definitions, all from the TRAINING split only (run.json `segments`).

- history length: the user's events in the training split (before t_valid; leave-one-out: all but the
  last two), whether or not the sequence was long enough to train on; 0 = a cold user. Bins: the
  quartiles of that length over the users with training events (or edges given to compare).
- popularity: how often the target occurs in the training split; 0 = a cold item. Warm items sorted by
  popularity: head = the most popular ones that hold the first third of the training split's events,
  torso the next third, tail the rest (items tied on the boundary count join the more popular class).
"""

from __future__ import annotations

import numpy as np

from seqrec.data.types import EvalSamples

HISTORY_QUANTILES = (0.25, 0.5, 0.75)
POPULARITY_SHARES = (1 / 3, 2 / 3)  # cumulative share of training events held by head, head + torso
HISTORY_COLUMN = "train_history"  # test_ranks.parquet: the user's events in the training split
POPULARITY_COLUMN = "target_train_events"  # test_ranks.parquet: the target's events in the training split


def sample_keys(samples: EvalSamples, item_train_events: np.ndarray) -> dict[str, np.ndarray]:
    """[S] int64 columns: each sample's user's training-split events and its target's."""
    history = (samples.train_end - samples.history_start).cpu().numpy()
    return {
        HISTORY_COLUMN: history.astype(np.int64),
        POPULARITY_COLUMN: item_train_events[samples.target.cpu().numpy()].astype(np.int64),
    }


def history_edges(user_train_events: np.ndarray) -> list[int]:
    """Integer bin edges at the HISTORY_QUANTILES of the users' training-split lengths (users with at
    least one event); a bin is [edge_i, edge_i+1), the first starting at 1, the last open."""
    lengths = user_train_events[user_train_events > 0]
    if lengths.size == 0:
        return []
    edges = np.unique(np.ceil(np.quantile(lengths, HISTORY_QUANTILES)).astype(np.int64))
    return [int(edge) for edge in edges if edge > 1]


def popularity_thresholds(item_train_events: np.ndarray) -> tuple[int, int]:
    """(head_min, torso_min): a warm item with >= head_min training events is head, >= torso_min torso,
    else tail; chosen so that head holds the first POPULARITY_SHARES[0] of the training events and head
    + torso the first POPULARITY_SHARES[1]."""
    counts = np.sort(item_train_events[item_train_events > 0])[::-1]
    if counts.size == 0:
        return 1, 1
    share = np.cumsum(counts) / counts.sum()
    head_min = int(counts[np.searchsorted(share, POPULARITY_SHARES[0])])
    torso_min = int(counts[min(np.searchsorted(share, POPULARITY_SHARES[1]), counts.size - 1)])
    return head_min, min(torso_min, head_min)


def segment_definitions(user_train_events: np.ndarray, item_train_events: np.ndarray) -> dict:
    """run.json `segments`: how compare bins the samples, from the training split only."""
    head_min, torso_min = popularity_thresholds(item_train_events)
    warm = item_train_events[item_train_events > 0]
    return {
        "source": "training split",
        "history_column": HISTORY_COLUMN,
        "history_quantiles": list(HISTORY_QUANTILES),
        "history_edges": history_edges(user_train_events),
        "popularity_column": POPULARITY_COLUMN,
        "popularity_shares": [round(share, 4) for share in POPULARITY_SHARES],
        "head_min_train_events": head_min,
        "torso_min_train_events": torso_min,
        "items": {
            "head": int((warm >= head_min).sum()),
            "torso": int(((warm >= torso_min) & (warm < head_min)).sum()),
            "tail": int((warm < torso_min).sum()),
            "cold": int((item_train_events == 0).sum()),
        },
        "users_with_training_events": int((user_train_events > 0).sum()),
    }
