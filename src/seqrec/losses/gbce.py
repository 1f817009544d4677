"""Generalised binary cross-entropy of gSASRec (Petrov & Macdonald, RecSys 2023)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqrec.errors import ConfigError, require
from seqrec.losses import sampling
from seqrec.losses.base import DataSizes, Objective, ObjectiveInput


class GBCE(Objective):
    """BCE whose positive term is raised to the power beta, undoing the overconfidence that
    negative sampling causes. k uniform negatives per sequence row, shared by the row's positions;
    alpha = k / (I - 1) is the sampling rate and beta = alpha * (t * (1 - 1/alpha) + 1/alpha), so
    t = 0 gives plain BCE (beta = 1) and t = 1 gives beta = alpha. Loss per position:
    (-beta * log sigmoid(s+) - sum_j log(1 - sigmoid(s_j))) / (1 + k), averaged over positions.
    """

    def __init__(self, num_negatives: int = 256, t: float = 0.75):
        super().__init__()
        require(num_negatives >= 1, f"loss.num_negatives must be >= 1, got {num_negatives}")
        require(0.0 <= t <= 1.0, f"loss.t must be in [0, 1], got {t}")
        self.num_negatives = num_negatives
        self.t = t

    def effective_settings(self, sizes: DataSizes) -> dict[str, list[int]]:
        """More negatives than other items make alpha > 1 and (unless t = 0) beta > 1: not gSASRec's
        calibration, and the draws have replacement, so nothing caps them to a value that is: refused."""
        if self.num_negatives > sizes.num_items - 1 and self.beta(sizes.num_items) > 1:
            raise ConfigError(
                f"loss.num_negatives={self.num_negatives} exceeds the {sizes.num_items - 1} other items of "
                f"the {sizes.num_items}-item catalog: gSASRec's sampling rate alpha = k / (I - 1) would be "
                f"above 1 (beta = {self.beta(sizes.num_items):.3g} > 1); set loss.num_negatives <= "
                f"{sizes.num_items - 1}"
            )
        return {}

    def beta(self, num_items: int) -> float:
        """The power applied to the positive's sigmoid for a catalog of num_items items."""
        alpha = self.num_negatives / (num_items - 1)
        return alpha * (self.t * (1 - 1 / alpha) + 1 / alpha)

    def forward(self, batch: ObjectiveInput) -> torch.Tensor:
        num_rows, num_items = len(batch.sequences), batch.catalog.num_items
        negatives = sampling.uniform_items(num_items, (num_rows, self.num_negatives), batch.queries.device)
        # Lay the queries out per row so one bmm scores them against their row's negatives:
        # memory B * k * D for the negative embeddings instead of N * k * D.
        padded_queries, columns = pad_by_row(batch.queries, batch.rows, num_rows)  # [B, M, D], [N]
        row_logits = sampling.batched_score_matrix(padded_queries, batch.item_embeddings[negatives])
        negative_logits = row_logits[batch.rows, columns]  # [N, k]
        positive_logits = sampling.pair_scores(batch.queries, batch.item_embeddings[batch.positives])
        positive_terms = self.beta(num_items) * F.softplus(-positive_logits)  # -beta * log sigmoid(s+)
        negative_terms = F.softplus(negative_logits).sum(dim=1)  # -sum_j log(1 - sigmoid(s_j))
        return (positive_terms + negative_terms).mean() / (1 + self.num_negatives)


def pad_by_row(values: torch.Tensor, rows: torch.Tensor, num_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter values [N, D] into [B, M, D] (M = most positions in one row), keeping their order
    within each row; returns the padded tensor and each value's column [N] int64."""
    order = torch.argsort(rows, stable=True)
    counts = torch.bincount(rows, minlength=num_rows)
    row_starts = torch.cumsum(counts, 0) - counts
    columns = torch.empty_like(rows)
    columns[order] = torch.arange(len(rows), device=rows.device) - row_starts[rows[order]]
    padded = values.new_zeros(num_rows, int(counts.max()), values.shape[1])
    padded[rows, columns] = values
    return padded, columns
