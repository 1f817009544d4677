"""Mixed Negative Sampling (Yang et al., WWW 2020): in-batch plus uniform catalog negatives."""

from __future__ import annotations

import math

import torch

from seqrec.errors import require
from seqrec.losses import sampling
from seqrec.losses.base import DataSizes, Objective, ObjectiveInput, pool_cap
from seqrec.losses.logq import PRIOR_EPSILON


class Mixed(Objective):
    """Negatives = `num_in_batch` draws from the batch's positives (as InBatch) plus `num_uniform`
    uniform catalog draws, shared by every position. In-batch negatives are corrected by
    -log Q(j) (their popularity), uniform ones by -log(1/I); cross-entropy with the positive at
    class 0."""

    def __init__(
        self,
        num_in_batch: int = 128,
        num_uniform: int = 128,
        remove_accidental_hits: bool = True,
        temperature: float = 1.0,
    ):
        super().__init__()
        require(num_in_batch >= 1, f"loss.num_in_batch must be >= 1, got {num_in_batch}")
        require(num_uniform >= 1, f"loss.num_uniform must be >= 1, got {num_uniform}")
        require(
            isinstance(remove_accidental_hits, bool),
            f"loss.remove_accidental_hits must be true or false, got {remove_accidental_hits!r}",
        )
        require(temperature > 0, f"loss.temperature must be > 0, got {temperature}")
        self.num_in_batch = num_in_batch
        self.num_uniform = num_uniform
        self.remove_accidental_hits = remove_accidental_hits
        self.temperature = temperature

    def effective_settings(self, sizes: DataSizes) -> dict[str, list[int]]:
        return pool_cap("num_in_batch", self.num_in_batch, sizes.batch_positions)

    def forward(self, batch: ObjectiveInput) -> torch.Tensor:
        device, num_items = batch.queries.device, batch.catalog.num_items
        pool = batch.positives
        in_batch = pool[sampling.pool_indices(len(pool), self.num_in_batch, device)]  # [K1]
        uniform = sampling.uniform_items(num_items, (self.num_uniform,), device)  # [K2]
        negatives = torch.cat([in_batch, uniform])
        prior = batch.catalog.item_prior
        correction = torch.cat(
            [
                -torch.log(prior[in_batch] + PRIOR_EPSILON),
                torch.full((len(uniform),), math.log(num_items), dtype=prior.dtype, device=device),
            ]
        )
        positive_logits = sampling.pair_scores(batch.queries, batch.item_embeddings[batch.positives])
        negative_logits = sampling.score_matrix(batch.queries, batch.item_embeddings[negatives])  # [N, K]
        negative_logits = negative_logits / self.temperature + correction
        if self.remove_accidental_hits:
            hits = sampling.accidental_hits(batch.positives, negatives)
            negative_logits = negative_logits.masked_fill(hits, float("-inf"))
        return sampling.positive_first_cross_entropy(positive_logits / self.temperature, negative_logits)
