"""Full softmax: cross-entropy over the whole catalog at every position."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqrec.losses import sampling
from seqrec.losses.base import Objective, ObjectiveInput, require


class Softmax(Objective):
    """Cross-entropy over all I items per position (protocol `softmax`).

    Never materialises more than `max_logits` logits: small problems use dense logits, large ones
    an exact chunked logsumexp that recomputes each chunk's logits in the backward pass (at least
    one row of I logits per chunk).

    `detach_item_table` scores against a detached copy of the item table, so the loss sends no
    gradient into the table through the output side (the seminar's quirk: it scores against
    `weight.data`); the table then learns only through the backbone's input embeddings.
    """

    def __init__(self, temperature: float = 1.0, max_logits: int = 2**26, detach_item_table: bool = False):
        super().__init__()
        require(temperature > 0, f"loss.temperature must be > 0, got {temperature}")
        require(max_logits >= 1, f"loss.max_logits must be >= 1, got {max_logits}")
        require(
            isinstance(detach_item_table, bool),
            f"loss.detach_item_table must be true or false, got {detach_item_table!r}",
        )
        self.temperature = temperature
        self.max_logits = max_logits
        self.detach_item_table = detach_item_table

    def forward(self, batch: ObjectiveInput) -> torch.Tensor:
        queries = sampling.at_least_float32(batch.queries) / self.temperature
        table = batch.item_embeddings.detach() if self.detach_item_table else batch.item_embeddings
        item_embeddings = sampling.at_least_float32(table)
        num_queries, num_items = len(queries), len(item_embeddings)
        if num_queries * num_items <= self.max_logits:
            return F.cross_entropy(sampling.score_matrix(queries, item_embeddings), batch.positives)
        chunk_rows = max(1, self.max_logits // num_items)
        log_normalisers = ChunkedLogSumExp.apply(queries, item_embeddings, chunk_rows)  # [N]
        positive_logits = sampling.pair_scores(queries, item_embeddings[batch.positives])  # [N]
        return (log_normalisers - positive_logits).mean()


class ChunkedLogSumExp(torch.autograd.Function):
    """logsumexp_i(q_n . e_i) for every query row, computed `chunk_rows` rows at a time.

    Forward keeps only the [N] result; backward recomputes each chunk's logits, so peak memory is
    chunk_rows * I logits instead of N * I. Gradients: d lse_n / d q_n = sum_i p_ni e_i and
    d lse_n / d e_i = p_ni q_n with p_n = softmax(q_n E^T).
    """

    @staticmethod
    def forward(ctx, queries: torch.Tensor, item_embeddings: torch.Tensor, chunk_rows: int) -> torch.Tensor:
        """queries: [N, D], item_embeddings: [I, D] -> [N]."""
        log_normalisers = torch.cat(
            [
                torch.logsumexp(sampling.score_matrix(chunk, item_embeddings), dim=1)
                for chunk in queries.split(chunk_rows)
            ]
        )
        ctx.save_for_backward(queries, item_embeddings, log_normalisers)
        ctx.chunk_rows = chunk_rows
        return log_normalisers

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        queries, item_embeddings, log_normalisers = ctx.saved_tensors
        grad_queries = torch.empty_like(queries)
        grad_items = torch.zeros_like(item_embeddings)
        with torch.autocast(queries.device.type, enabled=False):
            for start in range(0, len(queries), ctx.chunk_rows):
                chunk = slice(start, start + ctx.chunk_rows)
                logits = sampling.score_matrix(queries[chunk], item_embeddings)
                # grad_output * softmax, written in place over the chunk's logits to save memory.
                weights = logits.sub_(log_normalisers[chunk, None]).exp_().mul_(grad_output[chunk, None])
                grad_queries[chunk] = weights @ item_embeddings
                grad_items.addmm_(weights.T, queries[chunk])
        return grad_queries, grad_items, None
