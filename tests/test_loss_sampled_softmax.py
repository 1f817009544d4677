"""Sampled softmax with the -log(k q(j)) correction against a loop; both samplers."""

from __future__ import annotations

import math

import pytest
import torch

from seqrec.losses.base import CatalogStats
from seqrec.losses.sampled_softmax import SampledSoftmax, draw_popular, draw_uniform


def reference_sampled_softmax(batch, negatives, probabilities, temperature, remove_accidental_hits) -> float:
    """Mean over positions of -log softmax([s+ / T, s_j / T - log(k q_j) ...])[0], one by one."""
    q, e = batch.queries.detach(), batch.item_embeddings.detach()
    k = len(negatives)
    total = 0.0
    for n in range(len(q)):
        positive = int(batch.positives[n])
        positive_logit = float(q[n] @ e[positive]) / temperature
        denominator = math.exp(positive_logit)
        for item in negatives.tolist():
            if remove_accidental_hits and item == positive:
                continue
            denominator += math.exp(float(q[n] @ e[item]) / temperature - math.log(k * probabilities[item]))
        total += math.log(denominator) - positive_logit
    return total / len(q)


@pytest.mark.parametrize("remove_accidental_hits", [True, False])
@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
def test_matches_reference(make_input, spy, sampling, remove_accidental_hits):
    counts = torch.tensor([1.0, 4.0, 2.0, 9.0, 3.0, 1.0, 6.0, 2.0, 5.0, 1.0], dtype=torch.float64)
    batch = make_input(num_items=10, item_counts=counts)
    objective = SampledSoftmax(7, sampling, remove_accidental_hits, temperature=0.7)
    draws = spy(objective, "draw_negatives")
    loss = objective(batch)
    negatives, _ = draws[0]
    probabilities = [0.1] * 10 if sampling == "uniform" else (counts / counts.sum()).tolist()
    expected = reference_sampled_softmax(batch, negatives, probabilities, 0.7, remove_accidental_hits)
    assert negatives.shape == (7,)
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_samplers_follow_their_distribution():
    counts = torch.tensor([0.0, 1.0, 3.0, 0.0, 6.0])
    catalog = CatalogStats(5, counts)
    torch.manual_seed(0)
    popular, log_q = draw_popular(catalog, 20_000, torch.device("cpu"))
    frequencies = torch.bincount(popular, minlength=5) / 20_000
    torch.testing.assert_close(frequencies, counts / 10, atol=0.015, rtol=0)
    torch.testing.assert_close(log_q, torch.log(counts / 10)[popular])
    uniform, log_q = draw_uniform(catalog, 20_000, torch.device("cpu"))
    torch.testing.assert_close(
        torch.bincount(uniform, minlength=5) / 20_000, torch.full((5,), 0.2), atol=0.015, rtol=0
    )
    torch.testing.assert_close(log_q, torch.full((20_000,), math.log(0.2)))


def test_gradients_reach_queries_and_items(make_input):
    batch = make_input()
    SampledSoftmax(num_negatives=4, sampling="popularity")(batch).backward()
    assert batch.queries.grad.abs().sum() > 0
    assert batch.item_embeddings.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        (dict(num_negatives=0), "loss.num_negatives"),
        (dict(sampling="zipf"), "loss.sampling"),
        (dict(remove_accidental_hits="no"), "loss.remove_accidental_hits"),
        (dict(temperature=0.0), "loss.temperature"),
    ],
)
def test_bad_hyperparameters_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        SampledSoftmax(**kwargs)
