"""Microsoft Recommenders' TF2 port of SASRec (experiment=ms_recommenders; experiments/ms_recommenders).

Its block: queries-only pre-norm (keys and values read the un-normalised stream), the residual from the
normalised queries, no norm of the feed-forward sub-layer, no output projection of the attention heads and
no dropout on the attention output; layer norms with their own gain and bias per position (eps 1e-8); ReLU;
item embeddings scaled by sqrt(d) and dropout on the embeddings; right padding (padded or packed layout).
Initialisation as Keras defaults: Glorot uniform for each of the query, key and value projections and the
feed-forward matrices, biases 0, tables U(-0.05, 0.05).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqrec.layers import CausalSelfAttention, FeedForward, Rows, initialise_parts
from seqrec.model import SasRecBackbone

EPS = 1e-8


class PerPositionLayerNorm(nn.Module):
    """Layer norm over the last dimension whose gain and bias [P, D] are picked by each position index."""

    def __init__(self, dim: int, num_positions: int, eps: float = EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_positions, dim))
        self.bias = nn.Parameter(torch.zeros(num_positions, dim))

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x: [..., D], positions: [...] int64 -> [..., D]."""
        return F.layer_norm(x, x.shape[-1:], eps=self.eps) * self.weight[positions] + self.bias[positions]


class Tf2PortLayer(nn.Module):
    def __init__(self, embedding_dim: int, num_heads: int, ffn_dim: int, dropout: float, num_positions: int):
        super().__init__()
        self.attention = CausalSelfAttention(embedding_dim, num_heads, dropout, out_projection=False)
        self.feed_forward = FeedForward(embedding_dim, ffn_dim, dropout, "relu")
        self.norm1 = PerPositionLayerNorm(embedding_dim, num_positions)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, rows: Rows) -> torch.Tensor:
        queries = rows.queries(self.norm1(x, rows.positions))
        x = queries + self.attention(queries, x, rows)
        return x + rows.drop(self.dropout2, self.feed_forward(x, rows))


class SasRecTf2Port(SasRecBackbone):
    """The TF2 port; defaults are the notebook's sizes. `dropout` also drops the embeddings."""

    def __init__(
        self,
        num_items: int,
        embedding_dim: int = 100,
        num_heads: int = 1,
        num_layers: int = 2,
        ffn_dim: int = 100,
        dropout: float = 0.1,
        max_seq_len: int = 50,
        layout: str = "auto",
    ):
        sizes = (num_items, embedding_dim, num_heads, num_layers, ffn_dim, dropout, max_seq_len)
        super().__init__(*sizes, norm_first=True, activation="relu", layout=layout)
        self.embedding_dropout = nn.Dropout(dropout)

    def encoder_layer(self, embedding_dim, num_heads, ffn_dim, dropout) -> nn.Module:
        return Tf2PortLayer(embedding_dim, num_heads, ffn_dim, dropout, self.max_seq_len)

    def final_layer_norm(self, embedding_dim: int) -> nn.Module:
        return PerPositionLayerNorm(embedding_dim, self.max_seq_len)

    def final(self, x: torch.Tensor, rows: Rows) -> torch.Tensor:
        return self.final_norm(x, rows.queries(rows.positions))

    def item_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.item_embedding(inputs) * math.sqrt(self.item_embedding.embedding_dim)

    def embed(self, inputs: torch.Tensor, lengths: torch.Tensor, users=None) -> tuple[torch.Tensor, Rows]:
        x, rows = super().embed(inputs, lengths, users)
        return rows.drop(self.embedding_dropout, x), rows

    def initialise(self, root: nn.Module) -> None:
        initialise_parts(root, keras_table, glorot_attention, glorot_linear)


def keras_table(weight: torch.Tensor) -> None:
    weight.uniform_(-0.05, 0.05)


def glorot_linear(linear: nn.Linear) -> None:
    nn.init.xavier_uniform_(linear.weight)
    nn.init.zeros_(linear.bias)


def glorot_attention(attention: CausalSelfAttention) -> None:
    """Query, key and value are separate Dense layers, each [D, D]."""
    nn.init.zeros_(attention.qkv.bias)
    for projection in attention.qkv.weight.chunk(3, dim=0):
        nn.init.xavier_uniform_(projection)
    if isinstance(attention.out, nn.Linear):
        glorot_linear(attention.out)
