"""Evaluation splits: InteractionLog -> SplitData, every sequence and sample a window into one flat item_seq.

Each class is a Hydra `_target_` (conf/split/*.yaml). The constructor takes the split's settings and rejects
impossible ones with a ValueError naming `split.<key>`; `apply(log)` does the split, vectorised with numpy.
item_seq holds the log's items in the log's order (grouped by user, in time order), so a user's events are
one contiguous block and "all of the user's earlier events" is the window from the block start to the event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from seqrec.data.types import DataError, EvalSamples, InteractionLog, SplitData
from seqrec.errors import require


@dataclass(frozen=True)
class _UserBlocks:
    """The log's events as numpy arrays, with each user's contiguous block located.

    user, item, timestamp: [E] int64, in log order.
    starts, ends: [U] int64, user u's events are rows starts[u]:ends[u] (users in log order).
    block_start: [E] int64, the start of each event's user block.
    """

    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    block_start: np.ndarray


def _user_blocks(log: InteractionLog) -> _UserBlocks:
    """Read and check log.events (columns, no nulls, dense items, sorted by (user, timestamp))."""
    columns = ["user", "item", "timestamp"]
    missing = [name for name in columns if name not in log.events.columns]
    if missing:
        raise DataError(f"log.events lacks columns {missing}; it needs {columns}")
    events = log.events.select(columns)
    if len(events) == 0:
        raise DataError("the log has no events; check the source and the k-core thresholds")
    if events.null_count().sum_horizontal().item() > 0:
        raise DataError("log.events has null user/item/timestamp values; drop them in preprocessing")
    user, item, timestamp = (events[name].to_numpy().astype(np.int64) for name in columns)
    if item.min() < 0 or item.max() >= log.num_items:
        raise DataError(f"log.events items must be dense ids in [0, {log.num_items}); re-index the log")
    same_user = user[1:] == user[:-1]
    if np.any(user[1:] < user[:-1]) or np.any(same_user & (timestamp[1:] < timestamp[:-1])):
        raise DataError("log.events must be sorted by (user, timestamp); sort it stably before splitting")

    starts = np.flatnonzero(np.concatenate([[True], ~same_user]))
    ends = np.append(starts[1:], len(user))
    block_start = np.repeat(starts, ends - starts)
    return _UserBlocks(user, item, timestamp, starts, ends, block_start)


def _long(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))


def _eval_samples(blocks: _UserBlocks, target_index: np.ndarray, train_length: np.ndarray) -> EvalSamples:
    """Samples whose targets are the events at `target_index` [S] and whose inputs are all earlier events
    of the same user; train_length [U] is the number of training events at the start of each user block."""
    train_end = blocks.block_start + np.repeat(train_length, blocks.ends - blocks.starts)
    return EvalSamples(
        user=_long(blocks.user[target_index]),
        history_start=_long(blocks.block_start[target_index]),
        history_end=_long(target_index),
        target=_long(blocks.item[target_index]),
        train_end=_long(train_end[target_index]),
    )


def _split_data(
    log: InteractionLog,
    blocks: _UserBlocks,
    train_start: np.ndarray,
    train_end: np.ndarray,
    valid_index: np.ndarray,
    test_index: np.ndarray,
    train_length: np.ndarray,
    extra_stats: dict,
) -> SplitData:
    in_training = np.arange(len(blocks.item)) - blocks.block_start < np.repeat(
        train_length, blocks.ends - blocks.starts
    )
    item_train_events = np.bincount(blocks.item[in_training], minlength=log.num_items).astype(np.int64)
    stats = {
        "train_sequences": len(train_start),
        "train_events": int((train_end - train_start - 1).sum()),
        "valid_samples": len(valid_index),
        "test_samples": len(test_index),
        **_cold_counts("valid", blocks, valid_index, train_length, item_train_events),
        **_cold_counts("test", blocks, test_index, train_length, item_train_events),
        **extra_stats,
    }
    return SplitData(
        item_seq=_long(blocks.item),
        train_start=_long(train_start),
        train_end=_long(train_end),
        valid=_eval_samples(blocks, valid_index, train_length),
        test=_eval_samples(blocks, test_index, train_length),
        num_items=log.num_items,
        item_ids=log.item_ids,
        stats=stats,
        user_ids=log.user_ids,
        item_train_events=item_train_events,
        user_train_events=train_length.astype(np.int64),
        train_user=_long(blocks.user[train_start]),  # train_start: each kept user's first event
    )


def _cold_counts(
    name: str, blocks: _UserBlocks, index: np.ndarray, train_length: np.ndarray, item_train_events: np.ndarray
) -> dict:
    """Distinct users of the samples at `index` with no event in the training split, and distinct target
    items with none: what a model can only guess from other users (cold users) or cannot rank from
    training at all (cold items)."""
    user_of_block = np.repeat(np.arange(len(blocks.starts)), blocks.ends - blocks.starts)
    users = np.unique(user_of_block[index])
    items = np.unique(blocks.item[index])
    return {
        f"{name}_cold_users": int((train_length[users] == 0).sum()),
        f"{name}_cold_items": int((item_train_events[items] == 0).sum()),
    }


class TimeSplit:
    """The protocol's global time split with successive evaluation.

    With all n timestamps sorted ascending, t_valid = ts[int(n * valid_quantile)] and
    t_test = ts[int(n * test_quantile)]. Walking each user's events in time order:
    - ts < t_valid: the event joins the user's training sequence, kept if it has >= min_train_events
      events (and >= 2, the fewest that supervise a position);
    - t_valid <= ts < t_test: one validation sample, input = all of the user's earlier events (training and
      earlier validation events), if there are >= min_history of them;
    - ts >= t_test: one test sample likewise (input includes earlier validation and test events).
    As in the protocol, a user whose training sequence is too short to keep still gives evaluation samples
    whenever they have enough history: their training events remain model input, never training targets.
    """

    def __init__(
        self,
        valid_quantile: float = 0.8,
        test_quantile: float = 0.9,
        min_train_events: int = 5,
        min_history: int = 1,
    ):
        require(0.0 < valid_quantile < 1.0, f"split.valid_quantile must be in (0, 1), got {valid_quantile}")
        require(0.0 < test_quantile < 1.0, f"split.test_quantile must be in (0, 1), got {test_quantile}")
        require(
            valid_quantile < test_quantile,
            f"split.valid_quantile ({valid_quantile}) must be below split.test_quantile ({test_quantile})",
        )
        require(min_train_events >= 1, f"split.min_train_events must be >= 1, got {min_train_events}")
        require(min_history >= 1, f"split.min_history must be >= 1, got {min_history}")
        self.valid_quantile = valid_quantile
        self.test_quantile = test_quantile
        self.min_train_events = min_train_events
        self.min_history = min_history

    def apply(self, log: InteractionLog) -> SplitData:
        blocks = _user_blocks(log)
        sorted_ts = np.sort(blocks.timestamp)
        num_events = len(sorted_ts)
        if sorted_ts[0] == sorted_ts[-1]:
            raise DataError(
                f"time split: all {num_events} events have the same timestamp {sorted_ts[0]}, so none is "
                "before another; use split=loo (each user's last events, in file order) or real timestamps"
            )
        t_valid = int(sorted_ts[int(num_events * self.valid_quantile)])
        t_test = int(sorted_ts[int(num_events * self.test_quantile)])

        # A user's block is in time order, so their training events (ts < t_valid) are a prefix of it.
        is_train = blocks.timestamp < t_valid
        train_length = np.add.reduceat(is_train.astype(np.int64), blocks.starts)
        keep = train_length >= max(self.min_train_events, 2)
        train_start = blocks.starts[keep]
        train_end = train_start + train_length[keep]

        history_length = np.arange(num_events) - blocks.block_start
        has_history = history_length >= self.min_history
        valid_index = np.flatnonzero(~is_train & (blocks.timestamp < t_test) & has_history)
        test_index = np.flatnonzero((blocks.timestamp >= t_test) & has_history)

        if not is_train.any():
            share = float(np.mean(sorted_ts == sorted_ts[0]))
            raise DataError(
                f"time split: no event is before t_valid={t_valid}: {share:.0%} of the events share the "
                f"earliest timestamp; raise split.valid_quantile above {share:.2f} or use split=loo"
            )
        if len(train_start) == 0:
            raise DataError(
                f"time split: no user has >= {self.min_train_events} events before t_valid={t_valid}; "
                "raise split.valid_quantile or lower split.min_train_events"
            )
        if len(valid_index) == 0:
            raise DataError(
                f"time split: no validation samples (events in [t_valid={t_valid}, t_test={t_test}) with "
                f">= {self.min_history} earlier events); widen the gap between split.valid_quantile and "
                "split.test_quantile, lower split.min_history, or use split=loo"
            )
        if len(test_index) == 0:
            raise DataError(
                f"time split: no test samples (events at or after t_test={t_test} with >= {self.min_history} "
                "earlier events); lower split.test_quantile or split.min_history"
            )
        return _split_data(
            log,
            blocks,
            train_start,
            train_end,
            valid_index,
            test_index,
            train_length,
            {"t_valid": t_valid, "t_test": t_test},
        )


class LeaveOneOutSplit:
    """Leave-one-out (original SASRec): per user, the last event is the test target and the one before it
    the validation target, each with all of the user's earlier events as input; the rest is the training
    sequence. Users with fewer than min_events events keep everything in training and give no samples.
    Training sequences need >= 2 events to supervise a position; shorter ones are dropped.
    """

    def __init__(self, min_events: int = 4):
        # With 2 events the validation target would have no history.
        require(min_events >= 3, f"split.min_events must be >= 3, got {min_events}")
        self.min_events = min_events

    def apply(self, log: InteractionLog) -> SplitData:
        blocks = _user_blocks(log)
        user_size = blocks.ends - blocks.starts
        evaluated = user_size >= self.min_events
        train_length = np.where(evaluated, user_size - 2, user_size)
        keep = train_length >= 2
        train_start = blocks.starts[keep]
        train_end = train_start + train_length[keep]
        valid_index = blocks.ends[evaluated] - 2
        test_index = blocks.ends[evaluated] - 1

        if len(train_start) == 0:
            raise DataError("leave-one-out: no training sequence has >= 2 events; the log is too sparse")
        if len(test_index) == 0:
            raise DataError(
                f"leave-one-out: no user has >= {self.min_events} events, so there are no validation or "
                "test samples; lower split.min_events"
            )
        return _split_data(log, blocks, train_start, train_end, valid_index, test_index, train_length, {})


def _json_value(value):
    """Plain Python value for JSON: numpy / 0-d torch scalars become int/float; containers recursively."""
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, np.generic | torch.Tensor):
        return _json_value(value.item())
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"statistic of type {type(value).__name__} is not JSON-serialisable: {value!r}")


def dataset_statistics(log: InteractionLog, split: SplitData) -> dict:
    """log.stats (users, items, interactions, k-core passes, thresholds, ...) and split.stats (sequence,
    sample and event counts, split times) in one JSON-serialisable dict of plain values."""
    shared = sorted(log.stats.keys() & split.stats.keys())
    if shared:
        raise ValueError(f"log.stats and split.stats both define {shared}; rename one of them")
    return _json_value({**log.stats, **split.stats})
