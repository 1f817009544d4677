"""Full softmax: cross-entropy over the whole catalog at every position."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from seqrec.errors import require
from seqrec.losses import sampling
from seqrec.losses.base import Objective, ObjectiveInput

# On CPU a chunk of about this many logits stays in the core's cache while it is used three times, but
# every chunk reads the whole item table, so a chunk has at least CPU_MIN_CHUNK_ROWS rows (measured).
CPU_CHUNK_LOGITS = 2**20
CPU_MIN_CHUNK_ROWS = 64


class Softmax(Objective):
    """Cross-entropy over all I items per position (protocol `softmax`).

    Computed chunk by chunk of positions (FusedSoftmaxCrossEntropy), never more than `max_logits`
    logits at a time (at least one row of I logits); on CPU in cache-sized chunks.

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
        num_items = len(item_embeddings)
        chunk_rows = self.max_logits // num_items
        if queries.device.type == "cpu":
            chunk_rows = min(chunk_rows, max(CPU_MIN_CHUNK_ROWS, CPU_CHUNK_LOGITS // num_items))
        chunk_rows = max(1, chunk_rows)
        return FusedSoftmaxCrossEntropy.apply(queries, item_embeddings, batch.positives, chunk_rows)


class FusedSoftmaxCrossEntropy(torch.autograd.Function):
    """mean_n [logsumexp_i(q_n . e_i) - q_n . e_{t_n}] over N queries, `chunk_rows` queries at a time.

    The gradients are computed in the forward pass while each chunk's logits are at hand (one pass over
    the N * I logits instead of three), and kept: [N, D] and [I, D]. With p_n = softmax(q_n E^T):
    d loss / d q_n = (p_n - onehot(t_n)) E / N and d loss / d E = sum_n (p_n - onehot(t_n))^T q_n / N.
    """

    @staticmethod
    def forward(
        ctx, queries: torch.Tensor, item_embeddings: torch.Tensor, targets: torch.Tensor, chunk_rows: int
    ) -> torch.Tensor:
        """queries: [N, D], item_embeddings: [I, D], targets: [N] int64 -> scalar."""
        need_queries, need_items = ctx.needs_input_grad[:2]
        grad_queries = torch.empty_like(queries) if need_queries else None
        grad_items = torch.zeros_like(item_embeddings) if need_items else None
        total = queries.new_zeros(())
        num_queries = len(queries)
        for start in range(0, num_queries, chunk_rows):
            chunk = slice(start, start + chunk_rows)
            logits = sampling.score_matrix(queries[chunk], item_embeddings)  # [C, I]
            rows = torch.arange(len(logits), device=logits.device)
            log_normalisers = torch.logsumexp(logits, dim=1)
            total += log_normalisers.sum() - logits[rows, targets[chunk]].sum()
            if not (need_queries or need_items):
                continue
            # (softmax - onehot) / N, written over the chunk's logits.
            weights = logits.sub_(log_normalisers[:, None]).exp_()
            weights[rows, targets[chunk]] -= 1.0
            weights.div_(num_queries)
            with torch.autocast(queries.device.type, enabled=False):
                if need_queries:
                    grad_queries[chunk] = weights @ item_embeddings
                if need_items:
                    grad_items.addmm_(weights.T, queries[chunk])
        ctx.save_for_backward(grad_queries, grad_items)
        return total / num_queries

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        grad_queries, grad_items = ctx.saved_tensors
        return (
            grad_queries * grad_output if grad_queries is not None else None,
            grad_items * grad_output if grad_items is not None else None,
            None,
            None,
        )
