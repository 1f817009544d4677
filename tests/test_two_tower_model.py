"""The two-tower options of the backbone (model=two_tower, experiment=two_tower): projections and cosine
similarity against hand-computed vectors, the default head unchanged, the Keras port's block (padding
embedding, no dropout on the feed-forward output, Keras MultiHeadAttention initialisation), and the
objectives on projected vectors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import SMOKE, run_in_process
from seqrec.errors import ConfigError
from seqrec.layers import Rows
from seqrec.losses.base import CatalogStats, ObjectiveInput
from seqrec.losses.inbatch_symmetric import InBatchSymmetric
from seqrec.losses.softmax import Softmax
from seqrec.model import SasRecBackbone
from seqrec.models.sasrec_keras_port import SasRecKerasPort

TWO_TOWER = dict(query_projection=True, item_projection=True, similarity="cosine")


def make_model(variant=SasRecBackbone, **options) -> SasRecBackbone:
    torch.manual_seed(0)
    config = dict(num_items=9, embedding_dim=8, num_heads=2, num_layers=2, ffn_dim=12, max_seq_len=6)
    return variant(**(config | options))


def tiny_model(**options) -> SasRecBackbone:
    """D = 2 with hand-set item table and projections: items (3, 4), (1, 0), (0, -2)."""
    model = SasRecBackbone(num_items=3, embedding_dim=2, num_heads=1, num_layers=1, ffn_dim=2, **options)
    with torch.no_grad():
        model.item_embedding.weight.copy_(torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, -2.0]]))
        if model.item_projection is not None:  # W = [[1, 1], [0, 2]], b = (1, -1)
            model.item_projection.weight.copy_(torch.tensor([[1.0, 1.0], [0.0, 2.0]]))
            model.item_projection.bias.copy_(torch.tensor([1.0, -1.0]))
        if model.query_projection is not None:  # W = [[2, 0], [1, -1]], b = (0, 1)
            model.query_projection.weight.copy_(torch.tensor([[2.0, 0.0], [1.0, -1.0]]))
            model.query_projection.bias.copy_(torch.tensor([0.0, 1.0]))
    return model


HIDDEN = torch.tensor([[1.0, 1.0], [0.0, 3.0]])


def test_cosine_normalises_items_and_queries_by_hand():
    model = tiny_model(similarity="cosine")
    expected_items = torch.tensor([[0.6, 0.8], [1.0, 0.0], [0.0, -1.0]])  # (3, 4) / 5, ...
    expected_queries = torch.tensor([[1 / math.sqrt(2), 1 / math.sqrt(2)], [0.0, 1.0]])
    torch.testing.assert_close(model.item_vectors(), expected_items)
    torch.testing.assert_close(model.query_vectors(HIDDEN), expected_queries)
    # score = cosine similarity: query 0 against item 0 is (0.6 + 0.8) / sqrt(2)
    expected_scores = torch.tensor(
        [[1.4 / math.sqrt(2), 1 / math.sqrt(2), -1 / math.sqrt(2)], [0.8, 0.0, -1.0]]
    )
    torch.testing.assert_close(model.score(HIDDEN), expected_scores)
    torch.testing.assert_close(
        model.score(HIDDEN), F.cosine_similarity(HIDDEN[:, None], model.item_embeddings[None], dim=-1)
    )


def test_projections_by_hand_with_dot_and_cosine():
    model = tiny_model(query_projection=True, item_projection=True)
    # items W e + b: (3 + 4 + 1, 8 - 1) = (8, 7); (1 + 1, -1) = (2, -1); (-2 + 1, -4 - 1) = (-1, -5)
    projected_items = torch.tensor([[8.0, 7.0], [2.0, -1.0], [-1.0, -5.0]])
    # queries W h + b: (2, 0 + 1) = (2, 1); (0, -3 + 1) = (0, -2)
    projected_queries = torch.tensor([[2.0, 1.0], [0.0, -2.0]])
    torch.testing.assert_close(model.item_vectors(), projected_items)
    torch.testing.assert_close(model.query_vectors(HIDDEN), projected_queries)
    torch.testing.assert_close(model.score(HIDDEN), torch.tensor([[23.0, 3.0, -7.0], [-14.0, 2.0, 10.0]]))
    assert model.similarity == "dot"

    cosine = tiny_model(**TWO_TOWER)
    assert cosine.similarity == "cosine"
    norms = projected_items.norm(dim=1, keepdim=True)
    torch.testing.assert_close(cosine.item_vectors(), projected_items / norms)
    torch.testing.assert_close(
        cosine.query_vectors(HIDDEN),
        torch.tensor([[2.0, 1.0], [0.0, -1.0]]) / torch.tensor([[math.sqrt(5)], [1.0]]),
    )
    assert cosine.score(HIDDEN).abs().max() <= 1.0 + 1e-6


def test_the_default_head_is_the_item_table_itself():
    model = make_model().eval()
    assert model.similarity == "dot" and model.query_projection is None and model.item_projection is None
    assert model.item_vectors() is model.item_embedding.weight
    hidden = torch.randn(4, 8)
    assert model.query_vectors(hidden) is hidden
    assert torch.equal(model.score(hidden), hidden @ model.item_embedding.weight.T)
    parameters = {name.split(".")[0] for name, _ in model.named_parameters()}
    assert parameters == {"item_embedding", "position_embedding", "layers"}


@pytest.mark.parametrize("variant", [SasRecBackbone, SasRecKerasPort])
def test_the_heads_leave_the_other_initial_weights_as_they_were(variant):
    plain, towers = make_model(variant).state_dict(), make_model(variant, **TWO_TOWER).state_dict()
    assert set(towers) - set(plain) == {
        "query_projection.weight",
        "query_projection.bias",
        "item_projection.weight",
        "item_projection.bias",
    }
    # The Keras port's padding embedding is built before the heads and initialised after them.
    assert all(torch.equal(plain[name], towers[name]) for name in plain if name != "padding_embedding.weight")


def test_projections_change_only_the_head_not_the_encoder():
    inputs, lengths = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]]), torch.tensor([3, 2])
    plain, towers = make_model().eval(), make_model(**TWO_TOWER).eval()
    hidden = plain.last_hidden(inputs, lengths)
    torch.testing.assert_close(towers.last_hidden(inputs, lengths), hidden, rtol=0, atol=0)
    queries = F.normalize(towers.query_projection(hidden), dim=-1)
    items = F.normalize(towers.item_projection(towers.item_embedding.weight), dim=-1)
    torch.testing.assert_close(towers.score(hidden), queries @ items.T)


@pytest.mark.parametrize("variant", [SasRecBackbone, SasRecKerasPort])
def test_a_bad_similarity_names_the_key(variant):
    with pytest.raises(ValueError, match="model.similarity"):
        make_model(variant, similarity="euclid")


def test_padding_slots_hold_the_padding_embedding_plus_their_position():
    model = make_model(SasRecKerasPort).eval()
    inputs, lengths = torch.tensor([[3, 1, 0, 0, 0, 0], [2, 4, 5, 6, 7, 8]]), torch.tensor([2, 6])
    hidden = model(inputs, lengths)
    # The row of length 2 in a window of 6 slots: 4 padding slots, then items 3 and 1; slot s has position
    # 5 - s (backward order counts the window's slots, padding included).
    slots = torch.arange(6)
    frame = model.padding_embedding.weight[0] + model.position_embedding.weight[5 - slots]
    frame[4:] = model.item_embedding.weight[torch.tensor([3, 1])] + model.position_embedding.weight[[1, 0]]
    reference = model.encode(frame[None], Rows((5 - slots)[None], torch.tensor([6]), None, torch.tensor([5])))
    torch.testing.assert_close(hidden[0, :2], reference[0, 4:])
    with torch.no_grad():
        model.padding_embedding.weight.add_(torch.randn(8))  # the padding slots are seen
    assert not torch.allclose(model(inputs, lengths)[0, :2], hidden[0, :2], atol=1e-4)


def test_no_dropout_on_the_feed_forward_output():
    model = make_model(SasRecKerasPort, dropout=0.5)
    for layer in model.layers:
        assert isinstance(layer.dropout2, nn.Identity) and isinstance(layer.dropout1, nn.Identity)
        assert isinstance(layer.feed_forward[2], nn.Dropout)  # the inner dropout stays
    assert all(isinstance(layer.dropout2, nn.Dropout) for layer in make_model(dropout=0.5).layers)


def test_keras_attention_init_uses_multihead_attention_fans():
    torch.manual_seed(0)
    dim, heads = 64, 2
    model = SasRecKerasPort(num_items=500, embedding_dim=dim, num_heads=heads, **TWO_TOWER)
    attention = model.layers[0].attention
    # Kernels [D, H, D/H]: fan_in H * D = 128, fan_out D * D / H = 2048; output [H, D/H, D]: fans 64 and 128.
    for weight, limit in [
        (attention.qkv.weight, math.sqrt(6 / 2176)),
        (attention.out.weight, math.sqrt(6 / 192)),
    ]:
        assert weight.abs().max() <= limit
        assert weight.std().item() == pytest.approx(limit / math.sqrt(3), rel=0.05)
    assert attention.qkv.bias.abs().max() == 0
    for dense in (model.query_projection, model.item_projection, model.layers[0].feed_forward[0]):
        limit = math.sqrt(6 / (dense.in_features + dense.out_features))  # Glorot uniform, bias 0
        assert dense.weight.abs().max() <= limit and dense.bias.abs().max() == 0
        assert dense.weight.std().item() == pytest.approx(limit / math.sqrt(3), rel=0.1)
    assert model.item_embedding.weight.abs().max() <= 0.05


def objective_input(model: SasRecBackbone, positives: torch.Tensor) -> ObjectiveInput:
    inputs, lengths = torch.tensor([[1, 2, 3], [4, 5, 0], [6, 0, 0], [7, 8, 1]]), torch.tensor([3, 2, 1, 3])
    hidden = model(inputs, lengths)[torch.arange(4), lengths - 1]
    return ObjectiveInput(
        queries=model.query_vectors(hidden),
        positives=positives,
        rows=torch.arange(4),
        sequences=inputs,
        lengths=lengths,
        item_embeddings=model.item_vectors(),
        catalog=CatalogStats(9, torch.ones(9)),
    )


@pytest.mark.parametrize(
    "objective", [InBatchSymmetric(3, 0.05, False), Softmax(0.05)], ids=["inbatch", "softmax"]
)
def test_objectives_train_both_projections(objective):
    model = make_model(**TWO_TOWER)
    objective(objective_input(model, torch.tensor([2, 3, 4, 5]))).backward()
    for projection in (model.query_projection, model.item_projection):
        assert projection.weight.grad.abs().sum() > 0 and projection.bias.grad.abs().sum() > 0
    # Only the positives' rows reach the in-batch loss; the full softmax reaches every item.
    touched = model.item_embedding.weight.grad.abs().sum(dim=1) > 0
    assert touched[[2, 3, 4, 5]].all()


def test_in_batch_logits_are_cosines_over_the_temperature(spy):
    from seqrec.losses import sampling

    model = make_model(**TWO_TOWER).eval()
    positives = torch.tensor([2, 3, 4, 5])
    batch = objective_input(model, positives)
    draws = spy(sampling, "pool_indices")
    loss = InBatchSymmetric(3, 0.05, remove_accidental_hits=False)(batch)
    (chosen,) = draws
    hidden = model(batch.sequences, batch.lengths)[torch.arange(4), batch.lengths - 1]
    users = F.normalize(model.query_projection(hidden), dim=-1)[chosen]
    items = F.normalize(model.item_projection(model.item_embedding.weight[positives[chosen]]), dim=-1)
    logits = users @ items.T / 0.05
    labels = torch.arange(4)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    torch.testing.assert_close(loss, expected)


def test_a_detached_cosine_table_gets_no_gradient_from_the_output_side():
    model = make_model(similarity="cosine")
    batch = objective_input(model, torch.tensor([2, 3, 4, 5]))
    table = model.item_vectors()
    Softmax(0.05, detach_item_table=True)(
        ObjectiveInput(**{**vars(batch), "item_embeddings": table})
    ).backward()
    used_as_input = torch.zeros(9, dtype=torch.bool)
    used_as_input[batch.sequences[torch.arange(3)[None, :] < batch.lengths[:, None]]] = True
    grad = model.item_embedding.weight.grad.abs().sum(dim=1)
    assert (grad[~used_as_input] == 0).all() and (grad[used_as_input] > 0).all()


def test_a_detached_table_with_an_item_projection_fails_before_any_data_is_read(tmp_path):
    overrides = [*SMOKE, "model=two_tower", "loss=softmax", "loss.detach_item_table=true"]
    with pytest.raises(ConfigError) as error:
        run_in_process(overrides, tmp_path / "run")
    assert "model.item_projection" in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()


def test_an_evaluation_pass_computes_the_item_vectors_once_and_scores_as_score_does(monkeypatch):
    import contextlib

    from seqrec.train import inference_scores

    model = make_model(**TWO_TOWER).eval()
    inputs, lengths = torch.tensor([[1, 2, 3, 0], [4, 0, 0, 0]]), torch.tensor([3, 1])
    with torch.inference_mode():
        expected = model.score(model.last_hidden(inputs, lengths))
    calls = []
    item_vectors = model.item_vectors
    monkeypatch.setattr(model, "item_vectors", lambda: calls.append(1) or item_vectors())
    scores = inference_scores(model, contextlib.nullcontext())
    with torch.inference_mode():
        batches = [scores(inputs, lengths, None), scores(inputs[1:], lengths[1:], None)]
    assert len(calls) == 1  # not once per batch
    torch.testing.assert_close(batches[0], expected)
    torch.testing.assert_close(batches[1], expected[1:])
