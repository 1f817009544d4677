"""Synthetic interaction logs with planted sequential structure, and their Bayes-optimal oracle.

seqrec's default dataset: no download, seconds to generate, and unlike a real log it comes with the best
achievable ranking, so every metric can be read against its ceiling.

Generative model (all randomness comes from `seed`):
- Item popularity is Zipf: the item of popularity rank r (0-based) has weight (r + 1) ** -popularity_exponent,
  normalised to a distribution p.
- Each item i has `successors_per_item` distinct successors, never i itself, drawn one by one with probability
  proportional to p among the items not drawn yet, with weights w_i ~ Dirichlet(1, ..., 1).
- A user's first item is drawn from p. Each next item is, with probability follow_probability, a successor
  of the current item chosen by its weights, else a fresh draw from p. So the next item depends only on the
  current one:
      P(next = j | current = i) = (1 - follow_probability) * p[j] + follow_probability * w_i[j]
  (w_i[j] = 0 when j is not a successor of i).
- User lengths are lognormal (log-sd 1.0, close to MovieLens-1M's spread) clipped to [min_length, max_length]
  and rounded; the lognormal's location is solved so that the clipped mean is mean_length.
- Timestamps are unix seconds. Users start uniformly over HORIZON_SECONDS from START_TIMESTAMP; each user has
  an activity span (lognormal, median SPAN_FRACTION * HORIZON_SECONDS, independent of the length) and the gaps
  between consecutive events are exponential with mean span / (length - 1), rounded down to whole seconds plus
  one (so each user's timestamps strictly increase). Spans overlap, so a global 80%/90% time split leaves many
  users with validation and test events (about 45% and 30% at the defaults).
- Original item ids are a random permutation of 1..num_items (id order says nothing about popularity), user
  ids are 1..num_users, ratings are absent (all null).

Rows come sorted by (timestamp, user), like a log written in time order. The same parameters give the same
frame bit for bit, in every call and process (for a given numpy version: numpy's Generator streams).

The oracle works over ORIGINAL item ids: column c of `next_item_probabilities` is the item with original id
c + 1, i.e. columns follow `item_ids` (ascending ids, the same order as InteractionLog.item_ids when
filtering removed no item).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl
import torch

from seqrec.data.types import RAW_SCHEMA, DataError
from seqrec.errors import require

GENERATOR_VERSION = 1
"""Bumped whenever the generated log changes for the same parameters (it is part of the fingerprint)."""

START_TIMESTAMP = 1_000_000_000
HORIZON_SECONDS = 2 * 365 * 24 * 3600
SPAN_FRACTION = 0.5
"""A user's activity span is lognormal with median SPAN_FRACTION * HORIZON_SECONDS and log-sd SPAN_LOG_SD."""
SPAN_LOG_SD = 0.5
LENGTH_LOG_SD = 1.0


@dataclass(frozen=True)
class SyntheticCatalog:
    """The planted item model; row/column c is the item with original id c + 1.

    popularity: [I] float64, sums to 1 (Zipf over a random order of the items).
    successors: [I, K] int64 columns of each item's successors (distinct, never the item itself).
    successor_weights: [I, K] float64, each row sums to 1.
    """

    popularity: np.ndarray
    successors: np.ndarray
    successor_weights: np.ndarray


class SyntheticSource:
    """A synthetic log with planted next-item structure (see the module docstring); a Hydra `_target_`.

    Construction only validates the parameters; `load()` generates.
    """

    def __init__(
        self,
        num_users: int = 1000,
        num_items: int = 500,
        mean_length: float = 50.0,
        min_length: int = 5,
        max_length: int = 400,
        popularity_exponent: float = 0.6,
        successors_per_item: int = 5,
        follow_probability: float = 0.6,
        seed: int = 0,
    ) -> None:
        require(num_users >= 1, f"dataset.num_users must be >= 1, got {num_users}")
        require(
            successors_per_item >= 1, f"dataset.successors_per_item must be >= 1, got {successors_per_item}"
        )
        require(
            num_items > successors_per_item,
            f"dataset.num_items must exceed dataset.successors_per_item ({successors_per_item}), "
            f"got {num_items}",
        )
        require(min_length >= 1, f"dataset.min_length must be >= 1, got {min_length}")
        require(
            min_length <= max_length,
            f"dataset.min_length ({min_length}) must be <= dataset.max_length ({max_length})",
        )
        require(
            min_length <= mean_length <= max_length,
            f"dataset.mean_length must lie in [min_length, max_length] = [{min_length}, {max_length}], "
            f"got {mean_length}",
        )
        require(
            popularity_exponent >= 0, f"dataset.popularity_exponent must be >= 0, got {popularity_exponent}"
        )
        require(
            0 <= follow_probability <= 1,
            f"dataset.follow_probability must be in [0, 1], got {follow_probability}",
        )
        require(seed >= 0, f"dataset.seed must be >= 0, got {seed}")
        self.num_users = int(num_users)
        self.num_items = int(num_items)
        self.mean_length = float(mean_length)
        self.min_length = int(min_length)
        self.max_length = int(max_length)
        self.popularity_exponent = float(popularity_exponent)
        self.successors_per_item = int(successors_per_item)
        self.follow_probability = float(follow_probability)
        self.seed = int(seed)

    def fingerprint(self) -> str:
        """Cache key naming the generator version and every parameter."""
        parameters = (
            f"num_users={self.num_users}-num_items={self.num_items}-mean_length={self.mean_length!r}"
            f"-min_length={self.min_length}-max_length={self.max_length}"
            f"-popularity_exponent={self.popularity_exponent!r}-successors_per_item={self.successors_per_item}"
            f"-follow_probability={self.follow_probability!r}-seed={self.seed}"
        )
        return f"synthetic-v{GENERATOR_VERSION}-{parameters}"

    @property
    def item_ids(self) -> np.ndarray:
        """[I] int64 original item id of each oracle column: 1..num_items."""
        return np.arange(1, self.num_items + 1, dtype=np.int64)

    @cached_property
    def catalog(self) -> SyntheticCatalog:
        """The planted popularity and successor structure (cheap: O(num_items * successors_per_item))."""
        rng = np.random.default_rng([self.seed, 0])
        zipf_weights = np.arange(1, self.num_items + 1, dtype=np.float64) ** -self.popularity_exponent
        popularity = zipf_weights[rng.permutation(self.num_items)]
        popularity /= popularity.sum()
        successors = _draw_successors(_cdf(popularity), self.successors_per_item, rng)
        successor_weights = rng.dirichlet(np.ones(self.successors_per_item), size=self.num_items)
        return SyntheticCatalog(popularity, successors, successor_weights)

    def load(self) -> pl.DataFrame:
        """The generated log: RAW_SCHEMA columns (rating all null), rows sorted by (timestamp, user)."""
        rng = np.random.default_rng([self.seed, 1])
        lengths = self._draw_lengths(rng)
        columns = self._draw_item_columns(lengths, rng)
        timestamps = self._draw_timestamps(lengths, rng)
        users = np.repeat(np.arange(1, self.num_users + 1, dtype=np.int64), lengths)
        frame = pl.DataFrame(
            {"user": users, "item": columns + 1, "timestamp": timestamps, "rating": None}, schema=RAW_SCHEMA
        )
        return frame.sort(["timestamp", "user"])

    def next_item_probabilities(self, previous_items: np.ndarray) -> np.ndarray:
        """True distribution of the next item given the previous one.

        previous_items: [S] int original item ids. Returns [S, num_items] float64, rows sum to 1; column c is
        the item with original id c + 1 (see `item_ids`).
        """
        previous_items = np.asarray(previous_items, dtype=np.int64)
        if previous_items.size and (previous_items.min() < 1 or previous_items.max() > self.num_items):
            raise DataError(
                f"previous_items must be original item ids in [1, {self.num_items}], got values in "
                f"[{previous_items.min()}, {previous_items.max()}]"
            )
        catalog = self.catalog
        rows = previous_items - 1
        probabilities = np.tile((1 - self.follow_probability) * catalog.popularity, (len(rows), 1))
        sample_index = np.arange(len(rows))[:, None]
        # Successors of one item are distinct, so plain fancy-index addition never collides.
        probabilities[sample_index, catalog.successors[rows]] += (
            self.follow_probability * catalog.successor_weights[rows]
        )
        return probabilities

    def oracle_scores(self, last_items: torch.Tensor, item_ids: np.ndarray) -> torch.Tensor:
        """Bayes-optimal scores of the next item over a (k-core filtered) catalog.

        last_items: [S] int64 dense ids of each sample's most recent history item; item_ids: [I'] int64 the
        original id of each dense id (InteractionLog.item_ids). Returns [S, I'] float32 on last_items' device:
        the true probability of each kept item being next (not renormalised over the kept items, which would
        not change the ranking). The ranking is exactly Bayes-optimal when filtering removed none of the
        user's events, so that the last history item is the true previous item; otherwise it approximates.
        """
        item_ids = np.asarray(item_ids, dtype=np.int64)
        previous_items = item_ids[last_items.cpu().numpy()]
        probabilities = self.next_item_probabilities(previous_items)[:, item_ids - 1]
        return torch.from_numpy(probabilities.astype(np.float32)).to(last_items.device)

    def oracle(self, item_ids: np.ndarray) -> Callable[..., torch.Tensor]:
        """The Bayes-optimal score function of a split's catalog (item_ids: SplitData.item_ids), as
        seqrec.evaluation calls it: (inputs [B, L] right-padded, lengths [B], users) -> [B, I']
        oracle_scores of each row's last input item (the user says nothing more)."""
        item_ids = np.asarray(item_ids, dtype=np.int64)

        def scores(inputs: torch.Tensor, lengths: torch.Tensor, users=None) -> torch.Tensor:
            last_items = inputs[torch.arange(len(inputs), device=inputs.device), lengths - 1]
            return self.oracle_scores(last_items.cpu(), item_ids).to(inputs.device)

        return scores

    def _draw_lengths(self, rng: np.random.Generator) -> np.ndarray:
        """[U] int64 events per user."""
        location = _clipped_lognormal_location(
            self.mean_length, self.min_length, self.max_length, LENGTH_LOG_SD
        )
        raw = rng.lognormal(location, LENGTH_LOG_SD, size=self.num_users)
        return np.rint(np.clip(raw, self.min_length, self.max_length)).astype(np.int64)

    def _draw_item_columns(self, lengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """[E] int64 item columns of all events, user after user, each user's in time order.

        Loops over time steps; step t extends every user still longer than t.
        """
        catalog = self.catalog
        popularity_cdf = _cdf(catalog.popularity)
        successor_cdf = np.cumsum(catalog.successor_weights, axis=1)
        successor_cdf /= successor_cdf[:, -1:]
        starts = np.cumsum(lengths) - lengths
        by_length = np.argsort(-lengths, kind="stable")
        starts_by_length = starts[by_length]
        # active_counts[t] = users longer than t: a prefix of the users sorted by decreasing length.
        active_counts = np.searchsorted(-lengths[by_length], -np.arange(lengths.max()), side="left")
        columns = np.empty(int(lengths.sum()), dtype=np.int64)
        columns[starts] = _sample(popularity_cdf, rng.random(len(lengths)))
        for step in range(1, len(active_counts)):
            positions = starts_by_length[: active_counts[step]] + step
            current = columns[positions - 1]
            follows = rng.random(len(positions)) < self.follow_probability
            choice = (rng.random(len(positions))[:, None] >= successor_cdf[current]).sum(axis=1)
            fresh = _sample(popularity_cdf, rng.random(len(positions)))
            columns[positions] = np.where(follows, catalog.successors[current, choice], fresh)
        return columns

    def _draw_timestamps(self, lengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """[E] int64 unix seconds, user after user; strictly increasing within a user."""
        starts = np.cumsum(lengths) - lengths
        user_start_time = START_TIMESTAMP + rng.integers(0, HORIZON_SECONDS, size=len(lengths))
        user_span = rng.lognormal(math.log(SPAN_FRACTION * HORIZON_SECONDS), SPAN_LOG_SD, size=len(lengths))
        user_mean_gap = user_span / np.maximum(lengths - 1, 1)
        gaps = np.floor(rng.exponential(size=int(lengths.sum())) * np.repeat(user_mean_gap, lengths)) + 1
        gaps = gaps.astype(np.int64)
        gaps[starts] = 0
        elapsed = np.cumsum(gaps)
        elapsed -= np.repeat(elapsed[starts], lengths)
        return np.repeat(user_start_time, lengths) + elapsed


def _cdf(probabilities: np.ndarray) -> np.ndarray:
    """Cumulative distribution whose last entry is exactly 1, so a uniform draw in [0, 1) never overflows."""
    cdf = np.cumsum(probabilities)
    return cdf / cdf[-1]


def _sample(cdf: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws: [N] uniforms in [0, 1) -> [N] int64 indices."""
    return np.searchsorted(cdf, uniforms, side="right").astype(np.int64)


def _draw_successors(popularity_cdf: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """[I, count] int64: for each item, `count` distinct other items drawn one by one by popularity.

    Rejection: redraw from the full distribution until the draw is new, which samples exactly from popularity
    restricted to the items not drawn yet. Loops over slots and retries, vectorised across items.
    """
    num_items = len(popularity_cdf)
    items = np.arange(num_items)
    drawn = np.column_stack([items, np.full((num_items, count), -1)])  # column 0: the item itself, excluded
    for slot in range(1, count + 1):
        pending = items
        while len(pending):
            candidates = _sample(popularity_cdf, rng.random(len(pending)))
            is_new = (drawn[pending, :slot] != candidates[:, None]).all(axis=1)
            drawn[pending[is_new], slot] = candidates[is_new]
            pending = pending[~is_new]
    return drawn[:, 1:]


def _clipped_lognormal_location(mean: float, low: float, high: float, log_sd: float) -> float:
    """mu such that E[clip(exp(N(mu, log_sd^2)), low, high)] = mean.

    Bisection on the closed-form clipped mean, which grows with mu.
    """

    def normal_cdf(z: float) -> float:
        return 0.5 * math.erfc(-z / math.sqrt(2))

    def clipped_mean(mu: float) -> float:
        z_low, z_high = (math.log(low) - mu) / log_sd, (math.log(high) - mu) / log_sd
        inside = math.exp(mu + log_sd**2 / 2) * (normal_cdf(z_high - log_sd) - normal_cdf(z_low - log_sd))
        return low * normal_cdf(z_low) + high * (1 - normal_cdf(z_high)) + inside

    lower, upper = math.log(low) - 10 * log_sd, math.log(high) + 10 * log_sd
    for _ in range(100):
        middle = (lower + upper) / 2
        lower, upper = (middle, upper) if clipped_mean(middle) < mean else (lower, middle)
    return (lower + upper) / 2
