"""The reference ports of the original SASRec code (seqrec.models), each against a hand-written reference.

The two references below are written from the descriptions of the PyTorch port (left-padded window,
queries-only pre-norm with normalised residuals, Conv1d feed-forward, padding slots that attention can
see) and of the TF2 port in Microsoft Recommenders (padding keys masked, no feed-forward norm, no
attention output projection, per-position norm parameters). Both run on a left-padded window of
max_seq_len slots with the backbone's weights copied in; the backbone must agree at every real position.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqrec.model import SasRecBackbone
from seqrec.models.sasrec_keras_port import SasRecKerasPort
from seqrec.models.sasrec_pytorch_port import SasRecPyTorchPort
from seqrec.models.sasrec_tf2_port import PerPositionLayerNorm, SasRecTf2Port

NUM_ITEMS, DIM, HEADS, FFN, MAX_LEN = 25, 12, 2, 20, 8
LENGTHS = torch.tensor([8, 5, 1, 3])

SIZES = dict(num_items=NUM_ITEMS, embedding_dim=DIM, num_heads=HEADS, ffn_dim=FFN, max_seq_len=MAX_LEN)


def make_model(variant=SasRecPyTorchPort, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    model = variant(**(SIZES | options)).eval()
    with torch.no_grad():  # non-trivial norms and biases, so that a swapped parameter shows
        for name, parameter in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                parameter.copy_(1.0 * name.endswith("weight") + 0.3 * torch.randn_like(parameter))
    return model


def random_inputs(seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randint(NUM_ITEMS, (len(LENGTHS), MAX_LEN), generator=generator)
    return inputs.masked_fill(torch.arange(MAX_LEN)[None, :] >= LENGTHS[:, None], 0)


def left_padded(inputs: torch.Tensor) -> torch.Tensor:
    """[B, M] the ports' input: item id + 1 (their tables keep row 0 for padding), padding 0 on the left."""
    window = torch.zeros(len(inputs), MAX_LEN, dtype=torch.long)
    for row, length in enumerate(LENGTHS.tolist()):
        window[row, MAX_LEN - length :] = inputs[row, :length] + 1
    return window


def back_to_right_padding(hidden: torch.Tensor) -> list[torch.Tensor]:
    return [hidden[row, MAX_LEN - length :] for row, length in enumerate(LENGTHS.tolist())]


def with_padding_row(table: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.zeros(1, table.shape[1]), table])


def pytorch_port_forward(model: torch.nn.Module, inputs: torch.Tensor) -> list[torch.Tensor]:
    """The PyTorch port: slots 1..M carry positions 1..M (the newest item is always slot M), padding
    slots get item row 0 and position row 0, both zero; nothing masks padding keys."""
    window = left_padded(inputs)
    items = with_padding_row(model.item_embedding.weight)
    # The port's position p (1..M) is seqrec's backward index M - p.
    positions_table = with_padding_row(model.position_embedding.weight.flip(0))
    slots = torch.arange(1, MAX_LEN + 1).expand_as(window) * (window > 0)
    x = items[window] * math.sqrt(DIM) + positions_table[slots]
    future = ~torch.tril(torch.ones(MAX_LEN, MAX_LEN, dtype=torch.bool))
    for layer in model.layers:
        attention = nn.MultiheadAttention(DIM, HEADS, batch_first=True).eval()
        attention.in_proj_weight.data.copy_(layer.attention.qkv.weight)
        attention.in_proj_bias.data.copy_(layer.attention.qkv.bias)
        attention.out_proj.weight.data.copy_(layer.attention.out.weight)
        attention.out_proj.bias.data.copy_(layer.attention.out.bias)
        conv1, conv2 = nn.Conv1d(DIM, FFN, 1), nn.Conv1d(FFN, DIM, 1)
        for conv, linear in [(conv1, layer.feed_forward[0]), (conv2, layer.feed_forward[3])]:
            conv.weight.data.copy_(linear.weight[:, :, None])
            conv.bias.data.copy_(linear.bias)
        queries = F.layer_norm(x, (DIM,), layer.norm1.weight, layer.norm1.bias, 1e-8)
        x = queries + attention(queries, x, x, attn_mask=future, need_weights=False)[0]
        x = F.layer_norm(x, (DIM,), layer.norm2.weight, layer.norm2.bias, 1e-8)
        x = x + conv2(torch.relu(conv1(x.transpose(1, 2)))).transpose(1, 2)
    x = F.layer_norm(x, (DIM,), model.final_norm.weight, model.final_norm.bias, 1e-8)
    return back_to_right_padding(x)


def per_slot_norm(x: torch.Tensor, norm: PerPositionLayerNorm) -> torch.Tensor:
    """The TF2 port's norm: mean/variance over the last axis, gain and bias [M, D] per slot; slot s is
    seqrec's backward index M - 1 - s."""
    mean = x.mean(-1, keepdim=True)
    variance = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(variance + 1e-8) * norm.weight.flip(0) + norm.bias.flip(0)


def tf2_port_forward(model: torch.nn.Module, inputs: torch.Tensor) -> list[torch.Tensor]:
    """The TF2 port: positions are the slots 0..M-1, the padding is zeroed after the embeddings and after
    every block, padding keys are masked; Q, K and V are separate projections without an output one."""
    window = left_padded(inputs)
    mask = (window > 0).float()[..., None]
    items = with_padding_row(model.item_embedding.weight)
    x = (items[window] * math.sqrt(DIM) + model.position_embedding.weight.flip(0)[None]) * mask
    causal = torch.tril(torch.ones(MAX_LEN, MAX_LEN, dtype=torch.bool))
    very_negative = -(2.0**32) + 1
    for layer in model.layers:
        weight, bias = layer.attention.qkv.weight, layer.attention.qkv.bias
        queries = per_slot_norm(x, layer.norm1)
        projected = [
            source @ weight[i * DIM : (i + 1) * DIM].T + bias[i * DIM : (i + 1) * DIM]
            for i, source in enumerate([queries, x, x])
        ]
        heads = [torch.cat(t.split(DIM // HEADS, dim=2), dim=0) for t in projected]  # [H * B, M, D / H]
        logits = heads[0] @ heads[1].transpose(1, 2) / math.sqrt(DIM // HEADS)
        keys_present = (x.sum(-1) != 0).repeat(HEADS, 1)[:, None, :]
        logits = torch.where(keys_present & causal, logits, torch.full_like(logits, very_negative))
        weights = torch.softmax(logits, dim=-1)
        weights = weights * (queries.sum(-1) != 0).repeat(HEADS, 1)[..., None]
        attended = torch.cat((weights @ heads[2]).split(len(x), dim=0), dim=2) + queries
        hidden = torch.relu(attended @ layer.feed_forward[0].weight.T + layer.feed_forward[0].bias)
        x = (hidden @ layer.feed_forward[3].weight.T + layer.feed_forward[3].bias + attended) * mask
    return back_to_right_padding(per_slot_norm(x, model.final_norm))


PORTS = [(SasRecPyTorchPort, pytorch_port_forward), (SasRecTf2Port, tf2_port_forward)]


@pytest.mark.parametrize(("variant", "reference"), PORTS)
def test_matches_the_reference_forward_of_each_port(variant, reference):
    model, inputs = make_model(variant), random_inputs()
    with torch.no_grad():
        hidden = model(inputs, LENGTHS)
        expected = reference(model, inputs)
    for row, length in enumerate(LENGTHS.tolist()):
        torch.testing.assert_close(hidden[row, :length], expected[row], atol=1e-5, rtol=1e-4)


def test_seqrec_pre_norm_block_with_the_same_weights_is_not_the_pytorch_port():
    """So the reference can tell blocks apart: seqrec's pre-norm block (keys and values normalised,
    residuals from the raw stream, right padding, unscaled embeddings) holds the port's very parameters."""
    port = make_model()
    model = SasRecBackbone(**SIZES, norm_first=True, activation="relu").eval()
    model.load_state_dict(port.state_dict())
    inputs = random_inputs()
    with torch.no_grad():
        hidden, expected = model(inputs, LENGTHS), pytorch_port_forward(model, inputs)
    assert not any(
        torch.allclose(hidden[row, :length], expected[row], atol=1e-4)
        for row, length in enumerate(LENGTHS.tolist())
    )


def test_attending_to_padding_depends_on_how_much_padding_there_is():
    """In the left-padded window the same history gives another output with less free space."""
    model = make_model()
    history = torch.tensor([[3, 7, 1]])
    with torch.no_grad():
        short = model(history, torch.tensor([3]))
        longer = model(torch.tensor([[5, 3, 7, 1]]), torch.tensor([4]))
        right_padded = make_model(SasRecTf2Port)
        plain_short = right_padded(history, torch.tensor([3]))
        padded = torch.cat([history, torch.zeros(1, 4, dtype=torch.long)], 1)
        plain_padded = right_padded(padded, torch.tensor([3]))
        shifted = model(padded, torch.tensor([3]))
    assert short.shape == (1, 3, DIM) and longer.shape == (1, 4, DIM)
    torch.testing.assert_close(plain_short[0], plain_padded[0, :3])  # right padding alone changes nothing
    torch.testing.assert_close(shifted[0, :3], short[0])  # nor in the window: it is always max_seq_len long
    assert not torch.allclose(longer[0, 1:], short[0], atol=1e-4)


def test_layer_norm_eps_and_per_position_parameters_match_a_loop():
    norm = PerPositionLayerNorm(4, num_positions=3, eps=0.5)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(3, 4))
        norm.bias.copy_(torch.randn(3, 4))
    x, positions = torch.randn(2, 5, 4) * 0.1, torch.tensor([[0, 1, 2, 2, 1], [2, 2, 0, 0, 1]])
    expected = torch.stack(
        [
            torch.stack(
                [
                    F.layer_norm(x[b, t], (4,), norm.weight[positions[b, t]], norm.bias[positions[b, t]], 0.5)
                    for t in range(5)
                ]
            )
            for b in range(2)
        ]
    )
    torch.testing.assert_close(norm(x, positions), expected)
    for variant, eps in [(SasRecPyTorchPort, 1e-8), (SasRecTf2Port, 1e-8), (SasRecKerasPort, 1e-3)]:
        norms = [
            m for m in make_model(variant).modules() if isinstance(m, nn.LayerNorm | PerPositionLayerNorm)
        ]
        assert len(norms) > 2 and {m.eps for m in norms} == {eps}, variant


def count_dropouts(model: torch.nn.Module, inputs: torch.Tensor) -> int:
    """nn.Dropout calls of one forward pass in the padded layout (the packed one draws its own masks and
    counts them in tests/test_packed.py)."""
    model.layout = "padded"
    calls = []
    for module in model.modules():
        if isinstance(module, nn.Dropout) and module.p > 0:
            module.register_forward_hook(lambda *args: calls.append(1))
    model(inputs, LENGTHS)
    return len(calls)


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        (SasRecBackbone, 2 * 3),  # per layer: inside the feed-forward, attention output, feed-forward output
        (SasRecPyTorchPort, 1 + 2 * 2),  # the embeddings; no dropout on the attention output
        (SasRecTf2Port, 1 + 2 * 2),
        (SasRecKerasPort, 2 + 2 * 1),  # the embeddings and the padding slots; inside the feed-forward only
    ],
)
def test_dropout_sites_of_each_variant_in_training_only(variant, expected):
    inputs = random_inputs()
    model = make_model(variant, dropout=0.3).train()
    assert count_dropouts(model, inputs) == expected
    first, second = model(inputs, LENGTHS), model(inputs, LENGTHS)
    assert not torch.allclose(first, second)
    model.eval()
    torch.testing.assert_close(model(inputs, LENGTHS), model(inputs, LENGTHS))


@pytest.mark.parametrize("variant", [SasRecPyTorchPort, SasRecTf2Port])
def test_scaled_item_embeddings_are_multiplied_by_sqrt_d_on_the_input_side_only(variant):
    model, inputs = (
        make_model(variant, layout="padded") if variant is SasRecTf2Port else make_model(),
        random_inputs(),
    )
    positions = model.positions(LENGTHS, MAX_LEN)
    x = SasRecBackbone.embed(model, inputs, LENGTHS)[0]  # before any window or dropout
    expected = (
        model.item_embedding.weight[inputs] * math.sqrt(DIM) + model.position_embedding.weight[positions]
    )
    torch.testing.assert_close(x, expected)
    hidden = torch.randn(2, DIM)
    torch.testing.assert_close(model.score(hidden), hidden @ model.item_embedding.weight.T)


def test_relu_activation_is_used_in_the_ports_feed_forward():
    for variant in (SasRecPyTorchPort, SasRecTf2Port, SasRecKerasPort):
        assert isinstance(make_model(variant).layers[0].feed_forward[1], nn.ReLU)
    assert isinstance(make_model(SasRecBackbone).layers[0].feed_forward[1], nn.GELU)


def parameters_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: parameter.detach() for name, parameter in model.named_parameters()}


def test_xavier_normal_init_has_the_pytorch_ports_scales():
    model = SasRecPyTorchPort(num_items=3000, embedding_dim=64, num_heads=2, ffn_dim=64, max_seq_len=200)
    p = parameters_of(model)
    expected_std = {
        "item_embedding.weight": math.sqrt(2 / (3001 + 64)),
        "position_embedding.weight": math.sqrt(2 / (201 + 64)),
        "layers.0.attention.qkv.weight": math.sqrt(2 / (64 + 3 * 64)),  # one [3D, D] matrix
        "layers.0.attention.out.weight": math.sqrt(2 / 128),
        "layers.1.feed_forward.0.weight": math.sqrt(2 / 128),
    }
    for name, std in expected_std.items():
        assert p[name].mean().abs() < 0.1 * std and p[name].std() == pytest.approx(std, rel=0.08), name
    assert torch.all(p["layers.0.attention.qkv.bias"] == 0) and torch.all(
        p["layers.0.attention.out.bias"] == 0
    )
    ffn_bias = p["layers.0.feed_forward.0.bias"]
    assert ffn_bias.abs().max() <= 1 / 8 and ffn_bias.std() > 0.03  # U(+-1/sqrt(64))
    assert torch.all(p["layers.0.norm1.weight"] == 1) and torch.all(p["final_norm.bias"] == 0)


def test_glorot_uniform_init_has_the_keras_scales():
    model = SasRecTf2Port(num_items=3000, embedding_dim=64, num_heads=2, ffn_dim=64, max_seq_len=50)
    p = parameters_of(model)
    for name in ("item_embedding.weight", "position_embedding.weight"):
        assert p[name].abs().max() <= 0.05 and p[name].abs().max() > 0.049, name
    limit = math.sqrt(6 / 128)  # each of Q, K, V is its own [D, D] Dense layer
    for projection in p["layers.0.attention.qkv.weight"].chunk(3):
        assert projection.abs().max() <= limit and projection.abs().max() > 0.97 * limit
    assert p["layers.1.feed_forward.3.weight"].abs().max() <= limit
    assert all(torch.all(v == 0) for k, v in p.items() if k.endswith("bias") and "norm" not in k)
