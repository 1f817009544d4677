"""Sampled softmax with the logQ correction (Bengio & Senecal, 2008; Jean et al., 2015)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from seqrec.errors import require
from seqrec.losses.base import CatalogStats, Objective, ObjectiveInput

# Imported by name: the `sampling` hyperparameter would shadow the module.
from seqrec.losses.sampling import (
    accidental_hits,
    pair_scores,
    positive_first_cross_entropy,
    prior_items,
    score_matrix,
    uniform_items,
)


def draw_uniform(catalog: CatalogStats, num: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """[num] item ids drawn uniformly with replacement, and their log sampling probabilities [num]."""
    negatives = uniform_items(catalog.num_items, (num,), device)
    dtype = catalog.train_item_counts.dtype
    return negatives, torch.full((num,), -math.log(catalog.num_items), dtype=dtype, device=device)


def draw_popular(catalog: CatalogStats, num: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """[num] item ids drawn with replacement proportionally to the item prior, and their log probabilities."""
    prior = catalog.item_prior
    negatives = prior_items(prior, num)
    return negatives, torch.log(prior[negatives])


SAMPLERS: dict[str, Callable[[CatalogStats, int, torch.device], tuple[torch.Tensor, torch.Tensor]]] = {
    "uniform": draw_uniform,
    "popularity": draw_popular,
}


class SampledSoftmax(Objective):
    """`num_negatives` catalog items drawn with replacement (uniformly or by popularity), shared by
    every position; each negative logit j is corrected by -log(k q(j)), the expected number of
    draws of j, so the sampled loss estimates the full softmax; positive at class 0."""

    def __init__(
        self,
        num_negatives: int = 256,
        sampling: str = "uniform",
        remove_accidental_hits: bool = True,
        temperature: float = 1.0,
    ):
        super().__init__()
        require(num_negatives >= 1, f"loss.num_negatives must be >= 1, got {num_negatives}")
        require(sampling in SAMPLERS, f"loss.sampling must be one of {sorted(SAMPLERS)}, got {sampling!r}")
        require(
            isinstance(remove_accidental_hits, bool),
            f"loss.remove_accidental_hits must be true or false, got {remove_accidental_hits!r}",
        )
        require(temperature > 0, f"loss.temperature must be > 0, got {temperature}")
        self.num_negatives = num_negatives
        self.draw_negatives = SAMPLERS[sampling]
        self.remove_accidental_hits = remove_accidental_hits
        self.temperature = temperature

    def forward(self, batch: ObjectiveInput) -> torch.Tensor:
        negatives, log_probabilities = self.draw_negatives(
            batch.catalog, self.num_negatives, batch.queries.device
        )  # [K], [K]
        positive_logits = pair_scores(batch.queries, batch.item_embeddings[batch.positives])
        negative_logits = score_matrix(batch.queries, batch.item_embeddings[negatives])  # [N, K]
        expected_draws_log = math.log(self.num_negatives) + log_probabilities
        negative_logits = negative_logits / self.temperature - expected_draws_log
        if self.remove_accidental_hits:
            hits = accidental_hits(batch.positives, negatives)
            negative_logits = negative_logits.masked_fill(hits, float("-inf"))
        return positive_first_cross_entropy(positive_logits / self.temperature, negative_logits)
