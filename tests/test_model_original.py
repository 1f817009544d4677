"""The model.* options that reproduce the original SASRec code, each against a hand-written reference.

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

from seqrec.model import LayerNorm, SasRecBackbone

NUM_ITEMS, DIM, HEADS, FFN, MAX_LEN = 25, 12, 2, 20, 8
LENGTHS = torch.tensor([8, 5, 1, 3])

PYTORCH_PORT = dict(
    norm_first=True,
    norm_keys_values=False,
    residual_from_norm=True,
    activation="relu",
    layer_norm_eps=1e-8,
    attention_output_dropout=False,
    scale_item_embeddings=True,
    attend_padding=True,
    init="xavier_normal",
)
TF2_PORT = PYTORCH_PORT | dict(
    attend_padding=False, ffn_norm=False, norm_per_position=True, attention_out_projection=False
)


def make_model(**options) -> SasRecBackbone:
    torch.manual_seed(0)
    sizes = dict(num_items=NUM_ITEMS, embedding_dim=DIM, num_heads=HEADS, ffn_dim=FFN, max_seq_len=MAX_LEN)
    model = SasRecBackbone(**sizes, **options).eval()
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


def pytorch_port_forward(model: SasRecBackbone, inputs: torch.Tensor) -> list[torch.Tensor]:
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


def per_slot_norm(x: torch.Tensor, norm: LayerNorm) -> torch.Tensor:
    """The TF2 port's norm: mean/variance over the last axis, gain and bias [M, D] per slot; slot s is
    seqrec's backward index M - 1 - s."""
    mean = x.mean(-1, keepdim=True)
    variance = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(variance + 1e-8) * norm.weight.flip(0) + norm.bias.flip(0)


def tf2_port_forward(model: SasRecBackbone, inputs: torch.Tensor) -> list[torch.Tensor]:
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


@pytest.mark.parametrize(
    ("options", "reference"), [(PYTORCH_PORT, pytorch_port_forward), (TF2_PORT, tf2_port_forward)]
)
def test_matches_the_reference_forward_of_each_port(options, reference):
    model, inputs = make_model(**options), random_inputs()
    with torch.no_grad():
        hidden = model(inputs, LENGTHS)
        expected = reference(model, inputs)
    for row, length in enumerate(LENGTHS.tolist()):
        torch.testing.assert_close(hidden[row, :length], expected[row], atol=1e-5, rtol=1e-4)


PORTS = {"pytorch": (PYTORCH_PORT, pytorch_port_forward), "tf2": (TF2_PORT, tf2_port_forward)}
ONE_OPTION_CHANGED = [
    *[("pytorch", change) for change in ("norm_keys_values", "residual_from_norm", "scale_item_embeddings")],
    ("pytorch", "attend_padding"),
    *[("tf2", change) for change in ("norm_keys_values", "residual_from_norm", "scale_item_embeddings")],
    *[("tf2", change) for change in ("attend_padding", "ffn_norm", "attention_out_projection")],
]


@pytest.mark.parametrize(("port", "key"), ONE_OPTION_CHANGED)
def test_changing_any_one_option_breaks_the_agreement(port, key):
    """So each option is pinned by the reference tests above."""
    options, reference = PORTS[port]
    model, inputs = make_model(**(options | {key: not options.get(key, True)})), random_inputs()
    with torch.no_grad():
        hidden, expected = model(inputs, LENGTHS), reference(model, inputs)
    assert not all(
        torch.allclose(hidden[row, :length], expected[row], atol=1e-4)
        for row, length in enumerate(LENGTHS.tolist())
    )


@pytest.mark.parametrize("port", PORTS)
def test_gelu_instead_of_relu_breaks_the_agreement(port):
    options, reference = PORTS[port]
    model, inputs = make_model(**(options | {"activation": "gelu"})), random_inputs()
    with torch.no_grad():
        assert not torch.allclose(model(inputs, LENGTHS)[0], reference(model, inputs)[0], atol=1e-4)


def test_attending_to_padding_depends_on_how_much_padding_there_is():
    """With attend_padding the same history gives another output in a window with less free space."""
    model = make_model(**PYTORCH_PORT)
    history = torch.tensor([[3, 7, 1]])
    with torch.no_grad():
        short = model(history, torch.tensor([3]))
        longer = model(torch.tensor([[5, 3, 7, 1]]), torch.tensor([4]))
        plain = make_model(**(PYTORCH_PORT | dict(attend_padding=False)))
        plain_short = plain(history, torch.tensor([3]))
        plain_padded = plain(torch.cat([history, torch.zeros(1, 4, dtype=torch.long)], 1), torch.tensor([3]))
    assert short.shape == (1, 3, DIM) and longer.shape == (1, 4, DIM)
    torch.testing.assert_close(plain_short[0], plain_padded[0, :3])  # right padding alone changes nothing
    assert not torch.allclose(short[0], plain_short[0], atol=1e-4)


def test_layer_norm_eps_and_per_position_parameters_match_a_loop():
    norm = LayerNorm(4, eps=0.5, num_positions=3)
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
    model = make_model(**PYTORCH_PORT)
    assert {m.eps for m in model.modules() if isinstance(m, LayerNorm)} == {1e-8}


def count_dropouts(model: SasRecBackbone, inputs: torch.Tensor) -> int:
    """nn.Dropout calls of one forward pass in the padded layout (the packed one draws its own masks and
    counts them in tests/test_packed.py)."""
    model.layout = "padded"
    calls = []
    for module in model.modules():
        if isinstance(module, nn.Dropout) and module.p > 0:
            module.register_forward_hook(lambda *args: calls.append(1))
    model(inputs, LENGTHS)
    return len(calls)


def test_embedding_dropout_acts_on_the_embeddings_in_training_only():
    inputs = random_inputs()
    model = make_model(dropout=0.0, embedding_dropout=0.5).train()
    first, second = model(inputs, LENGTHS), model(inputs, LENGTHS)  # the packed layout on CPU
    assert not torch.allclose(first, second)
    model.eval()
    torch.testing.assert_close(model(inputs, LENGTHS), model(inputs, LENGTHS))
    without = make_model(dropout=0.0, embedding_dropout=0.0)
    torch.testing.assert_close(without.train()(inputs, LENGTHS), without.eval()(inputs, LENGTHS))
    assert count_dropouts(make_model(dropout=0.0, embedding_dropout=0.5), inputs) == 1


def test_attention_output_dropout_option_removes_exactly_that_dropout():
    inputs = random_inputs()
    # Per layer: feed-forward inside, attention output, feed-forward output; +1 for the embeddings.
    assert count_dropouts(make_model(dropout=0.2, embedding_dropout=0.2), inputs) == 2 * 3 + 1
    fewer = make_model(dropout=0.2, embedding_dropout=0.2, norm_first=True, attention_output_dropout=False)
    assert count_dropouts(fewer, inputs) == 2 * 2 + 1
    assert all(isinstance(layer.dropout1, nn.Identity) for layer in fewer.layers)


def test_scaled_item_embeddings_are_multiplied_by_sqrt_d_on_the_input_side_only():
    # Padded layout: the hook reads the first layer's input as [B, L, D].
    plain = make_model(num_layers=1, layout="padded")
    scaled = make_model(num_layers=1, scale_item_embeddings=True, layout="padded")
    inputs = random_inputs()
    captured = {}
    for name, model in [("plain", plain), ("scaled", scaled)]:
        model.layers[0].register_forward_pre_hook(
            lambda module, args, name=name: captured.update({name: args[0]})
        )
        model(inputs, LENGTHS)
    positions = plain.position_embedding(plain.positions(LENGTHS, MAX_LEN))
    torch.testing.assert_close(
        captured["scaled"] - positions, (captured["plain"] - positions) * math.sqrt(DIM)
    )
    hidden = torch.randn(2, DIM)
    torch.testing.assert_close(scaled.score(hidden), hidden @ scaled.item_embedding.weight.T)


def test_relu_activation_is_used_in_the_feed_forward():
    assert isinstance(make_model(activation="relu").layers[0].feed_forward[1], nn.ReLU)
    assert isinstance(make_model().layers[0].feed_forward[1], nn.GELU)


def parameters_of(model: SasRecBackbone) -> dict[str, torch.Tensor]:
    return {name: parameter.detach() for name, parameter in model.named_parameters()}


def test_xavier_normal_init_has_the_pytorch_ports_scales():
    model = SasRecBackbone(
        num_items=3000, embedding_dim=64, ffn_dim=64, max_seq_len=200, init="xavier_normal", norm_first=True
    )
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
    model = SasRecBackbone(
        num_items=3000, embedding_dim=64, ffn_dim=64, max_seq_len=50, init="glorot_uniform", norm_first=True
    )
    p = parameters_of(model)
    for name in ("item_embedding.weight", "position_embedding.weight"):
        assert p[name].abs().max() <= 0.05 and p[name].abs().max() > 0.049, name
    limit = math.sqrt(6 / 128)  # each of Q, K, V is its own [D, D] Dense layer
    for projection in p["layers.0.attention.qkv.weight"].chunk(3):
        assert projection.abs().max() <= limit and projection.abs().max() > 0.97 * limit
    assert p["layers.1.feed_forward.3.weight"].abs().max() <= limit
    assert all(torch.all(v == 0) for k, v in p.items() if k.endswith("bias") and "norm" not in k)
