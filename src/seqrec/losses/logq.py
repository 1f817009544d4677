"""In-batch negatives with the logQ popularity correction (Yi et al., RecSys 2019; protocol `logq`)."""

from __future__ import annotations

import torch

from seqrec.errors import require
from seqrec.losses.base import ObjectiveInput
from seqrec.losses.inbatch import InBatch

# Keeps the log finite for items that never occur among the training inputs (protocol value).
PRIOR_EPSILON = 1e-9


class LogQ(InBatch):
    """As InBatch, but each negative logit j gets `- log(Q(j) + 1e-9)`, Q = the catalog's item
    prior (natural log). The protocol leaves the positive logit uncorrected; `correct_positive`
    corrects it too, as in Yi et al., which makes a uniform prior equal to plain in-batch softmax.

    `zero_first_item_prior` reproduces the seminar's quirk: after counting, the count of item 0 (a
    real item there) is set to zero while the total keeps it, so Q(0) = 0 and item 0's negative
    logit is raised by -log(1e-9) = +20.7: it dominates the denominator whenever it is drawn."""

    def __init__(
        self,
        num_negatives: int = 255,
        remove_accidental_hits: bool = False,
        temperature: float = 1.0,
        correct_positive: bool = False,
        zero_first_item_prior: bool = False,
    ):
        super().__init__(num_negatives, remove_accidental_hits, temperature)
        for key, value in [
            ("correct_positive", correct_positive),
            ("zero_first_item_prior", zero_first_item_prior),
        ]:
            require(isinstance(value, bool), f"loss.{key} must be true or false, got {value!r}")
        self.correct_positive = correct_positive
        self.zero_first_item_prior = zero_first_item_prior

    def item_prior(self, batch: ObjectiveInput) -> torch.Tensor:
        """[I] float, Q(j); item 0's share set to zero under `zero_first_item_prior`."""
        prior = batch.catalog.item_prior
        if self.zero_first_item_prior:
            prior = torch.cat([prior.new_zeros(1), prior[1:]])
        return prior

    def negative_correction(self, negatives: torch.Tensor, batch: ObjectiveInput) -> torch.Tensor:
        return -torch.log(self.item_prior(batch)[negatives] + PRIOR_EPSILON)

    def positive_correction(self, batch: ObjectiveInput) -> torch.Tensor | float:
        if not self.correct_positive:
            return 0.0
        return -torch.log(self.item_prior(batch)[batch.positives] + PRIOR_EPSILON)
