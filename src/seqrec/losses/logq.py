"""In-batch negatives with the logQ popularity correction (Yi et al., RecSys 2019; protocol `logq`)."""

from __future__ import annotations

import torch

from seqrec.losses.base import ObjectiveInput
from seqrec.losses.inbatch import InBatch

# Keeps the log finite for items that never occur among the training inputs (protocol value).
PRIOR_EPSILON = 1e-9


class LogQ(InBatch):
    """As InBatch, but each negative logit j gets `- log(Q(j) + 1e-9)`, Q = the catalog's item
    prior (natural log). The protocol leaves the positive logit uncorrected; `correct_positive`
    corrects it too, as in Yi et al., which makes a uniform prior equal to plain in-batch softmax."""

    def __init__(
        self,
        num_negatives: int = 255,
        remove_accidental_hits: bool = False,
        temperature: float = 1.0,
        correct_positive: bool = False,
    ):
        super().__init__(num_negatives, remove_accidental_hits, temperature)
        self.correct_positive = correct_positive

    def negative_correction(self, negatives: torch.Tensor, batch: ObjectiveInput) -> torch.Tensor:
        return -torch.log(batch.catalog.item_prior[negatives] + PRIOR_EPSILON)

    def positive_correction(self, batch: ObjectiveInput) -> torch.Tensor | float:
        if not self.correct_positive:
            return 0.0
        return -torch.log(batch.catalog.item_prior[batch.positives] + PRIOR_EPSILON)
