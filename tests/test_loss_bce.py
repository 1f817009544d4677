"""BCE (original SASRec) against a per-logit loop, negative draws, seen-item exclusion."""

from __future__ import annotations

import math

import pytest
import torch

from seqrec.losses import sampling
from seqrec.losses.base import ObjectiveInput
from seqrec.losses.bce import BCE


def reference_bce(batch, negatives: torch.Tensor) -> float:
    """Mean of -log sigmoid(s+) and -log(1 - sigmoid(s-)) over every logit, one by one."""
    q, e = batch.queries.detach(), batch.item_embeddings.detach()
    terms = []
    for n in range(len(q)):
        positive = float(q[n] @ e[batch.positives[n]])
        terms.append(-math.log(1 / (1 + math.exp(-positive))))
        for item in negatives[n].tolist():
            negative = float(q[n] @ e[item])
            terms.append(-math.log(1 - 1 / (1 + math.exp(-negative))))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("num_negatives", [1, 3])
def test_matches_reference(make_input, spy, num_negatives):
    batch = make_input()
    draws = spy(sampling, "uniform_items")
    loss = BCE(num_negatives=num_negatives)(batch)
    (negatives,) = draws
    assert negatives.shape == (len(batch.positives), num_negatives)
    assert loss.item() == pytest.approx(reference_bce(batch, negatives), rel=1e-10)


def test_protocol_negatives_are_uniform_over_the_whole_catalog(make_input, spy):
    batch = make_input(num_items=5, lengths=(200, 200))
    draws = spy(sampling, "uniform_items")
    BCE()(batch)
    counts = torch.bincount(draws[0].flatten(), minlength=5)
    # Every item is drawn, including each position's own positive somewhere: no exclusion.
    assert torch.all(counts > 50)
    assert torch.any(draws[0][:, 0] == batch.positives)


def seen_by_row(batch) -> list[set[int]]:
    seen = []
    for row, length in enumerate(batch.lengths.tolist()):
        items = set(batch.sequences[row, :length].tolist())
        seen.append(items | set(batch.positives[batch.rows == row].tolist()))
    return seen


def test_exclude_seen_redraws_every_seen_negative(make_input, spy):
    batch = make_input(num_items=40, lengths=(8, 3, 6, 1))
    resampled = spy(sampling, "resample_seen")
    loss = BCE(num_negatives=20, exclude_seen=True)(batch)
    (negatives,) = resampled
    seen = seen_by_row(batch)
    for n, row in enumerate(batch.rows.tolist()):
        assert not set(negatives[n].tolist()) & seen[row]
    assert loss.item() == pytest.approx(reference_bce(batch, negatives), rel=1e-10)


def test_exclude_seen_uses_the_whole_training_sequence_when_given(make_input, spy):
    """The original code excludes every training item of the user, also those older than the window."""
    batch = make_input(num_items=40, lengths=(8, 3, 6, 1))
    # Items only in the part of each history left of the window (none for row 2).
    unseen = [sorted(set(range(40)) - seen) for seen in seen_by_row(batch)]
    older = [unseen[0][:3], unseen[1][:1], [], unseen[3][:2]]
    item_seq, starts, ends = [], [], []
    for row, length in enumerate(batch.lengths.tolist()):
        starts.append(len(item_seq))
        item_seq += older[row] + batch.sequences[row, :length].tolist()
        item_seq += batch.positives[batch.rows == row][-1:].tolist()
        ends.append(len(item_seq))
    batch = ObjectiveInput(
        **(vars(batch) | dict(item_seq=torch.tensor(item_seq), history_start=torch.tensor(starts)))
        | dict(history_end=torch.tensor(ends))
    )
    resampled = spy(sampling, "resample_seen")
    torch.manual_seed(0)
    BCE(num_negatives=30, exclude_seen=True)(batch)
    (negatives,) = resampled
    for n, row in enumerate(batch.rows.tolist()):
        assert not set(negatives[n].tolist()) & set(item_seq[starts[row] : ends[row]])
    old_item = negatives.new_full(negatives.shape, older[0][0])
    window_only = sampling.resample_seen(
        old_item, batch.positives, batch.rows, batch.sequences, batch.lengths, 40
    )
    assert torch.all(window_only[batch.rows == 0] == older[0][0]), "the window alone misses older items"


def test_resample_seen_only_touches_seen_negatives(make_input):
    batch = make_input(num_items=40, lengths=(8, 3, 6))
    torch.manual_seed(1)
    negatives = torch.randint(40, (len(batch.positives), 30))
    result = sampling.resample_seen(
        negatives, batch.positives, batch.rows, batch.sequences, batch.lengths, num_items=40
    )
    seen = seen_by_row(batch)
    for n, row in enumerate(batch.rows.tolist()):
        for before, after in zip(negatives[n].tolist(), result[n].tolist(), strict=True):
            assert after not in seen[row]
            if before not in seen[row]:
                assert after == before


def test_gradients_reach_queries_and_items(make_input):
    batch = make_input()
    BCE(num_negatives=2)(batch).backward()
    assert batch.queries.grad.abs().sum() > 0
    assert batch.item_embeddings.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [(dict(num_negatives=0), "loss.num_negatives"), (dict(exclude_seen="yes"), "loss.exclude_seen")],
)
def test_bad_hyperparameters_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        BCE(**kwargs)
