"""Bounded-memory evaluation vs the previous dense implementation (kept here as the reference).

The reference materialised the whole [B, I] score matrix per batch plus several same-sized temporaries;
the protocols now bound the scores in flight (evaluation.max_scores) and must give bit-identical results.
"""

from __future__ import annotations

import pytest
import torch

from seqrec.data.types import EvalSamples
from seqrec.evaluation import FullCatalog, SampledCandidates, seen_item_mask, top_candidates
from seqrec.metrics import RankingMetrics, check_ks, target_ranks, top_k_items

INF = float("inf")
NUM_ITEMS, KS = 40, [1, 5, 20]


def reference_top_k_items(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The previous implementation: top-k set rebuilt with an [S, I] cumsum of the ties."""
    kth_score = scores.topk(k, dim=1).values[:, -1:]
    above = scores > kth_score
    tied = scores == kth_score
    free_slots = k - above.sum(1, keepdim=True)
    selected = above | (tied & (tied.cumsum(1) <= free_slots))
    items = selected.to(torch.uint8).topk(k, dim=1).indices.sort(dim=1).values
    order = scores.gather(1, items).sort(dim=1, descending=True, stable=True).indices
    return items.gather(1, order)


def reference_metrics(batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], ks) -> tuple:
    """(metrics, ranks) of the previous RankingMetrics from (masked scores, targets, ranks) batches."""
    ks, max_k = check_ks(ks), max(ks)
    covered = torch.zeros(len(ks), NUM_ITEMS, dtype=torch.bool)
    all_ranks = []
    for scores, targets, ranks in batches:
        top = reference_top_k_items(scores, max_k)
        for row, k in enumerate(ks):
            covered[row, top[:, :k].reshape(-1)] = True
        all_ranks.append(target_ranks(scores, targets) if ranks is None else ranks)
    ranks = torch.cat(all_ranks).to(torch.float64)
    gains = 1.0 / torch.log2(ranks + 1.0)
    metrics = {f"dcg@{k}": float(torch.where(ranks <= k, gains, 0.0).mean()) for k in ks}
    metrics |= {f"hitrate@{k}": float((ranks <= k).to(torch.float64).mean()) for k in ks}
    metrics |= {
        f"coverage@{k}": count / NUM_ITEMS for k, count in zip(ks, covered.sum(1).tolist(), strict=True)
    }
    return metrics, torch.cat(all_ranks)


def tied_scores(rows: int, seed: int) -> torch.Tensor:
    """Integer scores 0..3 (heavy ties), ~20% -inf, a few rows entirely -inf or constant."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 4, (rows, NUM_ITEMS), generator=generator).float()
    scores = scores.masked_fill(torch.rand(rows, NUM_ITEMS, generator=generator) < 0.2, -INF)
    scores[0] = -INF
    scores[1] = 2.0
    scores[2, :35] = -INF  # only 5 finite items: the top-20 reaches into the -inf ties
    return scores


def random_split(num_samples: int, seed: int, max_history: int = 60) -> tuple[EvalSamples, torch.Tensor]:
    """Samples over random user histories of 1..max_history events (the model window is 5)."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, max_history + 2, (num_samples,), generator=generator)
    starts = torch.cumsum(lengths, 0) - lengths
    item_seq = torch.randint(0, NUM_ITEMS, (int(lengths.sum()),), generator=generator)
    ends = starts + lengths - 1
    samples = EvalSamples(torch.arange(num_samples), starts, ends, item_seq[ends])
    return samples, item_seq


@pytest.mark.parametrize("seed", range(4))
def test_top_k_items_equal_previous_implementation_and_stable_sort(seed):
    scores = tied_scores(64, seed)
    stable = torch.sort(scores, dim=1, descending=True, stable=True).indices
    for k in (1, 3, 5, 20, NUM_ITEMS):
        new = top_k_items(scores, k)
        assert torch.equal(new, reference_top_k_items(scores, k)), k
        assert torch.equal(new, stable[:, :k]), k


class RowScores:
    """score_fn returning fixed per-sample rows in sample order, whatever the batch size; logs batch sizes."""

    def __init__(self, scores: torch.Tensor):
        self.scores, self.next_row, self.batch_sizes = scores, 0, []

    def __call__(self, inputs: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        rows = slice(self.next_row, self.next_row + len(inputs))
        self.next_row += len(inputs)
        self.batch_sizes.append(len(inputs))
        return self.scores[rows].clone()


@pytest.mark.parametrize("exclude_seen", [False, True])
@pytest.mark.parametrize("max_scores", [1, 3 * NUM_ITEMS, 2**26])
@pytest.mark.parametrize("seed", range(3))
def test_full_catalog_equals_previous_dense_implementation(exclude_seen, max_scores, seed):
    samples, item_seq = random_split(50, seed)
    scores = tied_scores(50, seed + 10)
    batch_size = 16
    score_fn = RowScores(scores)
    result = FullCatalog(KS, exclude_seen, batch_size, max_scores).evaluate(
        score_fn, samples, item_seq, 5, NUM_ITEMS
    )
    assert max(score_fn.batch_sizes) == max(1, min(batch_size, max_scores // NUM_ITEMS))

    batches = []
    for begin in range(0, 50, batch_size):
        rows = slice(begin, begin + batch_size)
        batch_scores, targets = scores[rows], samples.target[rows]
        if exclude_seen:
            seen = seen_item_mask(item_seq, samples.history_start[rows], samples.history_end[rows], NUM_ITEMS)
            seen[torch.arange(len(targets)), targets] = False
            batch_scores = batch_scores.masked_fill(seen, -INF)
        batches.append((batch_scores, targets, None))
    metrics, ranks = reference_metrics(batches, KS)
    assert torch.equal(result.ranks, ranks)
    # equal up to rounding: seqrec sums the gains in numpy (seqrec.sample_metrics), the reference in torch
    assert result.metrics == pytest.approx(metrics, rel=1e-14, abs=0)


@pytest.mark.parametrize("replacement", [False, True])
@pytest.mark.parametrize("max_scores", [1, 3 * NUM_ITEMS, 2**26])
@pytest.mark.parametrize("seed", range(3))
def test_sampled_equals_previous_dense_implementation(replacement, max_scores, seed):
    samples, item_seq = random_split(50, seed, max_history=12)
    scores = tied_scores(50, seed + 20)
    scores[3] = -INF  # every candidate -inf: the top lists come from the -inf ties over the whole catalog
    settings = dict(num_negatives=24, ks=KS, seed=seed, replacement=replacement)
    protocol = SampledCandidates(**settings, batch_size=16, max_scores=max_scores)
    result = protocol.evaluate(RowScores(scores), samples, item_seq, 5, NUM_ITEMS)

    negatives = SampledCandidates(**settings).draw_candidates(samples, item_seq, NUM_ITEMS)
    if replacement:
        assert any(len(set(row)) < len(row) for row in negatives.tolist())  # repeats occur
    assert torch.equal(protocol.candidates(samples, item_seq, NUM_ITEMS), negatives)
    batches = []
    for begin in range(0, 50, 16):
        rows = slice(begin, begin + 16)
        batch_scores, targets, batch_negatives = scores[rows], samples.target[rows], negatives[rows]
        target_scores = batch_scores.gather(1, targets[:, None])
        ranks = 1 + (batch_scores.gather(1, batch_negatives) >= target_scores).sum(1)
        competing = torch.zeros_like(batch_scores, dtype=torch.bool)
        competing.scatter_(1, torch.cat([batch_negatives, targets[:, None]], dim=1), True)
        batches.append((batch_scores.masked_fill(~competing, -INF), targets, ranks))
    metrics, ranks = reference_metrics(batches, KS)
    assert torch.equal(result.ranks, ranks)
    # equal up to rounding: seqrec sums the gains in numpy (seqrec.sample_metrics), the reference in torch
    assert result.metrics == pytest.approx(metrics, rel=1e-14, abs=0)


@pytest.mark.parametrize("seed", range(3))
def test_top_candidates_equal_top_k_of_the_masked_catalog(seed):
    generator = torch.Generator().manual_seed(seed)
    scores = tied_scores(30, seed + 30)
    scores[3] = -INF
    candidates = torch.rand(30, NUM_ITEMS, generator=generator).argsort(dim=1)[:, :8]  # distinct per row
    candidates[::2, 5:] = candidates[::2, :3]  # every other row repeats three of its candidates
    candidate_scores = scores.gather(1, candidates)
    masked = torch.full_like(scores, -INF).scatter_(1, candidates, candidate_scores)
    for k in (1, 5, 8):  # rows with repeats have 5 distinct candidates: k=8 reaches the -inf items
        expected = reference_top_k_items(masked, k)
        assert torch.equal(top_candidates(scores, candidates, candidate_scores, k), expected)
    assert top_candidates(scores, candidates, candidate_scores, 1)[3].item() == 0  # all -inf: lowest id


def test_metrics_update_equals_previous_on_a_large_tied_batch():
    scores = tied_scores(300, seed=9)
    targets = torch.randint(0, NUM_ITEMS, (300,), generator=torch.Generator().manual_seed(9))
    metrics = RankingMetrics(KS, NUM_ITEMS)
    metrics.update(scores, targets)
    expected, ranks = reference_metrics([(scores, targets, None)], KS)
    assert torch.equal(metrics.ranks(), ranks)
    assert metrics.compute() == expected


def test_bad_max_scores_names_the_key():
    with pytest.raises(ValueError, match=r"evaluation\.max_scores"):
        FullCatalog(max_scores=0)
    with pytest.raises(ValueError, match=r"evaluation\.max_scores"):
        SampledCandidates(max_scores=0)
