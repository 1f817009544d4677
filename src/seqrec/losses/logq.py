"""In-batch negatives with the logQ popularity correction (Yi et al., RecSys 2019; protocol `logq`)."""

from __future__ import annotations

import torch

from seqrec.losses.base import ObjectiveInput
from seqrec.losses.inbatch import InBatch

# Keeps the log finite for items that never occur among the training inputs (protocol value).
PRIOR_EPSILON = 1e-9


class LogQ(InBatch):
    """As InBatch, but each negative logit j gets `- log(Q(j) + 1e-9)`, Q = the catalog's item
    prior (natural log); the positive logit is not corrected (protocol)."""

    def negative_correction(self, negatives: torch.Tensor, batch: ObjectiveInput) -> torch.Tensor:
        return -torch.log(batch.catalog.item_prior[negatives] + PRIOR_EPSILON)
