"""Containers passed between data stages. Data flows one way: raw log -> InteractionLog -> SplitData."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import torch

from seqrec.errors import UserError

RAW_SCHEMA = {"user": pl.Int64, "item": pl.Int64, "timestamp": pl.Int64, "rating": pl.Float64}
"""Columns every source's `load()` returns, in file order. `rating` is null where a log has none.
The ID_COLUMNS may instead be pl.String (ids such as Amazon's reviewer ids and ASINs, kept verbatim)."""
ID_COLUMNS = ("user", "item")


class DataError(UserError, ValueError):
    """Bad input data or data settings; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class InteractionLog:
    """A filtered, re-indexed log.

    events: columns user (dense id 0..num_users-1, Int64), item (dense id 0..num_items-1, Int64),
        timestamp (Int64), sorted by (user, timestamp) with ties in file order.
    item_ids: [num_items] the original id of each dense item id (ascending: rank order); int64, or an
        object array of str for string ids.
    user_ids: [num_users] likewise for users; None where events.user already holds original integer
        ids (logs built by hand).
    source_fingerprint: the raw data's `RawSource.fingerprint()` as `load_log` read it (None for logs built
        by hand), so that the run record names the data without hashing the file again.
    """

    events: pl.DataFrame
    item_ids: np.ndarray
    kcore_passes: int
    stats: dict = field(default_factory=dict)
    user_ids: np.ndarray | None = None
    source_fingerprint: str | None = None

    @property
    def num_items(self) -> int:
        return len(self.item_ids)


@dataclass(frozen=True)
class EvalSamples:
    """Evaluation samples as windows into SplitData.item_seq.

    Sample s has input item_seq[history_start[s]:history_end[s]] (all of the user's earlier events;
    truncated to the last max_seq_len when batched) and target item_seq[history_end[s]] == target[s].
    All tensors are [S] int64; `user` holds the log's user ids (SplitData.original_users maps them to the
    original ones). train_end (optional): the user's events
    that the split assigns to training are item_seq[history_start[s]:train_end[s]] (a prefix of the
    history, whether or not the training sequence was long enough to keep).
    """

    user: torch.Tensor
    history_start: torch.Tensor
    history_end: torch.Tensor
    target: torch.Tensor
    train_end: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.target)


@dataclass(frozen=True)
class SplitData:
    """A split, as windows into one flat tensor of the users' item sequences.

    item_seq: [E] int64 dense item ids of all events, grouped by user, in time order.
    train_start, train_end: [N] int64; training sequence n is item_seq[train_start[n]:train_end[n]]
        (>= 2 events). Its inputs are all but the last event and its targets all but the first.
    item_ids, user_ids: the log's original ids (InteractionLog).
    item_train_events: [num_items] int64, how often each item occurs in the training split (every event
        the split assigns to training, whether or not its user's sequence is long enough to train on);
        None for splits built by hand. Defines item popularity and cold items.
    train_user: [N] int64, the log's user id of training sequence n (None for splits built by hand). The
        log's user ids are dense (0..num_users-1) in every log load_log builds: they index a model's user
        table (model=ssept), like EvalSamples.user.
    """

    item_seq: torch.Tensor
    train_start: torch.Tensor
    train_end: torch.Tensor
    valid: EvalSamples
    test: EvalSamples
    num_items: int
    item_ids: np.ndarray
    stats: dict = field(default_factory=dict)
    user_ids: np.ndarray | None = None
    item_train_events: np.ndarray | None = None
    user_train_events: np.ndarray | None = None  # [U] int64: each user's events in the training split
    train_user: torch.Tensor | None = None

    @property
    def num_users(self) -> int:
        """The size of the user id range: every user of the log (trained or not) and every id in use."""
        sizes = [] if self.user_train_events is None else [len(self.user_train_events)]
        ids = (self.train_user, self.valid.user, self.test.user)
        sizes += [int(t.max()) + 1 for t in ids if t is not None and len(t)]
        return max(sizes, default=0)

    def original_users(self, users: torch.Tensor) -> np.ndarray:
        """[S] original ids of the log's user ids `users` [S] (e.g. EvalSamples.user)."""
        users = users.cpu().numpy()
        return users if self.user_ids is None else self.user_ids[users]

    def original_items(self, items: torch.Tensor) -> np.ndarray:
        """[S] original ids of the dense item ids `items` [S]."""
        return self.item_ids[items.cpu().numpy()]
