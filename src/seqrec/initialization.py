"""Weight initialisation of the backbone (`model.init`): seqrec's own, or that of a reference port.

- trunc_normal (seqrec): every matrix and table N(0, 0.02) truncated at +-0.04, biases 0.
- xavier_normal (the PyTorch port of the original SASRec): Xavier normal for every matrix and table,
  the attention's fused [3D, D] input projection taken as one matrix; the tables' fan counts the padding
  row the port's tables have; attention biases 0, feed-forward biases PyTorch's default U(+-1/sqrt(fan_in)).
- glorot_uniform (Keras defaults, the TF2 port in Microsoft Recommenders): Glorot uniform for each of
  the query, key and value projections separately and for the feed-forward matrices, all biases 0,
  tables U(-0.05, 0.05).
- keras_attention (Keras defaults with keras.layers.MultiHeadAttention, the two-tower tutorial): as
  glorot_uniform, but the attention kernels have MultiHeadAttention's shapes, [D, H, D/H] for the query,
  key and value and [H, D/H, D] for the output, and Keras counts Glorot fans over the leading dimensions
  too: fan_in H*D and fan_out D*D/H for the first three, fan_in D and fan_out H*D for the output.
Layer norms always start at gain 1, bias 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

INIT_SCHEMES = ("trunc_normal", "xavier_normal", "glorot_uniform", "keras_attention")


def initialise(model: nn.Module, scheme: str) -> None:
    """Initialise every parameter of a SasRecBackbone in place with `scheme` (one of INIT_SCHEMES)."""
    from seqrec.model import CausalSelfAttention, LayerNorm

    if scheme not in INIT_SCHEMES:
        raise ValueError(f"model.init must be one of {INIT_SCHEMES}, got {scheme!r}")
    attention_linears = set()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, CausalSelfAttention):
                _attention(module, scheme)
                attention_linears.update(id(m) for m in (module.qkv, module.out))
            elif isinstance(module, LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                _table(module.weight, scheme)
            elif isinstance(module, nn.Linear) and id(module) not in attention_linears:
                _feed_forward(module, scheme)


def _trunc_normal(weight: torch.Tensor) -> None:
    nn.init.trunc_normal_(weight, 0.0, 0.02, -0.04, 0.04)


def _table(weight: torch.Tensor, scheme: str) -> None:
    if scheme == "trunc_normal":
        _trunc_normal(weight)
    elif scheme == "xavier_normal":
        rows, dim = weight.shape
        weight.normal_(0.0, math.sqrt(2.0 / (rows + 1 + dim)))  # + 1: the port's padding row
    else:
        weight.uniform_(-0.05, 0.05)


def _attention(attention: nn.Module, scheme: str) -> None:
    qkv, out = attention.qkv, attention.out
    linears = [qkv] + ([out] if isinstance(out, nn.Linear) else [])
    for linear in linears:
        nn.init.zeros_(linear.bias)
    if scheme == "trunc_normal":
        for linear in linears:
            _trunc_normal(linear.weight)
    elif scheme == "xavier_normal":
        for linear in linears:
            nn.init.xavier_normal_(linear.weight)
    elif scheme == "glorot_uniform":
        for projection in qkv.weight.chunk(3, dim=0):  # query, key and value are separate Dense layers
            nn.init.xavier_uniform_(projection)
        if isinstance(out, nn.Linear):
            nn.init.xavier_uniform_(out.weight)
    else:
        dim, heads = qkv.in_features, attention.num_heads
        _glorot_uniform(qkv.weight, fan_in=heads * dim, fan_out=dim * dim // heads)
        if isinstance(out, nn.Linear):
            _glorot_uniform(out.weight, fan_in=dim, fan_out=heads * dim)


def _glorot_uniform(weight: torch.Tensor, fan_in: int, fan_out: int) -> None:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    weight.uniform_(-limit, limit)


def _feed_forward(linear: nn.Linear, scheme: str) -> None:
    if scheme == "trunc_normal":
        _trunc_normal(linear.weight)
        nn.init.zeros_(linear.bias)
    elif scheme == "xavier_normal":
        nn.init.xavier_normal_(linear.weight)
        bound = 1.0 / math.sqrt(linear.in_features)
        nn.init.uniform_(linear.bias, -bound, bound)
    else:
        nn.init.xavier_uniform_(linear.weight)
        nn.init.zeros_(linear.bias)
