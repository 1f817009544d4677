"""The public PyTorch port of the original SASRec code (experiment=sasrec_original).

Its block: queries-only pre-norm (keys and values read the un-normalised stream), each residual from the
normalised stream (the attention's from the normalised queries, the feed-forward's from its normalised
input), no dropout on the attention output, ReLU, layer norms with eps 1e-8 and a final one; item
embeddings scaled by sqrt(d), dropout on the embeddings; the left-padded window (seqrec.models.left_padding)
whose zero padding slots attention sees. Initialisation: Xavier normal for every matrix and table (the
attention's [3D, D] input projection as one matrix; the tables' fan counts the padding row the port's tables
have), attention biases 0, feed-forward biases PyTorch's default U(+-1/sqrt(fan_in)).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from seqrec.layers import CausalSelfAttention, Rows, initialise_parts
from seqrec.model import EncoderLayer
from seqrec.models.left_padding import LeftPaddedSasRec

EPS = 1e-8


class PyTorchPortLayer(EncoderLayer):
    def __init__(self, embedding_dim: int, num_heads: int, ffn_dim: int, dropout: float):
        super().__init__(embedding_dim, num_heads, ffn_dim, dropout, True, "relu", eps=EPS)
        del self.dropout1  # no dropout on the attention output (its weights still drop)

    def forward(self, x: torch.Tensor, rows: Rows) -> torch.Tensor:
        queries = rows.queries(self.norm1(x))
        x = self.norm2(queries + self.attention(queries, x, rows))
        return x + rows.drop(self.dropout2, self.feed_forward(x, rows))


class SasRecPyTorchPort(LeftPaddedSasRec):
    """The PyTorch port; defaults are its MovieLens-1M sizes. `dropout` also drops the embeddings."""

    def __init__(
        self,
        num_items: int,
        embedding_dim: int = 50,
        num_heads: int = 1,
        num_layers: int = 2,
        ffn_dim: int = 50,
        dropout: float = 0.2,
        max_seq_len: int = 200,
    ):
        sizes = (num_items, embedding_dim, num_heads, num_layers, ffn_dim, dropout, max_seq_len)
        super().__init__(*sizes, norm_first=True, activation="relu", layout="padded")
        self.embedding_dropout = nn.Dropout(dropout)

    def encoder_layer(self, embedding_dim, num_heads, ffn_dim, dropout) -> nn.Module:
        return PyTorchPortLayer(embedding_dim, num_heads, ffn_dim, dropout)

    def final_layer_norm(self, embedding_dim: int) -> nn.Module:
        return nn.LayerNorm(embedding_dim, eps=EPS)

    def item_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.item_embedding(inputs) * math.sqrt(self.item_embedding.embedding_dim)

    def initialise(self, root: nn.Module) -> None:
        initialise_parts(root, xavier_table, xavier_attention, xavier_linear)


def xavier_table(weight: torch.Tensor) -> None:
    rows, dim = weight.shape
    weight.normal_(0.0, math.sqrt(2.0 / (rows + 1 + dim)))  # + 1: the port's padding row


def xavier_attention(attention: CausalSelfAttention) -> None:
    for linear in (attention.qkv, attention.out):
        nn.init.zeros_(linear.bias)
        nn.init.xavier_normal_(linear.weight)


def xavier_linear(linear: nn.Linear) -> None:
    nn.init.xavier_normal_(linear.weight)
    bound = 1.0 / math.sqrt(linear.in_features)
    nn.init.uniform_(linear.bias, -bound, bound)
