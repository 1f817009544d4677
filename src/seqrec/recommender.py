"""A run's model in use: `seqrec.load(RUN_DIR)`, then recommend, item vectors and query vectors, all with
the log's original ids.

Scores are computed exactly as the run's evaluation computed them (the same windows of the last
model.max_seq_len items, batches of evaluation.batch_size bounded by evaluation.max_scores, bf16 autocast
on CUDA when the run trained with it, the same tie rule: equal scores go to the lower catalog position),
so recommending for a run's test histories reproduces its test ranks.

Users: a model with user embeddings (model=ssept) scores a stored user's history with that user's
embedding (row u of histories.parquet is dense user id u); a history given without a user, or with a user
the model does not know, gets the model's unknown-user fallback (see its class docstring).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from seqrec.errors import UserError
from seqrec.saved_model import SavedModelFiles, read_saved_model

log = logging.getLogger(__name__)
_MINUS_INF = float("-inf")


class RecommendError(UserError, ValueError):
    """A request the model cannot answer (no known item, k above the catalog, ...)."""


@dataclass(frozen=True)
class Recommendations:
    """items: [S, k] original item ids, best first; scores: [S, k] float32. A score of -inf is no
    recommendation: fewer than k items were allowed for that history (or it had no known item).
    unknown_items: history ids outside the catalog, ignored; empty_histories: histories left empty."""

    items: np.ndarray
    scores: np.ndarray
    unknown_items: int
    empty_histories: int

    def to_frame(self, users: Sequence | np.ndarray | None = None) -> pl.DataFrame:
        """Long format: user (the given ids, else the history's index), rank (1-based), item, score;
        entries with score -inf are left out."""
        num_histories, k = self.scores.shape
        keys = np.arange(num_histories) if users is None else np.asarray(users)
        if len(keys) != num_histories:
            raise ValueError(f"{len(keys)} users given for {num_histories} histories")
        valid = np.isfinite(self.scores)
        rows, columns = np.nonzero(valid)
        return pl.DataFrame(
            [
                _series("user", keys[rows]),
                pl.Series("rank", columns + 1, dtype=pl.Int64),
                _series("item", self.items[rows, columns]),
                pl.Series("score", self.scores[rows, columns], dtype=pl.Float32),
            ]
        )


def _series(name: str, values: np.ndarray) -> pl.Series:
    if values.dtype.kind in "iu":
        return pl.Series(name, values, dtype=pl.Int64)
    return pl.Series(name, [str(value) for value in values], dtype=pl.String)


class Recommender:
    """A trained backbone with its catalog (`item_ids`, dense id order) and the users' stored histories."""

    def __init__(self, files: SavedModelFiles, device: str | torch.device = "auto"):
        from hydra.utils import instantiate

        from seqrec.config import resolve_device
        from seqrec.models.legacy import upgrade_model_config
        from seqrec.train import autocast_for

        info = files.info
        self.files = files
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.num_items = int(info["num_items"])
        self.item_ids = files.item_ids
        self.users = files.history_users
        self.max_seq_len = int(info["model_config"]["max_seq_len"])
        scoring = info["scoring"]
        self.batch_size = max(1, min(scoring["batch_size"], scoring["max_scores"] // self.num_items))
        self.exclude_seen_in_evaluation = bool(scoring["exclude_seen"])
        # A run recorded before the model variants names the flat backbone: the variant it built.
        model_config = upgrade_model_config(info["model_config"])
        self.backbone = instantiate(model_config | {"num_items": self.num_items})
        state = torch.load(files.weights_path, map_location="cpu", weights_only=True)
        self.backbone.load_state_dict(state)
        self.backbone.to(self.device).eval()
        self.similarity = getattr(self.backbone, "similarity", "dot")
        self._autocast = lambda: autocast_for(self.device, scoring["bf16"])
        self._item_index: dict | None = None
        self._user_index: dict | None = None

    def __repr__(self) -> str:
        return (
            f"Recommender({self.files.folder}, {self.num_items} items, {len(self.users)} users, "
            f"similarity={self.similarity}, device={self.device})"
        )

    # ----- ids -----
    def item_positions(self, items: Iterable) -> tuple[np.ndarray, int]:
        """Dense ids [n] int64 of the known original ids among `items` (order kept), and how many were
        unknown."""
        if self._item_index is None:
            self._item_index = {item: position for position, item in enumerate(self.item_ids.tolist())}
        found = [self._item_index.get(item) for item in items]
        known = np.array([position for position in found if position is not None], dtype=np.int64)
        return known, len(found) - len(known)

    def user_rows(self, users: Iterable) -> np.ndarray:
        """[n] int64 dense user ids (rows of the stored histories) of original user ids, -1 where unknown."""
        if self._user_index is None:
            self._user_index = {user: row for row, user in enumerate(self.users.tolist())}
        return np.array([self._user_index.get(user, -1) for user in users], dtype=np.int64)

    def user_histories(self, users: Iterable | str = "all") -> tuple[np.ndarray, list[np.ndarray], int]:
        """The stored histories (dense ids) of `users` ("all": every user, in stored order): the known
        users' ids, their histories, and how many users were unknown."""
        known_users, histories, unknown, _ = self._stored(users)
        return known_users, histories, unknown

    def _stored(self, users: Iterable | str) -> tuple[np.ndarray, list[np.ndarray], int, np.ndarray]:
        """user_histories, and the known users' dense ids."""
        if isinstance(users, str) and users == "all":
            return self.users, self.files.histories, 0, np.arange(len(self.users))
        rows = self.user_rows(list(users))
        known = rows[rows >= 0]
        histories = [self.files.histories[row] for row in known]
        return self.users[known], histories, int((rows < 0).sum()), known

    def history_items(self, users: Iterable | str = "all") -> list[list]:
        """The stored histories of `users` as lists of original item ids (time order)."""
        _, histories, _ = self.user_histories(users)
        return [self.item_ids[history].tolist() for history in histories]

    # ----- vectors -----
    @torch.inference_mode()
    def item_vectors(self) -> np.ndarray:
        """[I, D] float32, the vectors queries are scored against, row i = item_ids[i]."""
        return self.backbone.item_vectors().float().cpu().numpy()

    def query_vectors(self, histories: Sequence[Sequence], users: Sequence | None = None) -> np.ndarray:
        """[S, D] float32 query vectors of histories of original item ids (unknown ids ignored; a history
        with no known item gets a row of NaN). users: the original user id of each history, for a model
        with user embeddings (None, or an unknown id: the model's unknown-user fallback)."""
        dense, unknown = self._encode(histories)
        return self.query_vectors_of(dense, unknown, self._dense_users(users, len(dense)))

    @torch.inference_mode()
    def query_vectors_of(
        self, dense_histories: Sequence[np.ndarray], unknown: int = 0, users: np.ndarray | None = None
    ) -> np.ndarray:
        """query_vectors for histories of dense item ids; users: [S] dense user ids (-1: unknown) or None."""
        dim = self.backbone.item_vectors().shape[1]
        vectors = np.full((len(dense_histories), dim), np.nan, dtype=np.float32)
        for rows, inputs, lengths, _ in self._batches(dense_histories, unknown):
            batch_users = self._batch_users(users, rows)
            with self._autocast():
                hidden = self.backbone.last_hidden(inputs, lengths, batch_users)
            queries = self.backbone.query_vectors(hidden.float(), batch_users)
            vectors[rows] = queries.float().cpu().numpy()
        return vectors

    # ----- recommend -----
    def recommend(
        self,
        histories: Sequence[Sequence],
        k: int = 10,
        exclude_seen: bool = True,
        allowed_items: Iterable | None = None,
        users: Sequence | None = None,
    ) -> Recommendations:
        """The k best items for each history of original item ids (time order, most recent last).

        exclude_seen: no item of the history is recommended; allowed_items: original ids that may be
        recommended (None: the whole catalog). Unknown ids are ignored and counted. users: the original
        user id of each history, for a model with user embeddings (None, or an unknown id: the model's
        unknown-user fallback)."""
        dense, unknown = self._encode(histories)
        dense_users = self._dense_users(users, len(dense))
        return self.recommend_dense(dense, k, exclude_seen, allowed_items, unknown, dense_users)

    def recommend_users(
        self, users: Iterable | str = "all", k: int = 10, exclude_seen: bool = True, allowed_items=None
    ) -> tuple[np.ndarray, Recommendations]:
        """recommend() from the stored histories of `users` ("all": every user): their ids and results."""
        known_users, histories, unknown_users, rows = self._stored(users)
        if len(known_users) == 0:
            example = ", ".join(repr(user) for user in self.users[:3].tolist())
            raise RecommendError(
                f"none of the {unknown_users} users is in the model's stored histories; use the run's "
                f"original user ids (e.g. {example})"
            )
        if unknown_users:
            total = unknown_users + len(known_users)
            log.warning("%d of %d users are unknown to the model and left out", unknown_users, total)
        return known_users, self.recommend_dense(histories, k, exclude_seen, allowed_items, users=rows)

    @torch.inference_mode()
    def recommend_dense(
        self,
        dense_histories: Sequence[np.ndarray],
        k: int,
        exclude_seen: bool = True,
        allowed_items: Iterable | None = None,
        unknown: int = 0,
        users: np.ndarray | None = None,
    ) -> Recommendations:
        """recommend() for histories of dense item ids; users: [S] dense user ids (-1: unknown) or None."""
        from seqrec.evaluation import history_events
        from seqrec.metrics import top_k_items

        blocked = self._blocked_items(allowed_items)
        candidates = self.num_items - (0 if blocked is None else int(blocked.sum()))
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise RecommendError(f"k must be a positive integer, got {k!r}")
        if k > candidates:
            what = "allowed items" if blocked is not None else "items in the model's catalog"
            raise RecommendError(f"k={k} is larger than the {candidates} {what}; lower k")
        items = np.zeros((len(dense_histories), k), dtype=np.int64)
        items[:] = np.arange(k)
        scores = np.full((len(dense_histories), k), _MINUS_INF, dtype=np.float32)
        empty = sum(len(history) == 0 for history in dense_histories)
        with self._autocast():
            item_vectors = self.backbone.item_vectors()  # once for every batch
        for rows, inputs, lengths, (item_seq, starts, ends) in self._batches(dense_histories, unknown):
            batch_users = self._batch_users(users, rows)
            with self._autocast():
                hidden = self.backbone.last_hidden(inputs, lengths, batch_users)
                batch_scores = self.backbone.score(hidden, batch_users, item_vectors).float()
            if exclude_seen:
                batch_scores[history_events(item_seq, starts, ends)] = _MINUS_INF
            if blocked is not None:
                batch_scores[:, blocked] = _MINUS_INF
            top = top_k_items(batch_scores, k)
            scores[rows] = batch_scores.gather(1, top).cpu().numpy()
            items[rows] = top.cpu().numpy()
        return Recommendations(self.item_ids[items], scores, unknown, empty)

    def _blocked_items(self, allowed_items: Iterable | None) -> torch.Tensor | None:
        """[I] bool on the device, True for the items outside allowed_items; None: every item allowed."""
        if allowed_items is None:
            return None
        allowed, unknown = self.item_positions(allowed_items)
        if len(allowed) == 0:
            raise RecommendError(
                f"none of the {unknown} allowed_items is in the model's catalog; pass original item ids"
            )
        if unknown:
            log.warning("%d allowed_items are not in the model's catalog and are ignored", unknown)
        blocked = torch.ones(self.num_items, dtype=torch.bool, device=self.device)
        blocked[torch.from_numpy(allowed).to(self.device)] = False
        return blocked

    def _dense_users(self, users: Sequence | None, num_histories: int) -> np.ndarray | None:
        """[S] dense user ids of one original user id per history (-1 where unknown), or None."""
        if users is None:
            return None
        if isinstance(users, str | bytes) or len(users) != num_histories:
            given = "a single id" if isinstance(users, str | bytes) else f"{len(users)} ids"
            raise RecommendError(f"users must list one user id per history ({num_histories}), got {given}")
        return self.user_rows(users)

    def _batch_users(self, users: np.ndarray | None, rows: np.ndarray) -> torch.Tensor | None:
        return None if users is None else torch.from_numpy(users[rows]).to(self.device)

    def _encode(self, histories: Sequence[Sequence]) -> tuple[list[np.ndarray], int]:
        if isinstance(histories, str | bytes) or not isinstance(histories, Sequence | np.ndarray):
            raise RecommendError(
                "histories must be a list of histories, each a list of original item ids, e.g. [[1, 5, 3]]"
            )
        dense, unknown = [], 0
        for history in histories:
            if isinstance(history, str | bytes) or np.ndim(history) == 0:
                raise RecommendError(
                    f"each history must be a list of item ids, got {history!r}; wrap one history in a list"
                )
            known, missing = self.item_positions(history)
            dense.append(known)
            unknown += missing
        return dense, unknown

    def _batches(
        self, dense_histories: Sequence[np.ndarray], unknown: int
    ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor, tuple]]:
        """Batches of the non-empty histories: their row numbers [B], model inputs [B, L] and lengths
        [B] on the device, and (item_seq, starts, ends) locating each whole history on the device."""
        from seqrec.data.batches import gather_windows

        nonempty = np.array([row for row, history in enumerate(dense_histories) if len(history)], dtype=int)
        if len(nonempty) == 0:
            example = ", ".join(repr(item) for item in self.item_ids[:3].tolist())
            raise RecommendError(
                f"none of the {len(dense_histories)} histories has an item of the model's catalog ({unknown} "
                f"unknown ids ignored); pass original item ids of the training log (e.g. {example})"
            )
        if len(nonempty) < len(dense_histories):
            log.warning(
                "%d of %d histories have no item of the model's catalog: they get no result",
                len(dense_histories) - len(nonempty),
                len(dense_histories),
            )
        for begin in range(0, len(nonempty), self.batch_size):
            rows = nonempty[begin : begin + self.batch_size]
            parts = [torch.from_numpy(dense_histories[row]) for row in rows]
            lengths = torch.tensor([len(part) for part in parts], dtype=torch.int64)
            ends = torch.cumsum(lengths, 0)
            item_seq, starts, ends = (t.to(self.device) for t in (torch.cat(parts), ends - lengths, ends))
            inputs, input_lengths = gather_windows(item_seq, starts, ends, self.max_seq_len)
            yield rows, inputs, input_lengths, (item_seq, starts, ends)


def load(path: str | Path, device: str = "auto") -> Recommender:
    """The saved model of a completed run: `seqrec.load("outputs/DATE/TIME-NAME")` (or its model/ folder).
    device: auto (CUDA when available) | cpu | cuda."""
    return Recommender(read_saved_model(path), device)


@dataclass(frozen=True)
class RunTestSamples:
    """A run's test samples rebuilt from its saved model and test_ranks.parquet: histories [S] (dense
    item ids of all of the user's earlier events), targets [S] dense ids, users [S] original ids, and
    the recorded 1-based full-catalog ranks [S]."""

    histories: list[np.ndarray]
    targets: np.ndarray
    users: np.ndarray
    ranks: np.ndarray


def run_test_samples(model: Recommender) -> RunTestSamples:
    """The test samples of the model's run: every split tests each user on their last events (a suffix
    of the stored history, in time order), which is how test_ranks.parquet lists them."""
    from seqrec.saved_model import SavedModelError

    run_dir = model.files.run_dir
    ranks_path = None if run_dir is None else run_dir / "test_ranks.parquet"
    if ranks_path is None or not ranks_path.exists():
        raise SavedModelError(
            f"{model.files.folder} has no test_ranks.parquet beside it; the check needs the test samples"
        )
    ranks = pl.read_parquet(ranks_path)
    counts = dict(ranks.group_by("user", maintain_order=True).len().iter_rows())
    row_of = {user: row for row, user in enumerate(model.users.tolist())}
    histories, targets, taken = [], [], {}
    for user, item in zip(ranks["user"].to_list(), ranks["item"].to_list(), strict=True):
        history = model.files.histories[row_of[user]] if user in row_of else np.zeros(0, dtype=np.int64)
        position = len(history) - counts[user] + taken.get(user, 0)
        taken[user] = taken.get(user, 0) + 1
        if position < 1 or model.item_ids[history[position]] != item:
            raise SavedModelError(
                f"{ranks_path} does not match the saved histories (user {user!r}, item {item!r}); "
                "the run folder is damaged or mixed with another run's files"
            )
        histories.append(history[:position])
        targets.append(history[position])
    return RunTestSamples(
        histories, np.array(targets, dtype=np.int64), ranks["user"].to_numpy(), ranks["rank"].to_numpy()
    )
