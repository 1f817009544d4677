"""The building blocks of every model variant: the positions a layer computes (Rows), causal self-attention,
the feed-forward sub-layer, the initialisation loop and the hyperparameter checks. Every layer takes its input
at every position and returns its output at the positions its Rows compute: all of them (training,
forward()), or each row's last one only (inference, last_hidden()), so that both run the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqrec.packed import PackedLayout, blocked_causal_attention, dropout

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}
CHOICES = {
    "layout": ("auto", "padded", "packed"),
    "position_order": ("backward", "forward"),
    "similarity": ("dot", "cosine"),
    "activation": tuple(ACTIVATIONS),
}


@dataclass(frozen=True)
class Rows:
    """Where the positions of an encoder input x are, and which of them a layer computes.

    positions: [B, L] position indices for x [B, L, D], or [N] for the packed real positions x [N, D];
    lengths: [B] real positions per row (the keys its queries see); layout: x's packed layout, or None;
    last: [B] flat index of each row's last position; last_only: compute there only ([B, D] out).
    """

    positions: torch.Tensor
    lengths: torch.Tensor
    layout: PackedLayout | None
    last: torch.Tensor
    last_only: bool = False

    def queries(self, values: torch.Tensor) -> torch.Tensor:
        """values laid out like `positions` (plus trailing dims), at the positions computed."""
        if not self.last_only:
            return values
        return values[self.last] if self.layout is not None else values.flatten(0, 1)[self.last]

    def drop(self, module: nn.Module, values: torch.Tensor) -> torch.Tensor:
        """module(values), with the packed layout's cheaper dropout masks for an nn.Dropout."""
        if self.layout is None or not isinstance(module, nn.Dropout):
            return module(values)
        return dropout(values, module.p, module.training)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention; `qkv` has the layout of nn.MultiheadAttention's in_proj.
    Without `out_projection` the heads' concatenated outputs are returned as they are (the TF2 port)."""

    def __init__(self, embedding_dim: int, num_heads: int, dropout: float, out_projection: bool = True):
        super().__init__()
        self.num_heads, self.dropout = num_heads, dropout
        self.qkv = nn.Linear(embedding_dim, 3 * embedding_dim)
        self.out = nn.Linear(embedding_dim, embedding_dim) if out_projection else nn.Identity()

    def forward(self, queries: torch.Tensor, keys_values: torch.Tensor, rows: Rows) -> torch.Tensor:
        """queries: the query input at the computed positions; keys_values: the key and value input at
        every position (the same tensor in plain self-attention) -> the output at the computed positions."""
        dim, weight, bias = keys_values.shape[-1], self.qkv.weight, self.qkv.bias
        if queries is keys_values:
            q, k, v = self.qkv(queries).split(dim, dim=-1)
        else:
            q = F.linear(queries, weight[:dim], bias[:dim])
            k, v = F.linear(keys_values, weight[dim:], bias[dim:]).split(dim, dim=-1)
        dropout_p = self.dropout if self.training else 0.0
        if rows.last_only:
            return self.out(self._at_last_positions(q, k, v, rows))
        if rows.layout is not None:
            qkv = torch.cat([q, k, v], dim=1)
            return self.out(blocked_causal_attention(qkv, rows.layout, self.num_heads, dropout_p))
        batch_size, seq_len, _ = keys_values.shape
        # [B, L, D] -> [B, H, L, D / H]
        q, k, v = (t.view(batch_size, seq_len, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)
        return self.out(y.transpose(1, 2).reshape(batch_size, seq_len, dim))

    def _at_last_positions(self, q, k, v, rows: Rows) -> torch.Tensor:
        """q: [B, D] at each row's last position; k, v: [B, L, D] (or packed [N, D]) -> [B, D]. The last
        query sees every real key of its row: the causal mask there."""
        if rows.layout is not None:
            k, v = rows.layout.unpack(k), rows.layout.unpack(v)
        (batch_size, seq_len, dim), heads = k.shape, self.num_heads
        q = q.view(batch_size, heads, 1, -1)
        k, v = (t.view(batch_size, seq_len, heads, -1).transpose(1, 2) for t in (k, v))
        real_keys = torch.arange(seq_len, device=k.device)[None, :] < rows.lengths[:, None]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=real_keys[:, None, None, :])
        return y.reshape(batch_size, dim)


class FeedForward(nn.Sequential):
    """Linear -> activation -> dropout -> Linear (parameters `0.*` and `3.*`)."""

    def __init__(self, embedding_dim: int, ffn_dim: int, dropout: float, activation: str):
        linear1, linear2 = nn.Linear(embedding_dim, ffn_dim), nn.Linear(ffn_dim, embedding_dim)
        super().__init__(linear1, ACTIVATIONS[activation](), nn.Dropout(dropout), linear2)

    def forward(self, x: torch.Tensor, rows: Rows) -> torch.Tensor:
        linear1, activation, inner_dropout, linear2 = self
        return linear2(rows.drop(inner_dropout, activation(linear1(x))))


def initialise_parts(root: nn.Module, table, attention, linear) -> None:
    """Initialise every parameter of `root` in place, module by module in registration order:
    table(weight) for each nn.Embedding, attention(module) for each CausalSelfAttention (its qkv and out
    included), linear(module) for every other nn.Linear. Norms keep their gain 1 and bias 0."""
    done = set()
    with torch.no_grad():
        for module in root.modules():
            if isinstance(module, CausalSelfAttention):
                attention(module)
                done.update(id(m) for m in module.modules())
            elif isinstance(module, nn.Embedding):
                table(module.weight)
            elif isinstance(module, nn.Linear) and id(module) not in done:
                linear(module)


def check_hyperparameters(h: dict) -> None:
    """h: SasRecBackbone's arguments; ValueError naming the model.<key> of the first impossible value."""
    for key in ("num_items", "embedding_dim", "num_heads", "num_layers", "ffn_dim", "max_seq_len"):
        if h[key] < 1:
            raise ValueError(f"model.{key} must be >= 1, got {h[key]}")
    if h["embedding_dim"] % h["num_heads"] != 0:
        raise ValueError(
            f"model.embedding_dim={h['embedding_dim']} must be divisible by model.num_heads={h['num_heads']}"
        )
    if not 0.0 <= h["dropout"] < 1.0:
        raise ValueError(f"model.dropout must be in [0, 1), got {h['dropout']}")
    for key, allowed in CHOICES.items():
        if h[key] not in allowed:
            raise ValueError(f"model.{key} must be one of {allowed}, got {h[key]!r}")
