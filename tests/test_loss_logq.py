"""In-batch negatives with the logQ correction (protocol `logq`) against a loop."""

from __future__ import annotations

import math

import pytest
import torch

from seqrec.losses import sampling
from seqrec.losses.inbatch import InBatch
from seqrec.losses.logq import LogQ


def reference_logq(batch, negatives, temperature, remove_accidental_hits) -> float:
    """Mean over positions of -log softmax([s+ / T, s_j / T - log(Q(j) + 1e-9) ...])[0], one by one."""
    q, e = batch.queries.detach(), batch.item_embeddings.detach()
    counts = batch.catalog.train_item_counts.tolist()
    total = 0.0
    for n in range(len(q)):
        positive = int(batch.positives[n])
        positive_logit = float(q[n] @ e[positive]) / temperature  # the positive is not corrected
        denominator = math.exp(positive_logit)
        for item in negatives.tolist():
            if remove_accidental_hits and item == positive:
                continue
            share = counts[item] / sum(counts)
            denominator += math.exp(float(q[n] @ e[item]) / temperature - math.log(share + 1e-9))
        total += math.log(denominator) - positive_logit
    return total / len(q)


@pytest.mark.parametrize("remove_accidental_hits", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_matches_reference(make_input, spy, temperature, remove_accidental_hits):
    counts = torch.tensor([5.0, 0.0, 1.0, 30.0, 2.0, 7.0, 0.0, 1.0], dtype=torch.float64)  # zeros: epsilon
    batch = make_input(num_items=8, item_counts=counts)
    draws = spy(sampling, "pool_indices")
    loss = LogQ(num_negatives=6, remove_accidental_hits=remove_accidental_hits, temperature=temperature)(
        batch
    )
    negatives = batch.positives[draws[0]]
    expected = reference_logq(batch, negatives, temperature, remove_accidental_hits)
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_popular_negatives_are_penalised_less_than_rare_ones(make_input):
    """Correcting by -log Q lowers the loss contribution of popular items being pushed down."""
    counts = torch.ones(12, dtype=torch.float64)
    rare = make_input(item_counts=counts)
    counts_popular = counts.clone()
    counts_popular[rare.positives] = 1000.0  # every pool item becomes popular
    popular = make_input(item_counts=counts_popular)
    torch.manual_seed(0)
    loss_rare = LogQ(num_negatives=5)(rare)
    torch.manual_seed(0)
    loss_popular = LogQ(num_negatives=5)(popular)
    assert loss_popular < loss_rare


def test_reuses_inbatch():
    assert issubclass(LogQ, InBatch)


def test_gradients_reach_queries_and_items(make_input):
    batch = make_input()
    LogQ(num_negatives=4)(batch).backward()
    assert batch.queries.grad.abs().sum() > 0
    assert batch.item_embeddings.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [(dict(num_negatives=0), "loss.num_negatives"), (dict(temperature=0), "loss.temperature")],
)
def test_bad_hyperparameters_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        LogQ(**kwargs)


def test_zero_first_item_prior_reproduces_the_seminar_statistics(make_input, spy):
    """Q(0) = 0 after counting while the total keeps item 0's count: its correction is -log(1e-9)."""
    counts = torch.tensor([50.0, 3.0, 1.0, 30.0, 2.0, 7.0, 4.0, 1.0], dtype=torch.float64)
    batch = make_input(
        num_items=8, item_counts=counts, positives=torch.tensor([0, 1, 2, 3, 0, 5, 6, 0, 3, 4, 0, 2])
    )
    draws = spy(sampling, "pool_indices")
    loss = LogQ(num_negatives=8, zero_first_item_prior=True)(batch)
    negatives = batch.positives[draws[0]]
    assert 0 in negatives.tolist()
    q, e = batch.queries.detach(), batch.item_embeddings.detach()
    total = 0.0
    for n in range(len(q)):
        positive_logit = float(q[n] @ e[int(batch.positives[n])])
        denominator = math.exp(positive_logit)
        for item in negatives.tolist():
            share = 0.0 if item == 0 else counts[item].item() / counts.sum().item()
            denominator += math.exp(float(q[n] @ e[item]) - math.log(share + 1e-9))
        total += math.log(denominator) - positive_logit
    assert loss.item() == pytest.approx(total / len(q), rel=1e-10)
    torch.manual_seed(0)
    plain = LogQ(num_negatives=8)(batch)
    assert loss.item() > plain.item() + 5  # item 0 as a negative now dominates the denominator
