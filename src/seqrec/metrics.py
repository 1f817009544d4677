"""Ranking metrics on score matrices, one positive target per sample.

Tie rule everywhere: items are ordered by score descending, equal scores by the lower item id first
(what a stable descending sort gives). -inf marks items that do not compete; they rank last.
All functions run on the scores' device; target_ranks and top_k_items synchronise once per call (to
find the rows with ties, which they handle row by row). Temporaries stay at a quarter of the memory of
the scores (one bool mask at a time), so a caller bounds memory by bounding the scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from seqrec.sample_metrics import dcg_gains, hits


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based rank of each target: 1 + #{j: s_j > s_t} + #{j < t: s_j == s_t}.

    scores: [S, I] float; targets: [S] int64. Returns [S] int64. Two passes over the scores (one [S, I]
    bool mask at a time); the rows where other items tie with the target take a third, row by row.
    """
    target_scores = scores.gather(1, targets[:, None])
    # int32 sums of bool masks are about twice as fast as the default int64 ones.
    higher = (scores > target_scores).sum(1, dtype=torch.int32)
    tied = (scores == target_scores).sum(1, dtype=torch.int32)  # the target itself included
    ranks = 1 + higher.to(torch.int64)
    for row in (tied > 1).nonzero().flatten().tolist():
        target = int(targets[row])
        ranks[row] += (scores[row, :target] == target_scores[row]).sum()
    return ranks


def top_k_items(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The k best items of every row, best first, exactly under the tie rule.

    scores: [S, I] float. Returns [S, k] int64, equal to torch.sort(scores, descending=True,
    stable=True).indices[:, :k]. One torch.topk; the rows whose ties cross the k-th place take a pass
    more, row by row.
    """
    num_items = scores.shape[1]
    if not 1 <= k <= num_items:
        raise ValueError(f"k must be in 1..{num_items} (the number of items), got {k}")
    # torch.topk gets the best scores right but picks arbitrary items among ties. Its first k items are
    # the exact set unless the (k+1)-th best score equals the k-th: then ties cross the k-th place.
    values, items = scores.topk(min(k + 1, num_items), dim=1)
    if k < num_items:
        inexact = (values[:, k] == values[:, k - 1]).nonzero().flatten().tolist()
        values, items = values[:, :k], items[:, :k].contiguous()
        for row in inexact:
            items[row] = _top_k_with_tied_lowest_ids(scores[row], values[row], items[row])
    # Order the exact set best first, ties by lower id: sort by id, then stably by score.
    items = items.sort(dim=1).values
    order = scores.gather(1, items).sort(dim=1, descending=True, stable=True).indices
    return items.gather(1, order)


def _top_k_with_tied_lowest_ids(
    row_scores: torch.Tensor, values: torch.Tensor, items: torch.Tensor
) -> torch.Tensor:
    """For one row of scores [I] with its topk values/items [k]: the items above the k-th score (topk
    lists them first) followed by the lowest-id items tied with it, [k] int64 (unordered)."""
    k = len(values)
    num_above = int((values > values[-1]).sum())
    lowest_tied = (row_scores == values[-1]).nonzero().flatten()[: k - num_above]  # ids ascend
    return torch.cat([items[:num_above], lowest_tied])


def check_ks(ks: Sequence[int], num_items: int | None = None) -> tuple[int, ...]:
    """Validated metric cut-offs as a tuple; ValueError naming `evaluation.ks` otherwise."""
    ks = tuple(ks)
    if not ks:
        raise ValueError("evaluation.ks must list at least one cut-off, e.g. [5, 10, 20]")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"evaluation.ks must hold positive integers, got {list(ks)}")
        if num_items is not None and k > num_items:
            raise ValueError(f"evaluation.ks={list(ks)} has a cut-off above the catalog size {num_items}")
    if len(set(ks)) != len(ks):
        raise ValueError(f"evaluation.ks must not repeat a cut-off, got {list(ks)}")
    return ks


class RankingMetrics:
    """DCG@k, HitRate@k and Coverage@k accumulated over evaluation batches.

    HitRate@k and DCG@k are means of per-sample values (seqrec.sample_metrics: DCG equals NDCG with one
    positive); Coverage@k = #distinct items in all samples' top-k lists / num_items.
    """

    def __init__(self, ks: Sequence[int], num_items: int):
        if num_items < 1:
            raise ValueError(f"num_items must be >= 1, got {num_items}")
        self.ks = check_ks(ks, num_items)
        self.num_items = num_items
        self.max_k = max(self.ks)
        self._ranks: list[torch.Tensor] = []
        # Allocated on the first batch's device: [len(ks), I] bool items seen in a top-k list, NaN flag.
        self._covered: torch.Tensor | None = None
        self._saw_nan: torch.Tensor | None = None

    def update(self, scores: torch.Tensor, targets: torch.Tensor) -> None:
        """Add a batch: scores [B, I] float, targets [B] int64; ranks and top-k lists by the tie rule."""
        if scores.ndim != 2 or scores.shape[1] != self.num_items:
            raise ValueError(f"scores must be [batch, {self.num_items}], got {list(scores.shape)}")
        if targets.shape != scores.shape[:1]:
            raise ValueError(f"targets must be [{scores.shape[0]}], got {list(targets.shape)}")
        self.add(top_k_items(scores, self.max_k), target_ranks(scores, targets), scores)

    def add(self, top_items: torch.Tensor, ranks: torch.Tensor, scores: torch.Tensor) -> None:
        """Add a batch ranked elsewhere (e.g. among sampled candidates, with their own tie rule).

        top_items: [B, max_k] int64 best first; ranks: [B] int64; scores: the scores they came from
        (any shape), checked for NaN.
        """
        if top_items.ndim != 2 or top_items.shape[1] != self.max_k or ranks.shape != top_items.shape[:1]:
            raise ValueError(
                f"top_items must be [batch, {self.max_k}] and ranks [batch], "
                f"got {list(top_items.shape)} and {list(ranks.shape)}"
            )
        if self._covered is None:
            self._covered = torch.zeros(len(self.ks), self.num_items, dtype=torch.bool, device=ranks.device)
            self._saw_nan = torch.zeros((), dtype=torch.bool, device=ranks.device)
        # NaN would silently get rank 1; remember it on the device and fail in compute(). max propagates NaN.
        self._saw_nan |= scores.amax().isnan()
        for row, k in enumerate(self.ks):
            self._covered[row, top_items[:, :k].reshape(-1)] = True
        self._ranks.append(ranks)

    def ranks(self) -> torch.Tensor:
        """[S] int64 on the CPU: every sample's target rank, in update order."""
        if not self._ranks:
            return torch.zeros(0, dtype=torch.int64)
        return torch.cat(self._ranks).cpu()

    def compute(self) -> dict[str, float]:
        """{'dcg@k', 'hitrate@k', 'coverage@k'} for every k, as Python floats."""
        if not self._ranks:
            raise ValueError("RankingMetrics.compute() needs at least one sample; nothing was added")
        if self._saw_nan:
            raise ValueError(
                "the model produced NaN scores; metrics would be meaningless (check for divergence)"
            )
        ranks = self.ranks().numpy()
        dcg = {f"dcg@{k}": float(dcg_gains(ranks, k).mean()) for k in self.ks}
        hitrate = {f"hitrate@{k}": float(hits(ranks, k).mean()) for k in self.ks}
        covered = self._covered.sum(1).tolist()
        coverage = {
            f"coverage@{k}": count / self.num_items for k, count in zip(self.ks, covered, strict=True)
        }
        return dcg | hitrate | coverage
