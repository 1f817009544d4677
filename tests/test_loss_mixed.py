"""Mixed Negative Sampling against a loop: in-batch draws corrected by -log Q, uniform ones by log I."""

from __future__ import annotations

import math

import pytest
import torch

from seqrec.losses import sampling
from seqrec.losses.mixed import Mixed


def reference_mixed(batch, in_batch, uniform, temperature, remove_accidental_hits) -> float:
    """Mean over positions of -log softmax([s+, s_j - log(Q_j + 1e-9) ..., s_u + log I ...] / T)[0]."""
    q, e = batch.queries.detach(), batch.item_embeddings.detach()
    counts = batch.catalog.train_item_counts.tolist()
    num_items = batch.catalog.num_items
    corrected = [(item, -math.log(counts[item] / sum(counts) + 1e-9)) for item in in_batch.tolist()]
    corrected += [(item, -math.log(1 / num_items)) for item in uniform.tolist()]
    total = 0.0
    for n in range(len(q)):
        positive = int(batch.positives[n])
        positive_logit = float(q[n] @ e[positive]) / temperature
        denominator = math.exp(positive_logit)
        for item, correction in corrected:
            if remove_accidental_hits and item == positive:
                continue
            denominator += math.exp(float(q[n] @ e[item]) / temperature + correction)
        total += math.log(denominator) - positive_logit
    return total / len(q)


@pytest.mark.parametrize("remove_accidental_hits", [True, False])
@pytest.mark.parametrize(("num_in_batch", "temperature"), [(4, 1.0), (100, 0.4)])
def test_matches_reference(make_input, spy, num_in_batch, temperature, remove_accidental_hits):
    counts = torch.tensor([3.0, 0.0, 1.0, 8.0, 2.0, 5.0, 1.0, 4.0, 2.0], dtype=torch.float64)
    batch = make_input(num_items=9, item_counts=counts)
    pool_draws = spy(sampling, "pool_indices")
    uniform_draws = spy(sampling, "uniform_items")
    loss = Mixed(num_in_batch, 5, remove_accidental_hits, temperature)(batch)
    in_batch, uniform = batch.positives[pool_draws[0]], uniform_draws[0]
    assert len(in_batch) == min(num_in_batch, len(batch.positives)) and uniform.shape == (5,)
    expected = reference_mixed(batch, in_batch, uniform, temperature, remove_accidental_hits)
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_gradients_reach_queries_and_items(make_input):
    batch = make_input()
    Mixed(num_in_batch=3, num_uniform=3)(batch).backward()
    assert batch.queries.grad.abs().sum() > 0
    assert batch.item_embeddings.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        (dict(num_in_batch=0), "loss.num_in_batch"),
        (dict(num_uniform=0), "loss.num_uniform"),
        (dict(remove_accidental_hits=None), "loss.remove_accidental_hits"),
        (dict(temperature=-0.5), "loss.temperature"),
    ],
)
def test_bad_hyperparameters_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        Mixed(**kwargs)
