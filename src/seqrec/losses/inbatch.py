"""In-batch negatives: the other positions' positives serve as negatives (protocol `inbatch`)."""

from __future__ import annotations

import torch

from seqrec.errors import require
from seqrec.losses import sampling
from seqrec.losses.base import DataSizes, Objective, ObjectiveInput, pool_cap


class InBatch(Objective):
    """The positives of all N positions form a pool; min(num_negatives, N) pool entries drawn
    without replacement are shared by every position; loss = cross-entropy over
    [positive, negatives] / temperature with the positive as class 0. The protocol keeps
    accidental hits (a negative equal to the position's positive); `remove_accidental_hits` masks them.
    """

    def __init__(
        self, num_negatives: int = 255, remove_accidental_hits: bool = False, temperature: float = 1.0
    ):
        super().__init__()
        require(num_negatives >= 1, f"loss.num_negatives must be >= 1, got {num_negatives}")
        require(
            isinstance(remove_accidental_hits, bool),
            f"loss.remove_accidental_hits must be true or false, got {remove_accidental_hits!r}",
        )
        require(temperature > 0, f"loss.temperature must be > 0, got {temperature}")
        self.num_negatives = num_negatives
        self.remove_accidental_hits = remove_accidental_hits
        self.temperature = temperature

    def effective_settings(self, sizes: DataSizes) -> dict[str, list[int]]:
        return pool_cap("num_negatives", self.num_negatives, sizes.batch_positions)

    def negative_correction(self, negatives: torch.Tensor, batch: ObjectiveInput) -> torch.Tensor | float:
        """Added to each negative's logit after the temperature: [K] or a scalar; 0 for plain in-batch."""
        return 0.0

    def positive_correction(self, batch: ObjectiveInput) -> torch.Tensor | float:
        """Added to each positive's logit after the temperature: [N] or a scalar; 0 for plain in-batch."""
        return 0.0

    def forward(self, batch: ObjectiveInput) -> torch.Tensor:
        pool = batch.positives
        negatives = pool[sampling.pool_indices(len(pool), self.num_negatives, pool.device)]  # [K]
        positive_logits = sampling.pair_scores(batch.queries, batch.item_embeddings[batch.positives])
        negative_logits = sampling.score_matrix(batch.queries, batch.item_embeddings[negatives])  # [N, K]
        positive_logits = positive_logits / self.temperature + self.positive_correction(batch)
        negative_logits = negative_logits / self.temperature + self.negative_correction(negatives, batch)
        if self.remove_accidental_hits:
            hits = sampling.accidental_hits(batch.positives, negatives)
            negative_logits = negative_logits.masked_fill(hits, float("-inf"))
        return sampling.positive_first_cross_entropy(positive_logits, negative_logits)
