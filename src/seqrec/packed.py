"""The packed layout of a batch: the CPU path of the backbone computes only the real positions.

A right-padded batch [B, L] of rows with lengths [B] holds N = sum(lengths) real positions. Position-wise
work (embeddings, linear layers, norms, dropout) runs on the [N, D] real positions only. Causal attention
runs on the rows sorted by length and cut into blocks of query positions: block [a, b) needs keys 0..b-1
of the rows longer than a only, so padding and the masked upper triangle are (almost) never computed.

With dropout off the result equals the padded computation up to float rounding. With dropout on, the
dropout masks follow the same distribution (each entry kept with probability 1 - p, kept entries scaled by
1 / (1 - p)) but come from different random draws than the padded path's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

QUERY_BLOCK = 64  # query positions per attention block (measured on CPU: 32 and 64 cost about the same)


@dataclass(frozen=True)
class PackedLayout:
    """Where each real position of a right-padded batch [B, L] lives.

    real: [N] int64 flat indices (row * L + t) of the real positions, row-major: the packed order.
    slot_source: [B, max_length] int64, the packed index of each slot of the attention layout, whose rows
        are the batch's rows sorted by decreasing length (N for padding).
    slot_of_real: [N] int64 flat slot (sorted row * max_length + t) of each real position.
    blocks: (start, end, rows) per query block: positions start..end-1 of the `rows` longest rows.
    """

    batch_size: int
    seq_len: int
    max_length: int
    real: torch.Tensor
    slot_source: torch.Tensor
    slot_of_real: torch.Tensor
    blocks: tuple[tuple[int, int, int], ...]

    @staticmethod
    def of(lengths: torch.Tensor, seq_len: int) -> PackedLayout:
        """lengths: [B] int64 in [1, seq_len]; the index tensors live on lengths' device."""
        host_lengths = lengths.cpu()
        batch_size, max_length = len(host_lengths), int(host_lengths.max())
        steps = torch.arange(seq_len)
        row, step = (steps[None, :] < host_lengths[:, None]).nonzero(as_tuple=True)
        order = torch.sort(host_lengths, descending=True, stable=True).indices
        rank = torch.empty_like(order)
        rank[order] = torch.arange(batch_size)
        slot_of_real = rank[row] * max_length + step
        slot_source = torch.full((batch_size * max_length,), len(row), dtype=torch.int64)
        slot_source[slot_of_real] = torch.arange(len(row))
        sorted_lengths = host_lengths[order]
        blocks = tuple(
            (start, min(start + QUERY_BLOCK, max_length), int((sorted_lengths > start).sum()))
            for start in range(0, max_length, QUERY_BLOCK)
        )
        return PackedLayout(
            batch_size=batch_size,
            seq_len=seq_len,
            max_length=max_length,
            real=(row * seq_len + step).to(lengths.device),
            slot_source=slot_source.view(batch_size, max_length).to(lengths.device),
            slot_of_real=slot_of_real.to(lengths.device),
            blocks=blocks,
        )

    def pack(self, padded: torch.Tensor) -> torch.Tensor:
        """[B, L, ...] -> [N, ...]: the real positions."""
        return padded.flatten(0, 1)[self.real]

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        """[N, ...] -> [B, L, ...] with zeros at the padding."""
        padded = packed.new_zeros(self.batch_size * self.seq_len, *packed.shape[1:])
        padded = padded.index_copy(0, self.real, packed)
        return padded.view(self.batch_size, self.seq_len, *packed.shape[1:])

    def head_rows(self, parts: int, num_heads: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Gather indices between packed rows [N, parts * H * d] and the attention layout
        [parts, B, H, max_length, d], both seen as matrices of d-wide rows.

        to_slots: [parts * B * H * max_length] packed row (n * parts + part) * H + h of every slot;
            padding slots get N * parts * H, a zero row that the caller appends.
        to_packed: [N * parts * H] slot row ((part * B + sorted row) * H + h) * max_length + t of every
            packed row.
        """
        device = self.real.device
        part = torch.arange(parts, device=device)
        head = torch.arange(num_heads, device=device)
        source = self.slot_source  # [B, L']
        to_slots = (source[None, :, None, :] * parts + part[:, None, None, None]) * num_heads
        to_slots = to_slots + head[None, None, :, None]  # [parts, B, H, L']
        padding = (source == len(self.slot_of_real))[None, :, None, :]
        to_slots = to_slots.masked_fill(padding, len(self.slot_of_real) * parts * num_heads)
        row = self.slot_of_real // self.max_length
        step = self.slot_of_real % self.max_length
        to_packed = (part[None, :, None] * self.batch_size + row[:, None, None]) * num_heads
        to_packed = (to_packed + head[None, None, :]) * self.max_length + step[:, None, None]  # [N, parts, H]
        return to_slots.flatten(), to_packed.flatten()


def random_int32(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """[*shape] int32, uniform over all 2**32 values, reproducible under torch.manual_seed.

    On CPU the bits come from numpy's SFC64 generator seeded by one draw from torch's global generator:
    about half the cost of torch's per-element Mersenne Twister draws (random_).
    """
    if device.type != "cpu":
        return torch.randint(-(2**31), 2**31, shape, dtype=torch.int32, device=device)
    count = math.prod(shape)
    bits = np.random.SFC64(int(torch.randint(2**62, ()))).random_raw((count + 1) // 2)
    return torch.from_numpy(bits.view(np.int32)[:count]).view(shape)


def _keep_threshold(p: float) -> int:
    """An int32 is below this with probability p (to within 2**-33)."""
    return round(p * 2**32) - 2**31


def keep_mask(shape: tuple[int, ...], p: float, device: torch.device) -> torch.Tensor:
    """[*shape] bool, each entry True with probability 1 - p, independently."""
    return random_int32(shape, device) >= _keep_threshold(p)


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        # The mask holds 0 or 1 / (1 - p): one multiplication forward and one backward.
        keep = random_int32(x.shape, x.device) >= _keep_threshold(p)
        scaled_mask = torch.where(keep, 1.0 / (1.0 - p), 0.0).to(x.dtype)
        ctx.save_for_backward(scaled_mask)
        return x * scaled_mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (scaled_mask,) = ctx.saved_tensors
        return grad * scaled_mask, None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout like F.dropout, with masks from `keep_mask`."""
    if not training or p == 0.0:
        return x
    return _Dropout.apply(x, p)


class _BlockedCausalAttention(torch.autograd.Function):
    """softmax(q k^T / sqrt(d) + causal mask) with dropout on the probabilities, times v, block by block.

    The scale 1 / sqrt(d) is applied to q and the dropout scale s = 1 / (1 - p) to v once per call. With
    P the probabilities, K the keep mask, D = P * K the dropped probabilities and dD the gradient of D,
    the gradient of the scores is P * (dD * K - rowsum(dD * D)) = dD * D - P * rowsum(dD * D), so the
    backward pass needs P and D only. Packed rows and the attention layout are converted by row gathers
    (PackedLayout.head_rows).
    """

    @staticmethod
    def forward(ctx, qkv: torch.Tensor, layout: PackedLayout, num_heads: int, p: float) -> torch.Tensor:
        num_real, width = qkv.shape
        head_dim = width // (3 * num_heads)
        rows, length = layout.batch_size, layout.max_length
        qkv_to_slots, slots_to_qkv = layout.head_rows(3, num_heads)
        out_to_slots, slots_to_out = layout.head_rows(1, num_heads)
        head_rows = torch.cat([qkv.reshape(-1, head_dim), qkv.new_zeros(1, head_dim)])
        # [N * 3 * H, d] -> q, k, v each [B, H, L', d]
        q, k, v = head_rows.index_select(0, qkv_to_slots).view(3, rows, num_heads, length, head_dim)
        scale = 1.0 / math.sqrt(head_dim)
        q.mul_(scale)
        if p > 0:
            v.mul_(1.0 / (1.0 - p))
            keep = keep_mask(
                (sum(n * num_heads * (end - start) * end for start, end, n in layout.blocks),), p, q.device
            )
        out = torch.empty_like(q)  # slots of padding stay unwritten and are never read
        saved, used = [], 0
        for start, end, n in layout.blocks:
            scores = q[:n, :, start:end] @ k[:n, :, :end].transpose(-1, -2)  # [n, H, end - start, end]
            future = torch.ones(end - start, end - start, dtype=torch.bool, device=q.device).triu_(1)
            scores[..., start:end].masked_fill_(future, float("-inf"))
            probabilities = scores.softmax(-1)
            dropped = probabilities
            if p > 0:
                dropped = probabilities * keep[used : used + probabilities.numel()].view(probabilities.shape)
                used += probabilities.numel()
            out[:n, :, start:end] = dropped @ v[:n, :, :end]
            saved.append((probabilities, dropped))
        ctx.save_for_backward(q, k, v, slots_to_qkv, out_to_slots)
        ctx.saved_blocks, ctx.layout, ctx.p, ctx.scale = saved, layout, p, scale
        return out.view(-1, head_dim).index_select(0, slots_to_out).view(num_real, num_heads * head_dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        q, k, v, slots_to_qkv, out_to_slots = ctx.saved_tensors  # q and v are scaled
        rows, num_heads, length, head_dim = q.shape
        grad_rows = torch.cat([grad.reshape(-1, head_dim), grad.new_zeros(1, head_dim)])
        grad_out = grad_rows.index_select(0, out_to_slots).view(rows, num_heads, length, head_dim)
        grad_qkv = torch.empty(3, rows, num_heads, length, head_dim, dtype=q.dtype, device=q.device)
        grad_q, grad_k, grad_v = grad_qkv  # gradients of the scaled q and v first
        grad_k.zero_()
        grad_v.zero_()
        for (start, end, n), (probabilities, dropped) in zip(
            ctx.layout.blocks, ctx.saved_blocks, strict=True
        ):
            grad_block = grad_out[:n, :, start:end]
            grad_v[:n, :, :end] += dropped.transpose(-1, -2) @ grad_block
            grad_scores = (grad_block @ v[:n, :, :end].transpose(-1, -2)).mul_(dropped)  # dD * D
            row_dot = grad_scores.sum(-1, keepdim=True)
            grad_scores.addcmul_(probabilities, row_dot, value=-1.0)
            grad_q[:n, :, start:end] = grad_scores @ k[:n, :, :end]
            grad_k[:n, :, :end] += grad_scores.transpose(-1, -2) @ q[:n, :, start:end]
        grad_q.mul_(ctx.scale)
        if ctx.p > 0:
            grad_v.mul_(1.0 / (1.0 - ctx.p))
        grad_qkv = grad_qkv.view(-1, head_dim).index_select(0, slots_to_qkv)
        return grad_qkv.view(-1, 3 * num_heads * head_dim), None, None, None


def blocked_causal_attention(
    qkv: torch.Tensor, layout: PackedLayout, num_heads: int, dropout_p: float
) -> torch.Tensor:
    """qkv: [N, 3 * D] packed queries, keys and values (nn.MultiheadAttention's in_proj layout) -> [N, D]."""
    return _BlockedCausalAttention.apply(qkv, layout, num_heads, dropout_p)
