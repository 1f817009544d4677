"""Sampled evaluation as the original SASRec code draws it (evaluation.replacement, evaluation.exclude)."""

from __future__ import annotations

import pytest
import torch

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
from seqrec.data.types import EvalSamples
from seqrec.evaluation import SampledCandidates

# Training events end where each user's first sample starts: A's are 0..2, B's 8..9, C's 14.
TRAIN_END = {0: 3, 8: 10, 14: 15}


def samples_with_training() -> EvalSamples:
    samples = make_samples()
    train_end = torch.tensor([TRAIN_END[start] for start, _ in WINDOWS])
    return EvalSamples(samples.user, samples.history_start, samples.history_end, samples.target, train_end)


def repeated_sample(repeats: int) -> EvalSamples:
    """History 0, 1, 2 (training: 0, 1), target 3, `repeats` times, over item_seq [0, 1, 2, 3]."""
    column = torch.ones(repeats, dtype=torch.int64)
    return EvalSamples(0 * column, 0 * column, 3 * column, 3 * column, 2 * column)


def test_training_exclusion_lets_the_target_and_later_history_be_drawn():
    item_seq = torch.tensor([0, 1, 2, 3])
    protocol = SampledCandidates(num_negatives=4, ks=[1], seed=0, exclude="training")
    candidates = protocol.draw_candidates(repeated_sample(2000), item_seq, 10)
    counts = torch.bincount(candidates.reshape(-1), minlength=10)
    assert counts[:2].sum() == 0  # the training items never
    # Items 2..9 are allowed (8 of them): the later history item 2 and the target 3 included, uniformly.
    expected = 2000 * 4 / 8
    assert torch.all((counts[2:] - expected).abs() < 0.06 * expected)
    history = SampledCandidates(num_negatives=4, ks=[1], seed=0).draw_candidates(
        repeated_sample(50), item_seq, 10
    )
    assert not set(history.reshape(-1).tolist()) & {0, 1, 2, 3}


def test_draws_with_replacement_are_independent_and_uniform():
    item_seq = torch.tensor([0, 1, 2, 3])
    protocol = SampledCandidates(num_negatives=6, ks=[1], seed=1, replacement=True)
    candidates = protocol.draw_candidates(repeated_sample(3000), item_seq, 10)
    counts = torch.bincount(candidates.reshape(-1), minlength=10)
    assert counts[:4].sum() == 0  # history and target excluded (exclude=history)
    expected = 3000 * 6 / 6
    assert torch.all((counts[4:] - expected).abs() < 0.06 * expected)
    # With 6 draws from 6 items a row has a repeat with probability 1 - 6!/6^6 = 0.985.
    rows_with_repeats = sum(len(set(row)) < 6 for row in candidates.tolist())
    assert 0.97 * 3000 < rows_with_repeats <= 3000
    # More draws than allowed items is fine with replacement.
    many = SampledCandidates(num_negatives=30, ks=[1], replacement=True).draw_candidates(
        repeated_sample(3), item_seq, 10
    )
    assert many.shape == (3, 30) and set(many.reshape(-1).tolist()) <= set(range(4, 10))


@pytest.mark.parametrize("replacement", [False, True])
def test_original_draws_rank_every_draw_against_the_target(replacement):
    table, item_seq, samples = score_table(2), torch.tensor(ITEM_SEQ), samples_with_training()
    protocol = SampledCandidates(num_negatives=9, ks=KS, seed=5, replacement=replacement, exclude="training")
    result = protocol.evaluate(window_score_fn(table), samples, item_seq, MAX_SEQ_LEN, NUM_ITEMS)
    candidates = protocol.draw_candidates(samples, item_seq, NUM_ITEMS).tolist()
    ranks = []
    for (start, end), negatives in zip(WINDOWS, candidates, strict=True):
        assert not set(negatives) & set(ITEM_SEQ[start : TRAIN_END[start]])
        row, target = brute_force_scores(table, start, end), ITEM_SEQ[end]
        # Every draw counts, a repeated one once per draw; a draw of the target itself ties and counts.
        ranks.append(1 + sum(row[item] >= row[target] for item in negatives))
    assert result.ranks.tolist() == ranks
    assert result.metrics["hitrate@3"] == pytest.approx(sum(r <= 3 for r in ranks) / len(ranks))


def test_training_exclusion_needs_marked_training_events():
    protocol = SampledCandidates(num_negatives=3, ks=[1], exclude="training")
    with pytest.raises(ValueError, match="exclude=training needs"):
        protocol.draw_candidates(make_samples(), torch.tensor(ITEM_SEQ), NUM_ITEMS)


def test_no_allowed_item_is_an_error():
    item_seq = torch.tensor([0, 1, 2, 3])
    protocol = SampledCandidates(num_negatives=3, ks=[1], replacement=True)
    with pytest.raises(ValueError, match="no item to draw"):
        protocol.draw_candidates(repeated_sample(2), item_seq, 4)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [(dict(replacement="yes"), "evaluation.replacement"), (dict(exclude="seen"), "evaluation.exclude")],
)
def test_bad_settings_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        SampledCandidates(num_negatives=3, ks=[1], **kwargs)
