"""SasRecBackbone against a reference built from nn.TransformerEncoderLayer, padding, init, validation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqrec.model import SasRecBackbone

NUM_ITEMS, DIM, HEADS, FFN, MAX_LEN = 30, 16, 4, 24, 10


def make_model(**overrides) -> SasRecBackbone:
    torch.manual_seed(0)
    config = dict(
        num_items=NUM_ITEMS,
        embedding_dim=DIM,
        num_heads=HEADS,
        num_layers=2,
        ffn_dim=FFN,
        max_seq_len=MAX_LEN,
    )
    return SasRecBackbone(**(config | overrides)).eval()


def reference_hidden(model: SasRecBackbone, inputs: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Full-length (unpadded) inputs through PyTorch's own layers with the model's weights copied in."""
    norm_first = model.final_norm is not None
    x = model.item_embedding.weight[inputs] + model.position_embedding.weight[positions]
    causal = nn.Transformer.generate_square_subsequent_mask(inputs.shape[1])
    for layer in model.layers:
        reference = nn.TransformerEncoderLayer(
            DIM,
            HEADS,
            dim_feedforward=FFN,
            dropout=0.1,
            activation="gelu",
            batch_first=True,
            norm_first=norm_first,
        ).eval()
        with torch.no_grad():
            reference.self_attn.in_proj_weight.copy_(layer.attention.qkv.weight)
            reference.self_attn.in_proj_bias.copy_(layer.attention.qkv.bias)
            reference.self_attn.out_proj.weight.copy_(layer.attention.out.weight)
            reference.self_attn.out_proj.bias.copy_(layer.attention.out.bias)
            reference.linear1.weight.copy_(layer.feed_forward[0].weight)
            reference.linear1.bias.copy_(layer.feed_forward[0].bias)
            reference.linear2.weight.copy_(layer.feed_forward[3].weight)
            reference.linear2.bias.copy_(layer.feed_forward[3].bias)
            for ours, theirs in [(layer.norm1, reference.norm1), (layer.norm2, reference.norm2)]:
                theirs.weight.copy_(ours.weight)
                theirs.bias.copy_(ours.bias)
        x = reference(x, src_mask=causal, is_causal=True)
    if norm_first:
        x = F.layer_norm(x, (DIM,), model.final_norm.weight, model.final_norm.bias)
    return x


def randomise(model: SasRecBackbone) -> None:
    """Non-trivial norms and biases, so that a swapped parameter cannot go unnoticed."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                parameter.copy_(1.0 * ("weight" in name) + 0.3 * torch.randn_like(parameter))
            else:
                parameter.mul_(10)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("position_order", ["backward", "forward"])
def test_matches_pytorch_encoder_layers(norm_first, position_order):
    model = make_model(norm_first=norm_first, position_order=position_order)
    randomise(model)
    inputs = torch.randint(NUM_ITEMS, (3, 7))
    lengths = torch.full((3,), 7)
    steps = torch.arange(7)
    positions = (6 - steps if position_order == "backward" else steps).expand(3, 7)
    with torch.no_grad():
        expected = reference_hidden(model, inputs, positions)
        torch.testing.assert_close(model(inputs, lengths), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("position_order", ["backward", "forward"])
def test_right_padding_leaves_real_positions_unchanged(position_order):
    model = make_model(position_order=position_order)
    randomise(model)
    lengths = torch.tensor([5, 2, 7, 1])
    inputs = torch.randint(NUM_ITEMS, (4, 7))
    padded_garbage = inputs.clone()
    padded_garbage[torch.arange(7)[None, :] >= lengths[:, None]] = 3
    with torch.no_grad():
        hidden = model(inputs, lengths)
        for row, length in enumerate(lengths.tolist()):
            alone = model(inputs[row : row + 1, :length], lengths[row : row + 1])
            torch.testing.assert_close(hidden[row, :length], alone[0], atol=1e-5, rtol=1e-5)
            other_padding = model(padded_garbage, lengths)[row, :length]
            torch.testing.assert_close(other_padding, alone[0], atol=1e-5, rtol=1e-5)


def test_position_indices_count_backward_from_the_most_recent_item_or_forward():
    lengths = torch.tensor([3, 1, 4])
    backward = make_model(position_order="backward").positions(lengths, 4)
    forward = make_model(position_order="forward").positions(lengths, 4)
    # Backward: most recent real item = 0; padding gets a valid dummy index (ignored downstream).
    assert backward.tolist() == [[2, 1, 0, 0], [0, 0, 0, 0], [3, 2, 1, 0]]
    assert forward.tolist() == [[0, 1, 2, 3]] * 3


def test_position_order_changes_the_output():
    inputs, lengths = torch.randint(NUM_ITEMS, (2, 5)), torch.tensor([5, 3])
    with torch.no_grad():
        backward = make_model(position_order="backward")(inputs, lengths)
        forward = make_model(position_order="forward")(inputs, lengths)
    assert not torch.allclose(backward[1, :3], forward[1, :3])


def test_shapes_last_hidden_and_score():
    model = make_model()
    inputs, lengths = torch.randint(NUM_ITEMS, (4, 6)), torch.tensor([6, 1, 3, 5])
    with torch.no_grad():
        hidden = model(inputs, lengths)
        last = model.last_hidden(inputs, lengths)
        scores = model.score(last)
    assert hidden.shape == (4, 6, DIM)  # shorter than max_seq_len is fine
    assert model.item_embeddings.shape == (NUM_ITEMS, DIM)
    assert model.item_embeddings is model.item_embedding.weight
    torch.testing.assert_close(last, hidden[torch.arange(4), lengths - 1])
    assert scores.shape == (4, NUM_ITEMS)
    torch.testing.assert_close(scores[2, 7], last[2] @ model.item_embeddings[7])


def test_longer_than_max_seq_len_is_rejected():
    with pytest.raises(ValueError, match="max_seq_len"):
        make_model()(torch.zeros(1, MAX_LEN + 1, dtype=torch.long), torch.tensor([MAX_LEN + 1]))


def test_gradients_reach_every_parameter():
    model = make_model(norm_first=True).train()
    inputs, lengths = torch.randint(NUM_ITEMS, (3, 6)), torch.tensor([6, 2, 4])
    model.score(model.last_hidden(inputs, lengths)).logsumexp(dim=1).sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_dropout_is_active_in_training_only():
    model = make_model(dropout=0.5)
    inputs, lengths = torch.randint(NUM_ITEMS, (2, 5)), torch.tensor([5, 5])
    with torch.no_grad():
        torch.testing.assert_close(model(inputs, lengths), model(inputs, lengths))
        model.train()
        assert not torch.allclose(model(inputs, lengths), model(inputs, lengths))


def test_init_truncated_normal_weights_unit_norms_zero_biases():
    model = SasRecBackbone(num_items=2000, embedding_dim=64, ffn_dim=256, norm_first=True)
    for name, parameter in model.named_parameters():
        if "norm" in name and name.endswith("weight"):
            assert torch.all(parameter == 1), name
        elif name.endswith("bias"):
            assert torch.all(parameter == 0), name
        else:
            assert parameter.abs().max() <= 0.04, name
            assert parameter.abs().max() > 0.03, name
            # std of N(0, 0.02) truncated at two standard deviations is 0.0176
            assert 0.016 < parameter.std() < 0.019, name


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (dict(num_items=0), "model.num_items"),
        (dict(embedding_dim=0), "model.embedding_dim"),
        (dict(embedding_dim=10, num_heads=4), "model.embedding_dim"),
        (dict(num_heads=0), "model.num_heads"),
        (dict(num_layers=0), "model.num_layers"),
        (dict(ffn_dim=0), "model.ffn_dim"),
        (dict(max_seq_len=0), "model.max_seq_len"),
        (dict(dropout=1.0), "model.dropout"),
        (dict(dropout=-0.1), "model.dropout"),
        (dict(position_order="sideways"), "model.position_order"),
        (dict(activation="tanh"), "model.activation"),
        (dict(layout="dense"), "model.layout"),
        (dict(similarity="euclid"), "model.similarity"),
    ],
)
def test_bad_hyperparameters_name_the_key(overrides, key):
    config = dict(num_items=10, embedding_dim=8, num_heads=2) | overrides
    with pytest.raises(ValueError, match=key):
        SasRecBackbone(**config)
