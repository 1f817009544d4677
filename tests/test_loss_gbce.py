"""gBCE (gSASRec) against a literal transcription of the paper's formula, and its BCE limit."""

from __future__ import annotations

import math

import pytest
import torch

from seqrec.losses import sampling
from seqrec.losses.gbce import GBCE, pad_by_row


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def reference_gbce_paper(batch, negatives, t: float) -> float:
    """Petrov & Macdonald (2023), as in the gSASRec code: sigma(s+)^beta is fed to BCE through the
    logit transform log(1 / (sigma(s+)^-beta - 1)); loss = mean over positions of the mean BCE over
    the 1 + k logits. negatives: [B, k], one set per sequence row."""
    q, e = batch.queries.detach(), batch.item_embeddings.detach()
    num_items, k = batch.catalog.num_items, negatives.shape[1]
    alpha = k / (num_items - 1)
    beta = alpha * ((1 - 1 / alpha) * t + 1 / alpha)
    total = 0.0
    for n in range(len(q)):
        positive_probability = sigmoid(float(q[n] @ e[batch.positives[n]]))
        transformed = math.log(1 / (positive_probability**-beta - 1))
        terms = [-math.log(sigmoid(transformed))]
        for item in negatives[int(batch.rows[n])].tolist():
            terms.append(-math.log(1 - sigmoid(float(q[n] @ e[item]))))
        total += sum(terms) / len(terms)
    return total / len(q)


def reference_plain_bce(batch, negatives) -> float:
    """Mean BCE over all positive and negative logits with the row's negatives."""
    q, e = batch.queries.detach(), batch.item_embeddings.detach()
    terms = []
    for n in range(len(q)):
        terms.append(-math.log(sigmoid(float(q[n] @ e[batch.positives[n]]))))
        for item in negatives[int(batch.rows[n])].tolist():
            terms.append(-math.log(1 - sigmoid(float(q[n] @ e[item]))))
    return sum(terms) / len(terms)


def shuffled(batch):
    """The same positions in a random order: the loss must not assume row-major positions."""
    order = torch.randperm(len(batch.positives), generator=torch.Generator().manual_seed(5))
    queries = batch.queries.detach()[order].requires_grad_()
    return type(batch)(
        **(vars(batch) | dict(queries=queries, positives=batch.positives[order], rows=batch.rows[order]))
    )


@pytest.mark.parametrize("t", [0.75, 0.3, 1.0])
@pytest.mark.parametrize("reorder", [False, True])
def test_matches_paper_formula(make_input, spy, t, reorder):
    batch = make_input(num_items=50, lengths=(5, 3, 4, 1))
    batch = shuffled(batch) if reorder else batch
    draws = spy(sampling, "uniform_items")
    loss = GBCE(num_negatives=6, t=t)(batch)
    (negatives,) = draws
    assert negatives.shape == (4, 6)  # one set per sequence row
    assert loss.item() == pytest.approx(reference_gbce_paper(batch, negatives, t), rel=1e-9)


@pytest.mark.parametrize(("num_items", "t"), [(50, 0.0), (7, 0.75)])  # t = 0, or k = I - 1: beta = 1
def test_reduces_to_plain_bce_when_beta_is_one(make_input, spy, num_items, t):
    objective = GBCE(num_negatives=6, t=t)
    assert objective.beta(num_items) == pytest.approx(1.0)
    batch = make_input(num_items=num_items)
    draws = spy(sampling, "uniform_items")
    loss = objective(batch)
    assert loss.item() == pytest.approx(reference_plain_bce(batch, draws[0]), rel=1e-10)


def test_fully_calibrated_beta_is_the_sampling_rate():
    assert GBCE(num_negatives=256, t=1.0).beta(3417) == pytest.approx(256 / 3416)


def test_pad_by_row_keeps_order_within_rows():
    rows = torch.tensor([2, 0, 2, 2, 0, 3])
    values = torch.arange(6, dtype=torch.float32)[:, None].repeat(1, 2)
    padded, columns = pad_by_row(values, rows, num_rows=4)
    assert padded.shape == (4, 3, 2)
    assert columns.tolist() == [0, 0, 1, 2, 1, 0]
    torch.testing.assert_close(padded[rows, columns], values)
    assert padded[1].abs().sum() == 0  # a row without positions stays empty


def test_gradients_reach_queries_and_items(make_input):
    batch = make_input()
    GBCE(num_negatives=4)(batch).backward()
    assert batch.queries.grad.abs().sum() > 0
    assert batch.item_embeddings.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [(dict(num_negatives=0), "loss.num_negatives"), (dict(t=-0.1), "loss.t"), (dict(t=1.5), "loss.t")],
)
def test_bad_hyperparameters_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        GBCE(**kwargs)
