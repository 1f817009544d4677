"""The packed CPU path: layout indices, blocked attention with dropout, the backbone vs the padded path."""

from __future__ import annotations

import math

import pytest
import torch

from seqrec import packed
from seqrec.model import SasRecBackbone
from seqrec.models.sasrec_keras_port import SasRecKerasPort
from seqrec.models.sasrec_pytorch_port import SasRecPyTorchPort
from seqrec.models.sasrec_tf2_port import SasRecTf2Port
from seqrec.packed import PackedLayout, blocked_causal_attention, dropout, keep_mask

LENGTHS = [5, 70, 33, 1, 64, 65, 12, 128, 129]  # block edges (64, 128) on both sides, a single item
SEQ_LEN = 140


def padded_inputs(num_items: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(LENGTHS)
    inputs = torch.randint(num_items, (len(LENGTHS), SEQ_LEN), generator=generator)
    return inputs.masked_fill(torch.arange(SEQ_LEN)[None, :] >= lengths[:, None], 0), lengths


def test_layout_packs_and_unpacks_the_real_positions():
    lengths = torch.tensor(LENGTHS)
    layout = PackedLayout.of(lengths, SEQ_LEN)
    padded = torch.randn(len(LENGTHS), SEQ_LEN, 3)
    real = torch.arange(SEQ_LEN)[None, :] < lengths[:, None]
    assert torch.equal(layout.pack(padded), padded[real])
    assert torch.equal(layout.unpack(layout.pack(padded)), padded * real[..., None])
    assert layout.max_length == 129
    assert layout.blocks == ((0, 64, 9), (64, 128, 4), (128, 129, 1))  # rows longer than 0, 64, 128


def test_head_rows_gather_between_packed_rows_and_the_attention_layout():
    lengths = torch.tensor([2, 3, 1])
    layout = PackedLayout.of(lengths, 4)
    parts, heads, width = 3, 2, 5
    packed_rows = torch.randn(int(lengths.sum()), parts * heads * width)
    to_slots, to_packed = layout.head_rows(parts, heads)
    rows = torch.cat([packed_rows.view(-1, width), torch.zeros(1, width)])
    slots = rows[to_slots].view(parts, 3, heads, 3, width)  # [parts, B, H, max_length, d]
    order = [1, 0, 2]  # rows sorted by decreasing length
    real = [(b, t) for b in range(3) for t in range(int(lengths[b]))]
    for n, (b, t) in enumerate(real):
        for part in range(parts):
            for head in range(heads):
                expected = packed_rows[n].view(parts, heads, width)[part, head]
                assert torch.equal(slots[part, order.index(b), head, t], expected)
    assert (slots[:, order.index(2), :, 1:] == 0).all()  # padding slots read the zero row
    assert torch.equal(slots.reshape(-1, width)[to_packed], packed_rows.view(-1, width))


def reference_attention(qkv, lengths, heads, keep_blocks, layout, p):
    """Dense causal attention of each row on its own, with the dropout masks the blocked one drew."""
    head_dim = qkv.shape[1] // (3 * heads)
    order = torch.sort(lengths, descending=True, stable=True).indices.tolist()
    keep_full = torch.ones(len(lengths), heads, layout.max_length, layout.max_length, dtype=torch.bool)
    for (start, end, n), keep in zip(layout.blocks, keep_blocks, strict=True):
        if keep is not None:
            keep_full[:n, :, start:end, :end] = keep
    outputs, offset = [], 0
    for row, length in enumerate(lengths.tolist()):
        q, k, v = qkv[offset : offset + length].view(length, 3, heads, head_dim).permute(1, 2, 0, 3)
        offset += length
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)
        scores = scores.masked_fill(torch.ones(length, length, dtype=torch.bool).triu(1), -math.inf)
        probabilities = scores.softmax(-1)
        if p > 0:
            probabilities = probabilities * keep_full[order.index(row), :, :length, :length] / (1 - p)
        outputs.append((probabilities @ v).transpose(0, 1).reshape(length, -1))
    return torch.cat(outputs)


def block_masks(flat_keep: torch.Tensor, layout: PackedLayout, heads: int) -> list[torch.Tensor]:
    masks, used = [], 0
    for start, end, n in layout.blocks:
        shape = (n, heads, end - start, end)
        masks.append(flat_keep[used : used + math.prod(shape)].view(shape))
        used += math.prod(shape)
    assert used == len(flat_keep)
    return masks


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_blocked_attention_equals_dense_attention_with_the_same_masks(p, spy):
    lengths, heads = torch.tensor(LENGTHS), 2
    layout = PackedLayout.of(lengths, SEQ_LEN)
    generator = torch.Generator().manual_seed(1)
    qkv = torch.randn(int(lengths.sum()), 3 * heads * 4, generator=generator, dtype=torch.float64)
    grad = torch.randn(int(lengths.sum()), heads * 4, generator=generator, dtype=torch.float64)
    masks = spy(packed, "keep_mask")
    ours = qkv.clone().requires_grad_()
    out = blocked_causal_attention(ours, layout, heads, p)
    out.backward(grad)
    keep_blocks = block_masks(masks[0], layout, heads) if p > 0 else [None] * len(layout.blocks)
    assert len(masks) == (1 if p > 0 else 0)
    theirs = qkv.clone().requires_grad_()
    expected = reference_attention(theirs, lengths, heads, keep_blocks, layout, p)
    expected.backward(grad)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-12, atol=1e-12)


def test_blocked_attention_gradcheck_with_dropout():
    lengths = torch.tensor([3, 1, 4])
    layout = PackedLayout.of(lengths, 5)
    qkv = torch.randn(8, 12, dtype=torch.float64, requires_grad=True)

    def attention(values):
        torch.manual_seed(0)  # the same dropout mask in every call
        return blocked_causal_attention(values, layout, 2, 0.25)

    assert torch.autograd.gradcheck(attention, (qkv,))


def test_keep_mask_is_calibrated():
    torch.manual_seed(0)
    for p in (0.1, 0.5):
        keep = keep_mask((1_000_000,), p, torch.device("cpu"))
        assert keep.dtype == torch.bool
        # Binomial standard error of the kept share is about 5e-4: allow 5 of them.
        assert abs(keep.double().mean().item() - (1 - p)) < 2.5e-3
    assert keep_mask((1000,), 0.0, torch.device("cpu")).all()


def test_dropout_scales_kept_entries_and_routes_gradients_through_them():
    torch.manual_seed(0)
    x = torch.randn(200, 50, dtype=torch.float64, requires_grad=True)
    y = dropout(x, 0.2, training=True)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.8)
    y.sum().backward()
    assert torch.equal(x.grad, kept.double() / 0.8)
    assert 0.75 < kept.double().mean() < 0.85
    assert dropout(x, 0.2, training=False) is x


SIZES = dict(num_items=50, embedding_dim=16, num_heads=2, ffn_dim=24)
# The right-padded variants, which have both layouts: seqrec's block (post-norm, pre-norm, ReLU with forward
# positions) and the TF2 port's (queries-only pre-norm, per-position norms, no attention output projection).
RIGHT_PADDED = [
    (SasRecBackbone, {}),
    (SasRecBackbone, {"norm_first": True}),
    (SasRecBackbone, {"activation": "relu", "position_order": "forward"}),
    (SasRecTf2Port, {}),
]
LEFT_PADDED = [(SasRecPyTorchPort, {}), (SasRecKerasPort, {"query_projection": True})]


def make(variant, options: dict, **sizes) -> torch.nn.Module:
    torch.manual_seed(0)
    model = variant(**(SIZES | sizes | options))
    with torch.no_grad():
        for name, parameter in model.named_parameters():  # non-trivial norms and biases
            if "norm" in name or name.endswith("bias"):
                parameter.add_(0.3 * torch.randn_like(parameter))
    return model


@pytest.mark.parametrize(("variant", "options"), RIGHT_PADDED)
@pytest.mark.parametrize("training", [False, True])
def test_packed_backbone_equals_padded_backbone_without_dropout(variant, options, training):
    model = make(variant, options, num_layers=2, dropout=0.0, max_seq_len=SEQ_LEN).double()
    model.train(training)
    inputs, lengths = padded_inputs(50)
    real = torch.arange(SEQ_LEN)[None, :] < lengths[:, None]
    results = {}
    for layout in ("padded", "packed"):
        model.layout = layout
        model.zero_grad()
        hidden = model(inputs, lengths)
        (hidden[real] ** 2).sum().backward()
        results[layout] = hidden[real].detach(), [p.grad.clone() for p in model.parameters()]
    torch.testing.assert_close(results["packed"][0], results["padded"][0], rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(results["packed"][1], results["padded"][1], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-11)


LAST_HIDDEN_CASES = [(*case, layout) for case in RIGHT_PADDED for layout in ("padded", "packed")] + [
    (*case, "padded") for case in LEFT_PADDED
]


@pytest.mark.parametrize(("variant", "options", "layout"), LAST_HIDDEN_CASES)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_last_hidden_computes_the_last_layer_at_the_last_positions_only(variant, options, layout, num_layers):
    model = make(variant, options, num_layers=num_layers, max_seq_len=SEQ_LEN + 3).double().eval()
    model.layout = layout
    with torch.no_grad():
        inputs, lengths = padded_inputs(50)
        inputs = torch.cat([inputs, torch.zeros(len(inputs), 3, dtype=torch.int64)], dim=1)  # extra padding
        rows = torch.arange(len(lengths))
        expected = model(inputs, lengths)[rows, lengths - 1]
        calls = []
        hook = lambda module, args, output: calls.append((args[1].last_only, tuple(output.shape)))  # noqa: E731
        handle = model.layers[-1].register_forward_hook(hook)
        last = model.last_hidden(inputs, lengths)
        handle.remove()
    assert calls == [(True, (len(lengths), 16))]  # the same layer code, at the last positions only
    torch.testing.assert_close(last, expected, rtol=1e-10, atol=1e-12)
    model.train()  # training (dropout) takes the full forward
    with torch.no_grad():
        torch.manual_seed(1)
        trained = model.last_hidden(inputs, lengths)
        torch.manual_seed(1)
        torch.testing.assert_close(trained, model(inputs, lengths)[rows, lengths - 1])


def test_auto_layout_is_packed_on_cpu_and_bad_layouts_are_rejected(spy):
    model = SasRecBackbone(50, 16, 2, 1, 24, max_seq_len=SEQ_LEN)
    layouts = spy(PackedLayout, "of")
    model(*padded_inputs(50))
    assert len(layouts) == 1
    model.layout = "padded"
    model(*padded_inputs(50))
    assert len(layouts) == 1
    with pytest.raises(ValueError, match=r"model\.layout"):
        SasRecBackbone(50, layout="dense")
    for variant, _ in LEFT_PADDED:  # attention to padding needs the padded layout
        variant(50, 16, 2, 1, 24, max_seq_len=SEQ_LEN)(*padded_inputs(50))
    assert len(layouts) == 1


def test_packed_dropout_has_the_configured_rate_in_training():
    torch.manual_seed(0)
    model = SasRecBackbone(50, 16, 2, 1, 24, dropout=0.5, max_seq_len=SEQ_LEN, layout="packed").train()
    inputs, lengths = padded_inputs(50)
    first, second = model(inputs, lengths), model(inputs, lengths)
    assert not torch.equal(first, second)  # dropout draws differ from call to call
    model.eval()
    assert torch.equal(model(inputs, lengths), model(inputs, lengths))


def test_random_int32_is_reproducible_and_uniform():
    torch.manual_seed(3)
    first = packed.random_int32((1001,), torch.device("cpu"))
    torch.manual_seed(3)
    assert torch.equal(packed.random_int32((1001,), torch.device("cpu")), first)
    assert not torch.equal(packed.random_int32((1001,), torch.device("cpu")), first)
    values = packed.random_int32((400_000,), torch.device("cpu")).double()
    assert abs(values.mean().item()) < 0.01 * 2**31  # uniform over [-2**31, 2**31): mean -0.5
    assert abs((values < 0).double().mean().item() - 0.5) < 0.005


@pytest.mark.parametrize(("variant", "expected"), [(SasRecBackbone, 2 * 3), (SasRecTf2Port, 1 + 2 * 2)])
def test_packed_dropout_sites_are_those_of_the_padded_layout(monkeypatch, variant, expected):
    """Per layer the feed-forward inside, the attention output (not in the TF2 port) and the feed-forward
    output, and the TF2 port's embedding dropout; attention weights draw inside the blocked attention."""
    import seqrec.layers

    rates = []

    def counting_dropout(x, p, training):
        rates.append(p)
        return dropout(x, p, training)

    monkeypatch.setattr(seqrec.layers, "dropout", counting_dropout)
    model = variant(50, 16, 2, 2, 24, dropout=0.2, max_seq_len=SEQ_LEN, layout="packed")
    model.train()(*padded_inputs(50))
    assert rates == [0.2] * expected
