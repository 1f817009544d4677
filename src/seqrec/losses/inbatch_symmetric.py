"""Symmetric in-batch contrastive loss (CLIP-style): user -> item and item -> user cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqrec.errors import require
from seqrec.losses import sampling
from seqrec.losses.base import DataSizes, Objective, ObjectiveInput, pool_cap


class InBatchSymmetric(Objective):
    """Up to num_negatives + 1 positions S drawn without replacement; logits = Q_S E[pos_S]^T / T
    ([S, S], diagonal = positives), off-diagonal entries with the same item as the diagonal masked
    (unless remove_accidental_hits is false, as in the two-tower tutorial: a repeated item is then a
    negative of its own query); loss = (row-wise CE + column-wise CE) / 2."""

    def __init__(
        self, num_negatives: int = 255, temperature: float = 0.1, remove_accidental_hits: bool = True
    ):
        super().__init__()
        require(num_negatives >= 1, f"loss.num_negatives must be >= 1, got {num_negatives}")
        require(temperature > 0, f"loss.temperature must be > 0, got {temperature}")
        require(
            isinstance(remove_accidental_hits, bool),
            f"loss.remove_accidental_hits must be true or false, got {remove_accidental_hits!r}",
        )
        self.num_negatives = num_negatives
        self.temperature = temperature
        self.remove_accidental_hits = remove_accidental_hits

    def effective_settings(self, sizes: DataSizes) -> dict[str, list[int]]:
        fewest, most = sizes.batch_positions  # a position's negatives: the other chosen positions
        return pool_cap("num_negatives", self.num_negatives, (fewest - 1, most - 1))

    def forward(self, batch: ObjectiveInput) -> torch.Tensor:
        chosen = sampling.pool_indices(len(batch.positives), self.num_negatives + 1, batch.queries.device)
        items = batch.positives[chosen]  # [S]
        logits = sampling.score_matrix(batch.queries[chosen], batch.item_embeddings[items]) / self.temperature
        if self.remove_accidental_hits:
            same_item = sampling.accidental_hits(items, items)
            same_item.fill_diagonal_(False)
            logits = logits.masked_fill(same_item, float("-inf"))
        targets = torch.arange(len(items), device=logits.device)
        return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
