"""The in-batch tutorial's Keras SASRec block (reference 004, Part A; experiment=two_tower).

Its block: x + MHA(LN(x), LN(x)) with dropout on the attention weights only, x + Dense(Dropout(
Dense_relu(LN(x)))) with no dropout on the output, a final LN, Keras's epsilon 1e-3; dropout on the
embeddings; the left-padded window (seqrec.models.left_padding) whose padding slots hold the padding item's
embedding plus the slot's position embedding (Keras loses the padding mask at the added position embedding,
so attention sees them). Initialisation as Keras defaults with keras.layers.MultiHeadAttention: Glorot
uniform, biases 0, tables U(-0.05, 0.05), and the attention kernels with MultiHeadAttention's shapes,
[D, H, D/H] for the query, key and value and [H, D/H, D] for the output, whose Glorot fans count the
leading dimensions too: fan_in H*D and fan_out D*D/H, and fan_in D and fan_out H*D.
The tutorial's two towers: model=two_tower_keras_port (query and item projections, cosine similarity).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from seqrec.layers import CausalSelfAttention, initialise_parts
from seqrec.model import EncoderLayer
from seqrec.models.left_padding import LeftPaddedSasRec
from seqrec.models.sasrec_tf2_port import glorot_linear, keras_table

EPS = 1e-3


class SasRecKerasPort(LeftPaddedSasRec):
    """The tutorial's block; defaults are its sizes. `dropout` also drops the embeddings."""

    def __init__(
        self,
        num_items: int,
        embedding_dim: int = 64,
        num_heads: int = 2,
        num_layers: int = 2,
        ffn_dim: int = 128,
        dropout: float = 0.2,
        max_seq_len: int = 50,
        query_projection: bool = False,
        item_projection: bool = False,
        similarity: str = "dot",
    ):
        sizes = (num_items, embedding_dim, num_heads, num_layers, ffn_dim, dropout, max_seq_len)
        super().__init__(
            *sizes, norm_first=True, activation="relu", layout="padded", query_projection=query_projection,
            item_projection=item_projection, similarity=similarity,
        )  # fmt: skip
        self.embedding_dropout = nn.Dropout(dropout)

    def encoder_layer(self, embedding_dim, num_heads, ffn_dim, dropout) -> nn.Module:
        layer = EncoderLayer(embedding_dim, num_heads, ffn_dim, dropout, True, "relu", eps=EPS)
        layer.dropout1 = layer.dropout2 = nn.Identity()  # dropout on the attention weights and inside only
        return layer

    def final_layer_norm(self, embedding_dim: int) -> nn.Module:
        return nn.LayerNorm(embedding_dim, eps=EPS)

    def late_parts(self, embedding_dim, query_projection, item_projection) -> dict[str, nn.Module | None]:
        padding = {"padding_embedding": nn.Embedding(1, embedding_dim)}
        return padding | super().late_parts(embedding_dim, query_projection, item_projection)

    def padding_slots(self, positions: torch.Tensor) -> torch.Tensor:
        return self.embedding_dropout(self.padding_embedding.weight[0] + self.position_embedding(positions))

    def initialise(self, root: nn.Module) -> None:
        initialise_parts(root, keras_table, multi_head_attention_glorot, glorot_linear)


def _glorot_uniform(weight: torch.Tensor, fan_in: int, fan_out: int) -> None:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    weight.uniform_(-limit, limit)


def multi_head_attention_glorot(attention: CausalSelfAttention) -> None:
    dim, heads = attention.qkv.in_features, attention.num_heads
    nn.init.zeros_(attention.qkv.bias)
    nn.init.zeros_(attention.out.bias)
    _glorot_uniform(attention.qkv.weight, fan_in=heads * dim, fan_out=dim * dim // heads)
    _glorot_uniform(attention.out.weight, fan_in=dim, fan_out=heads * dim)
