"""Ranking metrics vs a pure-Python reference (sorted lists, explicit tie rule) and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqrec.metrics import RankingMetrics, check_ks, target_ranks, top_k_items
from seqrec.sample_metrics import dcg_gains, hits, metric_from_ranks

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
INF = float("inf")


def reference_order(row: list[float]) -> list[int]:
    """Item ids best first: score descending, equal scores by lower id."""
    return sorted(range(len(row)), key=lambda item: (-row[item], item))


def reference_metrics(scores: list[list[float]], targets: list[int], ks: list[int]) -> dict[str, float]:
    orders = [reference_order(row) for row in scores]
    ranks = [order.index(target) + 1 for order, target in zip(orders, targets, strict=True)]
    metrics = {}
    for k in ks:
        metrics[f"dcg@{k}"] = sum(1 / math.log2(r + 1) if r <= k else 0.0 for r in ranks) / len(ranks)
    for k in ks:
        metrics[f"hitrate@{k}"] = sum(r <= k for r in ranks) / len(ranks)
    for k in ks:
        metrics[f"coverage@{k}"] = len({item for order in orders for item in order[:k]}) / len(scores[0])
    return metrics


def random_scores(num_samples: int, num_items: int, seed: int, ties: bool) -> torch.Tensor:
    """Random scores; with ties: integers 0..3 (heavy ties) and about 20% -inf (masked items)."""
    generator = torch.Generator().manual_seed(seed)
    if not ties:
        return torch.randn(num_samples, num_items, generator=generator)
    scores = torch.randint(0, 4, (num_samples, num_items), generator=generator).float()
    masked = torch.rand(num_samples, num_items, generator=generator) < 0.2
    return scores.masked_fill(masked, -INF)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_target_ranks_match_reference(device, ties, seed):
    scores = random_scores(30, 9, seed, ties)
    targets = torch.randint(0, 9, (30,), generator=torch.Generator().manual_seed(seed + 100))
    expected = [
        reference_order(row).index(t) + 1 for row, t in zip(scores.tolist(), targets.tolist(), strict=True)
    ]
    ranks = target_ranks(scores.to(device), targets.to(device))
    assert ranks.dtype == torch.int64
    assert ranks.cpu().tolist() == expected


def test_target_ranks_hand_computed():
    scores = torch.tensor(
        [
            [0.1, 0.9, 0.5, 0.3],  # target 0 is the lowest score
            [1.0, 1.0, 1.0, 1.0],  # all tied: rank = 1 + number of lower ids
            [1.0, 1.0, 1.0, 1.0],
            [-INF, 2.0, -INF, 0.0],  # a masked target ranks after every finite score, then by id
            [-INF, 2.0, -INF, 0.0],
            [2.0, 2.0, 5.0, 1.0],  # one higher, one tie with a lower id
        ]
    )
    targets = torch.tensor([0, 0, 3, 0, 2, 1])
    assert target_ranks(scores, targets).tolist() == [4, 1, 4, 3, 4, 3]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_top_k_items_match_stable_sort(device, ties, seed):
    scores = random_scores(40, 11, seed, ties).to(device)
    stable = torch.sort(scores, dim=1, descending=True, stable=True).indices
    for k in range(1, 12):
        items = top_k_items(scores, k)
        assert items.dtype == torch.int64 and items.shape == (40, k)
        assert torch.equal(items, stable[:, :k]), k
    expected = [reference_order(row)[:5] for row in scores.cpu().tolist()]
    assert top_k_items(scores, 5).cpu().tolist() == expected


def test_top_k_items_tie_across_boundary():
    # Three items tie for the 2nd place: the two lowest ids among them fill the top-3, in id order.
    scores = torch.tensor([[1.0, 3.0, 1.0, 0.0, 1.0], [-INF, -INF, -INF, -INF, -INF]])
    assert top_k_items(scores, 3).tolist() == [[1, 0, 2], [0, 1, 2]]
    with pytest.raises(ValueError, match="k must be in 1..5"):
        top_k_items(scores, 6)


def test_hand_computed_metrics():
    # Target ranks 1, 3 and 5 over 6 items.
    scores = torch.tensor(
        [
            [6.0, 5.0, 4.0, 3.0, 2.0, 1.0],  # target 0 -> rank 1, top-3 {0, 1, 2}
            [1.0, 6.0, 5.0, 4.0, 3.0, 2.0],  # target 3 -> rank 3, top-3 {1, 2, 3}
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],  # target 1 -> rank 5, top-3 {5, 4, 3}
        ]
    )
    metrics = RankingMetrics([1, 3], num_items=6)
    metrics.update(scores, torch.tensor([0, 3, 1]))
    assert metrics.ranks().tolist() == [1, 3, 5]
    result = metrics.compute()
    assert list(result) == ["dcg@1", "dcg@3", "hitrate@1", "hitrate@3", "coverage@1", "coverage@3"]
    assert result["hitrate@1"] == pytest.approx(1 / 3)
    assert result["hitrate@3"] == pytest.approx(2 / 3)
    assert result["dcg@1"] == pytest.approx(1 / 3)
    assert result["dcg@3"] == pytest.approx((1 + 1 / math.log2(4)) / 3)  # 1/log2(4) = 0.5
    assert result["dcg@3"] == pytest.approx(0.5)
    assert result["coverage@1"] == pytest.approx(3 / 6)  # top-1 items 0, 1, 5
    assert result["coverage@3"] == pytest.approx(6 / 6)  # overlapping lists cover every item once


def test_coverage_counts_overlapping_lists_once():
    scores = torch.tensor([[3.0, 2.0, 1.0, 0.0, 0.0], [0.0, 3.0, 2.0, 0.0, 0.0], [3.0, 2.0, 0.0, 0.0, 0.0]])
    metrics = RankingMetrics([2], num_items=5)
    metrics.update(scores, torch.tensor([0, 1, 4]))
    assert metrics.compute()["coverage@2"] == pytest.approx(3 / 5)  # {0, 1} | {1, 2} | {0, 1}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(3))
def test_metrics_match_reference_with_ties_and_inf(device, seed):
    scores = random_scores(50, 12, seed, ties=True)
    targets = torch.randint(0, 12, (50,), generator=torch.Generator().manual_seed(seed + 7))
    ks = [1, 3, 5, 12]
    metrics = RankingMetrics(ks, num_items=12)
    metrics.update(scores.to(device), targets.to(device))
    expected = reference_metrics(scores.tolist(), targets.tolist(), ks)
    assert metrics.compute() == pytest.approx(expected)


def test_accumulating_batches_equals_one_batch():
    scores = random_scores(37, 10, seed=3, ties=True)
    targets = torch.randint(0, 10, (37,), generator=torch.Generator().manual_seed(4))
    whole = RankingMetrics([1, 5, 10], num_items=10)
    whole.update(scores, targets)
    batched = RankingMetrics([1, 5, 10], num_items=10)
    for rows in (slice(0, 5), slice(5, 6), slice(6, 30), slice(30, 37)):
        batched.update(scores[rows], targets[rows])
    assert torch.equal(batched.ranks(), whole.ranks())
    assert batched.compute() == whole.compute()


def test_add_takes_ranks_and_top_lists_ranked_elsewhere():
    metrics = RankingMetrics([1, 2], num_items=3)
    metrics.add(torch.tensor([[0, 1], [1, 2]]), torch.tensor([2, 1]), torch.zeros(2, 5))
    assert metrics.ranks().tolist() == [2, 1]
    assert metrics.compute() == {
        "dcg@1": 0.5,
        "dcg@2": pytest.approx((1 / math.log2(3) + 1) / 2),
        "hitrate@1": 0.5,
        "hitrate@2": 1.0,
        "coverage@1": pytest.approx(2 / 3),
        "coverage@2": 1.0,
    }
    with pytest.raises(ValueError, match=r"top_items must be \[batch, 2\]"):
        metrics.add(torch.tensor([[0], [1]]), torch.tensor([2, 1]), torch.zeros(2, 5))
    metrics.add(torch.tensor([[0, 1]]), torch.tensor([1]), torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="NaN"):
        metrics.compute()


def test_nan_scores_fail_at_compute():
    metrics = RankingMetrics([1], num_items=3)
    metrics.update(torch.tensor([[0.0, float("nan"), 1.0]]), torch.tensor([1]))
    with pytest.raises(ValueError, match="NaN"):
        metrics.compute()


@pytest.mark.parametrize("ks", [[], [0, 5], [5, 5], [2.5], [True], [5, 11]])
def test_bad_ks_name_the_config_key(ks):
    with pytest.raises(ValueError, match=r"evaluation\.ks"):
        RankingMetrics(ks, num_items=10)


def test_check_ks_accepts_any_sequence_and_shapes_are_checked():
    assert check_ks((5, 10, 20)) == (5, 10, 20)
    metrics = RankingMetrics([1], num_items=3)
    with pytest.raises(ValueError, match=r"\[batch, 3\]"):
        metrics.update(torch.zeros(2, 4), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="targets"):
        metrics.update(torch.zeros(2, 3), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="at least one sample"):
        metrics.compute()


def test_per_sample_values_by_hand():
    ranks = np.array([1, 2, 3, 10, 11])
    assert dcg_gains(ranks, k=10).tolist() == pytest.approx(
        [1.0, 1 / math.log2(3), 0.5, 1 / math.log2(11), 0.0]
    )
    assert hits(ranks, k=3).tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert metric_from_ranks("hitrate@3", ranks) == pytest.approx(0.6)
    assert metric_from_ranks("dcg@2", ranks) == pytest.approx((1 + 1 / math.log2(3)) / 5)
    for name in ("coverage@10", "dcg", "dcg@x"):
        assert metric_from_ranks(name, ranks) is None
    assert metric_from_ranks("dcg@10", np.array([], dtype=np.int64)) is None


def test_ranking_metrics_are_the_means_of_the_per_sample_values():
    generator = torch.Generator().manual_seed(0)
    scores, targets = torch.randn(40, 30, generator=generator), torch.randint(30, (40,), generator=generator)
    metrics = RankingMetrics([1, 5, 10], num_items=30)
    metrics.update(scores, targets)
    ranks = target_ranks(scores, targets).numpy()
    computed = metrics.compute()
    for k in (1, 5, 10):
        assert computed[f"dcg@{k}"] == metric_from_ranks(f"dcg@{k}", ranks)
        assert computed[f"hitrate@{k}"] == float(np.mean(ranks <= k))
