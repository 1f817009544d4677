"""Evaluation protocols against brute force on a hand-built split of three users."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from evaluation_split import (
    ITEM_SEQ,
    KS,
    MAX_SEQ_LEN,
    NUM_ITEMS,
    WINDOWS,
    brute_force_scores,
    make_samples,
    score_table,
    window_score_fn,
)
from seqrec.data.types import DataError, EvalSamples
from seqrec.evaluation import EvaluationResult, FullCatalog, SampledCandidates, seen_item_mask

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
CONF = Path(__file__).resolve().parents[1] / "conf" / "evaluation"


def order_of(row: list[float]) -> list[int]:
    return sorted(range(len(row)), key=lambda item: (-row[item], item))


def metrics_from(ranks: list[int], orders: list[list[int]], ks: list[int]) -> dict[str, float]:
    result = {
        f"dcg@{k}": sum(1 / math.log2(r + 1) if r <= k else 0.0 for r in ranks) / len(ranks) for k in ks
    }
    result |= {f"hitrate@{k}": sum(r <= k for r in ranks) / len(ranks) for k in ks}
    result |= {f"coverage@{k}": len({i for order in orders for i in order[:k]}) / NUM_ITEMS for k in ks}
    return result


def brute_force_full(table: torch.Tensor, exclude_seen: bool) -> tuple[list[int], dict[str, float]]:
    ranks, orders = [], []
    for start, end in WINDOWS:
        row, target = brute_force_scores(table, start, end), ITEM_SEQ[end]
        if exclude_seen:
            for item in set(ITEM_SEQ[start:end]) - {target}:
                row[item] = -math.inf
        orders.append(order_of(row))
        ranks.append(orders[-1].index(target) + 1)
    return ranks, metrics_from(ranks, orders, KS)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("exclude_seen", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_full_catalog_matches_brute_force(device, exclude_seen, seed):
    table = score_table(seed)
    protocol = FullCatalog(ks=KS, exclude_seen=exclude_seen, batch_size=3)
    item_seq = torch.tensor(ITEM_SEQ, device=device)
    result = protocol.evaluate(
        window_score_fn(table.to(device)), make_samples(), item_seq, MAX_SEQ_LEN, NUM_ITEMS
    )
    ranks, metrics = brute_force_full(table, exclude_seen)
    assert isinstance(result, EvaluationResult)
    assert result.ranks.device.type == "cpu" and result.ranks.dtype == torch.int64
    assert result.ranks.tolist() == ranks
    assert result.metrics == pytest.approx(metrics)


def test_exclude_seen_masks_exactly_the_history_except_the_target():
    # Constant scores: the unmasked items tie and rank by id, masked items come after all of them.
    def constant(inputs, lengths, users):
        return torch.zeros(len(inputs), NUM_ITEMS)

    result = FullCatalog(ks=KS, exclude_seen=True).evaluate(
        constant, make_samples(), torch.tensor(ITEM_SEQ), MAX_SEQ_LEN, NUM_ITEMS
    )
    for (start, end), rank in zip(WINDOWS, result.ranks.tolist(), strict=True):
        target, seen = ITEM_SEQ[end], set(ITEM_SEQ[start:end])  # whole history, beyond the model's window
        assert rank == 1 + sum(1 for item in range(target) if item not in seen or item == target)
    repeated = [rank for (_, end), rank in zip(WINDOWS, result.ranks.tolist(), strict=True) if end == 3]
    assert repeated == [2]  # target 1 repeats history item 1 and still competes: only item 0 is ahead


def test_seen_item_mask_is_exact():
    samples = make_samples()
    mask = seen_item_mask(torch.tensor(ITEM_SEQ), samples.history_start, samples.history_end, NUM_ITEMS)
    expected = [[item in set(ITEM_SEQ[s:e]) for item in range(NUM_ITEMS)] for s, e in WINDOWS]
    assert mask.tolist() == expected


@pytest.mark.parametrize(
    "protocol_class", [FullCatalog, functools.partial(SampledCandidates, num_negatives=8)]
)
def test_batch_size_does_not_change_results(protocol_class):
    score_fn = window_score_fn(score_table(5))
    results = [
        protocol_class(ks=KS, batch_size=batch_size).evaluate(
            score_fn, make_samples(), torch.tensor(ITEM_SEQ), MAX_SEQ_LEN, NUM_ITEMS
        )
        for batch_size in (1, 2, 7, 100)
    ]
    for result in results[1:]:
        assert torch.equal(result.ranks, results[0].ranks)
        assert result.metrics == results[0].metrics


def test_sampled_candidates_avoid_history_and_target_and_are_reproducible():
    samples, item_seq = make_samples(), torch.tensor(ITEM_SEQ)
    candidates = SampledCandidates(num_negatives=8, ks=KS, seed=3).draw_candidates(
        samples, item_seq, NUM_ITEMS
    )
    assert candidates.shape == (len(WINDOWS), 8) and candidates.dtype == torch.int64
    for (start, end), row in zip(WINDOWS, candidates.tolist(), strict=True):
        assert len(set(row)) == 8
        assert not set(row) & (set(ITEM_SEQ[start:end]) | {ITEM_SEQ[end]})
        assert all(0 <= item < NUM_ITEMS for item in row)
    again = SampledCandidates(num_negatives=8, ks=KS, seed=3).draw_candidates(samples, item_seq, NUM_ITEMS)
    assert torch.equal(candidates, again)
    other_seed = SampledCandidates(num_negatives=8, ks=KS, seed=4).draw_candidates(
        samples, item_seq, NUM_ITEMS
    )
    assert not torch.equal(candidates, other_seed)


def test_sampled_candidates_are_uniform_over_unseen_items():
    # One history {0, 1} with target 2, repeated: items 3..9 are each drawn with probability 3/7.
    item_seq, repeats = torch.tensor([0, 1, 2]), 3000
    samples = EvalSamples(
        torch.zeros(repeats, dtype=torch.int64),
        torch.zeros(repeats, dtype=torch.int64),
        torch.full((repeats,), 2),
        torch.full((repeats,), 2),
    )
    candidates = SampledCandidates(num_negatives=3, ks=[1], seed=0).draw_candidates(samples, item_seq, 10)
    counts = torch.bincount(candidates.reshape(-1), minlength=10)
    assert counts[:3].sum() == 0
    assert torch.all((counts[3:] - repeats * 3 / 7).abs() < 0.05 * repeats * 3 / 7)


@pytest.mark.parametrize("device", DEVICES)
def test_sampled_evaluation_matches_brute_force(device):
    table, item_seq, samples = score_table(1), torch.tensor(ITEM_SEQ, device=device), make_samples()
    protocol = SampledCandidates(num_negatives=5, ks=KS, batch_size=2, seed=7)
    result = protocol.evaluate(window_score_fn(table.to(device)), samples, item_seq, MAX_SEQ_LEN, NUM_ITEMS)
    candidates = (
        SampledCandidates(num_negatives=5, ks=KS, seed=7)
        .draw_candidates(samples, item_seq, NUM_ITEMS)
        .tolist()
    )
    ranks, orders = [], []
    for (start, end), negatives in zip(WINDOWS, candidates, strict=True):
        row, target = brute_force_scores(table, start, end), ITEM_SEQ[end]
        ranks.append(1 + sum(row[item] >= row[target] for item in negatives))  # ties count against the target
        competing = set(negatives) | {target}
        orders.append(order_of([score if item in competing else -math.inf for item, score in enumerate(row)]))
    assert result.ranks.tolist() == ranks
    assert all(1 <= rank <= 6 for rank in ranks)
    assert result.metrics == pytest.approx(metrics_from(ranks, orders, KS))
    repeated = protocol.evaluate(window_score_fn(table.to(device)), samples, item_seq, MAX_SEQ_LEN, NUM_ITEMS)
    assert torch.equal(repeated.ranks, result.ranks) and repeated.metrics == result.metrics


def test_sampled_ties_count_against_the_target():
    def constant(inputs, lengths, users):
        return torch.ones(len(inputs), NUM_ITEMS)

    result = SampledCandidates(num_negatives=4, ks=[1]).evaluate(
        constant, make_samples(), torch.tensor(ITEM_SEQ), MAX_SEQ_LEN, NUM_ITEMS
    )
    assert result.ranks.tolist() == [5] * len(WINDOWS)
    assert result.metrics["hitrate@1"] == 0.0


def test_sampled_history_items_never_compete():
    # Each sample's history items score 10, its target 5, everything else 0: the target must rank 1.
    scores = torch.zeros(len(WINDOWS), NUM_ITEMS)
    for row, (start, end) in enumerate(WINDOWS):
        scores[row, ITEM_SEQ[start:end]] = 10.0
        scores[row, ITEM_SEQ[end]] = 5.0
    protocol = SampledCandidates(num_negatives=12, ks=[1], batch_size=len(WINDOWS))
    result = protocol.evaluate(
        lambda inputs, lengths, users: scores, make_samples(), torch.tensor(ITEM_SEQ), 3, NUM_ITEMS
    )
    assert result.ranks.tolist() == [1] * len(WINDOWS)


def test_sampled_too_few_unseen_items_raises():
    protocol = SampledCandidates(num_negatives=14, ks=[1])  # user A's last sample has 13 unseen items
    with pytest.raises(ValueError, match=r"evaluation\.num_negatives=14 exceeds the 13 items"):
        protocol.draw_candidates(make_samples(), torch.tensor(ITEM_SEQ), NUM_ITEMS)
    with pytest.raises(ValueError, match=r"evaluation\.num_negatives=100 must be below the catalog size 20"):
        SampledCandidates().draw_candidates(make_samples(), torch.tensor(ITEM_SEQ), NUM_ITEMS)


def test_bad_settings_name_the_config_key():
    with pytest.raises(ValueError, match=r"evaluation\.num_negatives"):
        SampledCandidates(num_negatives=0)
    with pytest.raises(ValueError, match=r"evaluation\.ks"):
        SampledCandidates(num_negatives=5, ks=[10])  # only 6 candidates per sample
    with pytest.raises(ValueError, match=r"evaluation\.batch_size"):
        FullCatalog(batch_size=0)
    with pytest.raises(ValueError, match=r"evaluation\.ks"):
        FullCatalog(ks=[0])
    with pytest.raises(ValueError, match=r"evaluation\.ks"):
        FullCatalog(ks=[50]).evaluate(
            window_score_fn(score_table()), make_samples(), torch.tensor(ITEM_SEQ), MAX_SEQ_LEN, NUM_ITEMS
        )


def test_bad_inputs_get_clear_errors():
    item_seq = torch.tensor(ITEM_SEQ)
    with pytest.raises(ValueError, match=r"score_fn must return \[7, 20\]"):
        FullCatalog().evaluate(lambda x, n, u: torch.zeros(len(x), 3), make_samples(), item_seq, 3, NUM_ITEMS)
    empty = EvalSamples(*(torch.zeros(0, dtype=torch.int64) for _ in range(4)))
    with pytest.raises(DataError, match="0 samples"):
        FullCatalog().evaluate(window_score_fn(score_table()), empty, item_seq, 3, NUM_ITEMS)
    with pytest.raises(DataError, match="item ids in 0..8"):
        FullCatalog(ks=[1]).evaluate(window_score_fn(score_table()), make_samples(), item_seq, 3, 9)


def test_yaml_options_instantiate_with_documented_defaults():
    full = hydra.utils.instantiate(OmegaConf.load(CONF / "full.yaml"))
    assert isinstance(full, FullCatalog)
    assert (full.ks, full.exclude_seen, full.batch_size) == ((5, 10, 20), False, 256)
    sampled = hydra.utils.instantiate(OmegaConf.load(CONF / "sampled.yaml"))
    assert isinstance(sampled, SampledCandidates)
    assert (sampled.num_negatives, sampled.ks, sampled.seed) == (100, (5, 10, 20), 0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("exclude_seen", [False, True])
def test_both_conventions_in_one_pass_equal_two_separate_evaluations(device, exclude_seen):
    table = score_table(4)
    item_seq = torch.tensor(ITEM_SEQ, device=device)
    arguments = (window_score_fn(table.to(device)), make_samples(), item_seq, MAX_SEQ_LEN, NUM_ITEMS)
    both = FullCatalog(ks=KS, exclude_seen=exclude_seen, batch_size=2).evaluate(
        *arguments, both_conventions=True
    )
    primary = FullCatalog(ks=KS, exclude_seen=exclude_seen).evaluate(*arguments)
    other = FullCatalog(ks=KS, exclude_seen=not exclude_seen).evaluate(*arguments)
    assert both.ranks.tolist() == primary.ranks.tolist() and both.metrics == primary.metrics
    assert both.other.ranks.tolist() == other.ranks.tolist() and both.other.metrics == other.metrics
    assert both.other.ranks.tolist() == brute_force_full(table, not exclude_seen)[0]
    assert primary.other is None
