"""The one interface every objective implements."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class CatalogStats:
    """What an objective may know about the catalog, computed from the training split only.

    num_items: catalog size I.
    train_item_counts: [I] float, how often each item occurs among the training input events.
    """

    num_items: int
    train_item_counts: torch.Tensor

    @property
    def item_prior(self) -> torch.Tensor:
        """[I] float, Q(j): each item's share of the training input events."""
        return self.train_item_counts / self.train_item_counts.sum()

    def to(self, device: torch.device | str) -> CatalogStats:
        return CatalogStats(self.num_items, self.train_item_counts.to(device))


@dataclass(frozen=True)
class ObjectiveInput:
    """One training batch, reduced to its supervised positions (N of them).

    queries: [N, D] float, encoder output at each supervised position.
    positives: [N] int64, the next item at each position.
    rows: [N] int64, the batch row each position comes from.
    sequences: [B, L] int64, the batch's input items, right-padded (padding value 0, see lengths).
    lengths: [B] int64, number of real items in each row.
    item_embeddings: [I, D] float, the item table shared with the backbone's input embeddings.
    catalog: statistics of the training split (item counts live on the batch's device).
    item_seq, history_start, history_end: [E], [B], [B] int64 or None: row b's user's whole training
        sequence is item_seq[history_start[b]:history_end[b]] (sequences holds only its last L items).
    """

    queries: torch.Tensor
    positives: torch.Tensor
    rows: torch.Tensor
    sequences: torch.Tensor
    lengths: torch.Tensor
    item_embeddings: torch.Tensor
    catalog: CatalogStats
    item_seq: torch.Tensor | None = None
    history_start: torch.Tensor | None = None
    history_end: torch.Tensor | None = None


@dataclass(frozen=True)
class DataSizes:
    """Sizes known once the data is loaded, before training, that an objective's settings may exceed.

    num_items: catalog size I.
    batch_positions: (fewest, most) supervised positions one training batch can hold: the in-batch pool.
    """

    num_items: int
    batch_positions: tuple[int, int]


class Objective(nn.Module, abc.ABC):
    """Base class of objective heads.

    `__init__` takes only the objective's hyperparameters (the keys of its YAML) and rejects
    impossible values with a ValueError naming the key as `loss.<key>`, so a bad config fails
    before any data is read. Random draws (negatives) use torch's global generator, which the
    trainer seeds.
    """

    @abc.abstractmethod
    def forward(self, batch: ObjectiveInput) -> torch.Tensor:
        """Scalar loss for the batch."""

    def effective_settings(self, sizes: DataSizes) -> dict[str, list[int]]:
        """Settings that the data caps, checked before training: {key: [fewest, most]} values batches
        actually use (recorded in run.json, with a warning); raises ConfigError for a value the data makes
        meaningless. Default: nothing is capped."""
        return {}


def pool_cap(key: str, requested: int, pool: tuple[int, int]) -> dict[str, list[int]]:
    """{key: [fewest, most]} draws per batch when `requested` draws without replacement exceed the
    smallest in-batch pool (pool = (fewest, most) entries); {} when every batch draws `requested`."""
    fewest, most = pool
    if requested <= fewest:
        return {}
    return {key: [fewest, min(requested, most)]}
