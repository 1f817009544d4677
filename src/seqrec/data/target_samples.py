"""Training samples with one target each (`batches.one_target_per_sample`, the two-tower tutorial).

By default a training sample is a user's whole training sequence and every position is a target. Here a
sample is one target event of a training sequence: its input is the last max_seq_len events before it, and
only its last position is supervised. Per sequence, at most `max_targets_per_user` target events are
kept, drawn once per seed without replacement among the sequence's last `targets_drawn_from_last`
target events (a sequence with no more target events than that keeps them all).
"""

from __future__ import annotations

import numpy as np
import torch

from seqrec.data.batches import TrainTensors, gather_windows
from seqrec.data.types import SplitData


def target_events(
    sequence_start: np.ndarray,
    sequence_end: np.ndarray,
    max_targets_per_user: int | None,
    targets_drawn_from_last: int | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The chosen target events: (sequence index [S], event index [S] into item_seq), in sequence order and
    time order within a sequence. Every event of a sequence but its first is a target event."""
    counts = sequence_end - sequence_start - 1  # target events per sequence
    sequence = np.repeat(np.arange(len(counts)), counts)
    group_start = np.repeat(np.cumsum(counts) - counts, counts)  # each sequence's first entry below
    event = sequence_start[sequence] + 1 + np.arange(counts.sum()) - group_start
    if max_targets_per_user is None:
        return sequence, event
    pool = counts[sequence] if targets_drawn_from_last is None else targets_drawn_from_last
    from_end = sequence_end[sequence] - 1 - event  # 0 for the sequence's last event
    drawn = counts[sequence] > max_targets_per_user
    in_pool = ~drawn | (from_end < pool)
    # Without replacement: the max_targets_per_user smallest random keys of each sequence's pool.
    keys = np.where(drawn, rng.random(len(event)), -1.0)
    keys[~in_pool] = np.inf
    order = np.lexsort((keys, sequence))
    rank = np.empty(len(event), dtype=np.int64)
    rank[order] = np.arange(len(event)) - group_start
    chosen = in_pool & (rank < max_targets_per_user)
    return sequence[chosen], event[chosen]


def pack_target_samples(
    split: SplitData,
    max_len: int,
    max_targets_per_user: int | None,
    targets_drawn_from_last: int | None,
    seed: int,
) -> TrainTensors:
    """One row per chosen target event (see target_events): inputs are the last max_len events before it,
    targets the events after each input (the row's target at its last position), and only the last
    position is supervised. The draw uses its own generator seeded by `seed`: the same samples for every
    objective with that seed."""
    rng = np.random.default_rng(seed)
    starts, ends = split.train_start.cpu().numpy(), split.train_end.cpu().numpy()
    sequence, event = target_events(starts, ends, max_targets_per_user, targets_drawn_from_last, rng)
    sequence, event = torch.from_numpy(sequence), torch.from_numpy(event)
    start = split.train_start[sequence]
    inputs, lengths = gather_windows(split.item_seq, start, event, max_len)
    targets, _ = gather_windows(split.item_seq, start + 1, event + 1, max_len)
    return TrainTensors(
        inputs,
        targets,
        lengths,
        split.item_seq,
        start,
        split.train_end[sequence],
        last_position_only=True,
        users=None if split.train_user is None else split.train_user[sequence],
    )
