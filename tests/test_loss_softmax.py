"""Full softmax vs a loop (values), chunk sizes vs one chunk (gradients), gradcheck, memory bound."""

from __future__ import annotations

import math

import pytest
import torch

from seqrec.losses import sampling
from seqrec.losses.base import CatalogStats, ObjectiveInput
from seqrec.losses.softmax import Softmax


def reference_softmax(batch, temperature: float = 1.0) -> float:
    """Mean over positions of log sum_i exp(s_i / T) - s_pos / T, one position at a time."""
    q, e = batch.queries.detach(), batch.item_embeddings.detach()
    total = 0.0
    for n in range(len(q)):
        logits = [float(q[n] @ e[i]) / temperature for i in range(len(e))]
        top = max(logits)
        log_normaliser = top + math.log(sum(math.exp(s - top) for s in logits))
        total += log_normaliser - logits[int(batch.positives[n])]
    return total / len(q)


@pytest.mark.parametrize("temperature", [1.0, 0.3])
@pytest.mark.parametrize("max_logits", [2**26, 30, 1])
def test_dense_and_chunked_match_reference(make_input, temperature, max_logits):
    batch = make_input(num_items=12)  # 12 positions x 12 items = 144 logits: max_logits < 144 is chunked
    loss = Softmax(temperature=temperature, max_logits=max_logits)(batch)
    assert loss.item() == pytest.approx(reference_softmax(batch, temperature), rel=1e-10)


def autograd_reference(batch, temperature: float, scale: float):
    """Gradients of scale * loss through F.cross_entropy on all logits, by autograd."""
    queries = batch.queries.detach().requires_grad_()
    item_embeddings = batch.item_embeddings.detach().requires_grad_()
    logits = (queries / temperature) @ item_embeddings.T
    (scale * torch.nn.functional.cross_entropy(logits, batch.positives)).backward()
    return queries.grad, item_embeddings.grad


@pytest.mark.parametrize("max_logits", [2**26, 30, 12, 1])
@pytest.mark.parametrize("scale", [1.0, -2.5])
def test_gradients_equal_autograd_of_cross_entropy(make_input, max_logits, scale):
    batch = make_input(seed=3)
    (scale * Softmax(temperature=0.5, max_logits=max_logits)(batch)).backward()
    expected = autograd_reference(batch, 0.5, scale)
    assert expected[0].abs().sum() > 0 and expected[1].abs().sum() > 0
    torch.testing.assert_close(batch.queries.grad, expected[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(batch.item_embeddings.grad, expected[1], rtol=1e-10, atol=1e-12)


def test_frozen_item_table_gets_no_gradient(make_input):
    batch = make_input(seed=4)
    frozen = ObjectiveInput(**(vars(batch) | dict(item_embeddings=batch.item_embeddings.detach())))
    Softmax()(frozen).backward()
    assert frozen.item_embeddings.grad is None
    torch.testing.assert_close(
        batch.queries.grad, autograd_reference(batch, 1.0, 1.0)[0], rtol=1e-10, atol=1e-12
    )


def test_chunked_gradcheck(make_input):
    batch = make_input(num_items=7, lengths=(3, 2), dim=4)
    objective = Softmax(max_logits=10)

    def loss(queries, item_embeddings):
        return objective(
            ObjectiveInput(**(vars(batch) | dict(queries=queries, item_embeddings=item_embeddings)))
        )

    assert torch.autograd.gradcheck(loss, (batch.queries, batch.item_embeddings))


def test_large_catalog_never_materialises_all_logits(spy):
    num_items, num_queries, max_logits = 200_000, 64, 2**20
    torch.manual_seed(0)
    queries = torch.randn(num_queries, 8, requires_grad=True)
    item_embeddings = (0.1 * torch.randn(num_items, 8)).requires_grad_()
    batch = ObjectiveInput(
        queries=queries,
        positives=torch.randint(num_items, (num_queries,)),
        rows=torch.zeros(num_queries, dtype=torch.long),
        sequences=torch.zeros(1, num_queries, dtype=torch.long),
        lengths=torch.tensor([num_queries]),
        item_embeddings=item_embeddings,
        catalog=CatalogStats(num_items, torch.ones(num_items)),
    )
    logit_blocks = spy(sampling, "score_matrix")
    loss = Softmax(max_logits=max_logits)(batch)
    loss.backward()
    assert max(block.numel() for block in logit_blocks) <= max_logits
    # One pass over all N * I logits, chunk by chunk: the gradients are computed with the loss.
    assert sum(block.numel() for block in logit_blocks) == num_queries * num_items
    assert torch.isfinite(loss) and loss.item() == pytest.approx(math.log(num_items), rel=0.05)
    assert torch.isfinite(queries.grad).all() and torch.isfinite(item_embeddings.grad).all()


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [(dict(temperature=0.0), "loss.temperature"), (dict(max_logits=0), "loss.max_logits")],
)
def test_bad_hyperparameters_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        Softmax(**kwargs)


@pytest.mark.parametrize("max_logits", [2**26, 5])
def test_detach_item_table_stops_the_output_side_gradient(make_input, max_logits):
    """The seminar's quirk: the same loss value, the same query gradient, no item-table gradient."""
    kept = make_input(seed=4)
    detached = make_input(seed=4)
    loss_kept = Softmax(max_logits=max_logits)(kept)
    loss_detached = Softmax(max_logits=max_logits, detach_item_table=True)(detached)
    assert loss_detached.item() == pytest.approx(reference_softmax(detached), rel=1e-10)
    loss_kept.backward()
    loss_detached.backward()
    assert kept.item_embeddings.grad.abs().sum() > 0
    assert detached.item_embeddings.grad is None
    torch.testing.assert_close(detached.queries.grad, kept.queries.grad, rtol=1e-10, atol=1e-12)


def test_detached_table_still_learns_through_the_input_embeddings():
    """With the backbone in the graph, the table's gradient is exactly the input side's contribution."""
    from seqrec.model import SasRecBackbone

    torch.manual_seed(0)
    model = SasRecBackbone(num_items=9, embedding_dim=8, num_heads=2, num_layers=1, ffn_dim=16, dropout=0.0)
    inputs, lengths = torch.tensor([[1, 2, 3, 0], [4, 5, 6, 7]]), torch.tensor([3, 4])
    positives = torch.tensor([2, 3, 4, 5, 6, 7, 8])
    real = torch.arange(4)[None, :] < lengths[:, None]

    def table_gradient(detach: bool, through_inputs: bool) -> torch.Tensor:
        model.zero_grad()
        hidden = model(inputs, lengths)[real]
        table = model.item_embeddings if through_inputs else model.item_embeddings.detach()
        batch = ObjectiveInput(
            queries=hidden if through_inputs else hidden.detach(),
            positives=positives,
            rows=real.nonzero()[:, 0],
            sequences=inputs,
            lengths=lengths,
            item_embeddings=table if through_inputs else table.requires_grad_(),
            catalog=CatalogStats(9, torch.ones(9)),
        )
        Softmax(detach_item_table=detach)(batch).backward()
        return (model.item_embeddings.grad if through_inputs else batch.item_embeddings.grad).clone()

    full = table_gradient(detach=False, through_inputs=True)
    output_side = table_gradient(detach=False, through_inputs=False)
    input_side_only = table_gradient(detach=True, through_inputs=True)
    assert input_side_only.abs().sum() > 0 and output_side.abs().sum() > 0
    torch.testing.assert_close(input_side_only, full - output_side, rtol=1e-5, atol=1e-7)
