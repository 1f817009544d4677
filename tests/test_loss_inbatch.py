"""In-batch negatives (protocol `inbatch`) against a loop over positions and negatives."""

from __future__ import annotations

import math

import pytest
import torch

from seqrec.losses import sampling
from seqrec.losses.inbatch import InBatch


def reference_inbatch(
    batch, negatives, temperature=1.0, remove_accidental_hits=False, correction=None
) -> float:
    """Mean over positions of -log softmax([s+, s_1 + c_1, ..., s_k + c_k] / T)[0], loop by loop.

    correction: optional function item -> additive correction of a negative logit (after T)."""
    q, e = batch.queries.detach(), batch.item_embeddings.detach()
    total = 0.0
    for n in range(len(q)):
        positive = int(batch.positives[n])
        logits = [float(q[n] @ e[positive]) / temperature]
        for item in negatives.tolist():
            if remove_accidental_hits and item == positive:
                continue
            logits.append(float(q[n] @ e[item]) / temperature)
        total += -logits[0] + math.log(sum(math.exp(s) for s in logits))
    return total / len(q)


@pytest.mark.parametrize("remove_accidental_hits", [False, True])
@pytest.mark.parametrize(("num_negatives", "temperature"), [(5, 1.0), (100, 0.5)])
def test_matches_reference(make_input, spy, num_negatives, temperature, remove_accidental_hits):
    batch = make_input(num_items=6)  # few items: many accidental hits
    draws = spy(sampling, "pool_indices")
    objective = InBatch(num_negatives, remove_accidental_hits, temperature)
    loss = objective(batch)
    negatives = batch.positives[draws[0]]
    expected = reference_inbatch(batch, negatives, temperature, remove_accidental_hits)
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_draws_distinct_pool_entries_shared_by_all_positions(make_input, spy):
    batch = make_input(lengths=(4, 3))  # N = 7
    draws = spy(sampling, "pool_indices")
    InBatch(num_negatives=5)(batch)
    InBatch(num_negatives=255)(batch)
    assert len(draws[0]) == 5 and len(set(draws[0].tolist())) == 5
    assert sorted(draws[1].tolist()) == list(range(7))  # min(255, N) = all of the pool


def test_protocol_keeps_accidental_hits(make_input, spy):
    batch = make_input(num_items=3)
    draws = spy(sampling, "pool_indices")
    torch.manual_seed(0)
    kept = InBatch(num_negatives=10)(batch)
    torch.manual_seed(0)  # same draws: the two losses differ only by the hits
    removed = InBatch(num_negatives=10, remove_accidental_hits=True)(batch)
    torch.testing.assert_close(draws[0], draws[1])
    negatives = batch.positives[draws[0]]
    assert torch.any(sampling.accidental_hits(batch.positives, negatives))
    assert kept.item() == pytest.approx(reference_inbatch(batch, negatives), rel=1e-10)
    assert kept.item() != pytest.approx(removed.item())


def test_gradients_reach_queries_and_items(make_input):
    batch = make_input()
    InBatch(num_negatives=4)(batch).backward()
    assert batch.queries.grad.abs().sum() > 0
    assert batch.item_embeddings.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        (dict(num_negatives=0), "loss.num_negatives"),
        (dict(remove_accidental_hits=1), "loss.remove_accidental_hits"),
        (dict(temperature=-1.0), "loss.temperature"),
    ],
)
def test_bad_hyperparameters_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        InBatch(**kwargs)
