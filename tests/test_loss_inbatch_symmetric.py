"""Symmetric in-batch loss against a loop over the [S, S] logit matrix's rows and columns."""

from __future__ import annotations

import math

import pytest

from seqrec.losses import sampling
from seqrec.losses.inbatch_symmetric import InBatchSymmetric


def reference_symmetric(batch, chosen, temperature, remove_accidental_hits=True) -> float:
    """(user -> item CE over rows + item -> user CE over columns) / 2; a pair (i, j != i) with
    the same item as the diagonal entry is left out of the normaliser (unless remove_accidental_hits is
    false: then every pair counts, the tutorial's labels = range(S))."""
    q, e = batch.queries.detach(), batch.item_embeddings.detach()
    users = chosen.tolist()
    items = [int(batch.positives[s]) for s in users]

    def logit(i: int, j: int) -> float:
        return float(q[users[i]] @ e[items[j]]) / temperature

    size = len(users)
    row_loss = column_loss = 0.0
    for i in range(size):
        others = [j for j in range(size) if j == i or items[j] != items[i] or not remove_accidental_hits]
        row_loss += math.log(sum(math.exp(logit(i, j)) for j in others)) - logit(i, i)
        column_loss += math.log(sum(math.exp(logit(j, i)) for j in others)) - logit(i, i)
    return (row_loss + column_loss) / (2 * size)


@pytest.mark.parametrize(("num_negatives", "temperature"), [(4, 0.1), (255, 0.7)])
def test_matches_reference(make_input, spy, num_negatives, temperature):
    batch = make_input(num_items=5)  # few items: repeated positives exercise the mask
    draws = spy(sampling, "pool_indices")
    loss = InBatchSymmetric(num_negatives, temperature)(batch)
    (chosen,) = draws
    assert len(chosen) == min(num_negatives + 1, len(batch.positives))
    assert len(set(chosen.tolist())) == len(chosen)
    assert loss.item() == pytest.approx(reference_symmetric(batch, chosen, temperature), rel=1e-10)


@pytest.mark.parametrize("remove_accidental_hits", [True, False])
def test_repeated_items_are_negatives_only_without_removal(make_input, spy, remove_accidental_hits):
    batch = make_input(num_items=3)  # every position's item repeats somewhere in the batch
    draws = spy(sampling, "pool_indices")
    loss = InBatchSymmetric(255, 0.05, remove_accidental_hits=remove_accidental_hits)(batch)
    (chosen,) = draws
    expected = reference_symmetric(batch, chosen, 0.05, remove_accidental_hits)
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    other = reference_symmetric(batch, chosen, 0.05, not remove_accidental_hits)
    assert loss.item() != pytest.approx(other, rel=1e-6)


def test_gradients_reach_queries_and_items(make_input):
    batch = make_input()
    InBatchSymmetric(num_negatives=5)(batch).backward()
    assert batch.queries.grad.abs().sum() > 0
    assert batch.item_embeddings.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        (dict(num_negatives=0), "loss.num_negatives"),
        (dict(temperature=0.0), "loss.temperature"),
        (dict(remove_accidental_hits="no"), "loss.remove_accidental_hits"),
    ],
)
def test_bad_hyperparameters_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        InBatchSymmetric(**kwargs)
