"""Binary cross-entropy with uniform negatives: the original SASRec objective (Kang & McAuley, 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqrec.errors import require
from seqrec.losses import sampling
from seqrec.losses.base import Objective, ObjectiveInput


class BCE(Objective):
    """Per position, `num_negatives` items drawn uniformly from the whole catalog; loss = mean
    binary cross-entropy over all positive and negative logits together (protocol: 1 negative,
    which may coincide with a seen item). `exclude_seen` redraws negatives that occur anywhere in
    the row's training sequence, not only in the model's window, as the original SASRec code does."""

    def __init__(self, num_negatives: int = 1, exclude_seen: bool = False):
        super().__init__()
        require(num_negatives >= 1, f"loss.num_negatives must be >= 1, got {num_negatives}")
        require(
            isinstance(exclude_seen, bool), f"loss.exclude_seen must be true or false, got {exclude_seen!r}"
        )
        self.num_negatives = num_negatives
        self.exclude_seen = exclude_seen

    def forward(self, batch: ObjectiveInput) -> torch.Tensor:
        num_items = batch.catalog.num_items
        shape = (len(batch.positives), self.num_negatives)
        negatives = sampling.uniform_items(num_items, shape, batch.queries.device)  # [N, K]
        if self.exclude_seen:
            history = None
            if batch.item_seq is not None:
                history = (batch.item_seq, batch.history_start, batch.history_end)
            negatives = sampling.resample_seen(
                negatives, batch.positives, batch.rows, batch.sequences, batch.lengths, num_items, history
            )
        positive_logits = sampling.pair_scores(batch.queries, batch.item_embeddings[batch.positives])  # [N]
        negative_logits = sampling.batched_score_matrix(
            batch.queries[:, None, :], batch.item_embeddings[negatives]
        )[:, 0, :]  # [N, K]
        # Mean over all N * (1 + K) logits: positives have label 1, negatives label 0.
        total = F.softplus(-positive_logits).sum() + F.softplus(negative_logits).sum()
        return total / (positive_logits.numel() + negative_logits.numel())
