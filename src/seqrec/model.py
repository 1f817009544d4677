"""SASRec backbone: item + position embeddings through a causal transformer encoder.

Reads top to bottom: attention, one encoder layer, the backbone. Inputs are RIGHT-padded windows
(real items first, then padding) with their lengths, so the causal mask alone keeps every real
position blind to padding; outputs at padded positions are garbage and must be ignored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

POSITION_ORDERS = ("backward", "forward")


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention; `qkv` has the layout of nn.MultiheadAttention's in_proj."""

    def __init__(self, embedding_dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(embedding_dim, 3 * embedding_dim)
        self.out = nn.Linear(embedding_dim, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, L, D] -> [B, L, D]."""
        batch_size, seq_len, dim = x.shape
        q, k, v = self.qkv(x).split(dim, dim=2)
        # [B, L, D] -> [B, H, L, D / H]
        q, k, v = (t.view(batch_size, seq_len, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))
        dropout_p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)
        return self.out(y.transpose(1, 2).reshape(batch_size, seq_len, dim))


class EncoderLayer(nn.Module):
    """One transformer layer, post-norm like nn.TransformerEncoderLayer's default or pre-norm."""

    def __init__(self, embedding_dim: int, num_heads: int, ffn_dim: int, dropout: float, norm_first: bool):
        super().__init__()
        self.norm_first = norm_first
        self.attention = CausalSelfAttention(embedding_dim, num_heads, dropout)
        self.feed_forward = nn.Sequential(
            nn.Linear(embedding_dim, ffn_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ffn_dim, embedding_dim),
        )
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, L, D] -> [B, L, D]."""
        if self.norm_first:
            x = x + self.dropout1(self.attention(self.norm1(x)))
            return x + self.dropout2(self.feed_forward(self.norm2(x)))
        x = self.norm1(x + self.dropout1(self.attention(x)))
        return self.norm2(x + self.dropout2(self.feed_forward(x)))


class SasRecBackbone(nn.Module):
    """SASRec (Kang & McAuley, 2018) encoder; scores items by dot product with the input item table.

    The item table has no padding row: padding is handled by right padding plus `lengths`.
    Position index counts backward from the most recent item (most recent = 0, the protocol) or
    forward from the first one (first = 0).
    """

    def __init__(
        self,
        num_items: int,
        embedding_dim: int = 64,
        num_heads: int = 2,
        num_layers: int = 2,
        ffn_dim: int = 256,
        dropout: float = 0.1,
        max_seq_len: int = 200,
        norm_first: bool = False,
        position_order: str = "backward",
    ):
        super().__init__()
        for key, value in [
            ("num_items", num_items),
            ("embedding_dim", embedding_dim),
            ("num_heads", num_heads),
            ("num_layers", num_layers),
            ("ffn_dim", ffn_dim),
            ("max_seq_len", max_seq_len),
        ]:
            if value < 1:
                raise ValueError(f"model.{key} must be >= 1, got {value}")
        if embedding_dim % num_heads != 0:
            raise ValueError(
                f"model.embedding_dim={embedding_dim} must be divisible by model.num_heads={num_heads}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {dropout}")
        if position_order not in POSITION_ORDERS:
            raise ValueError(f"model.position_order must be one of {POSITION_ORDERS}, got {position_order!r}")
        self.max_seq_len = max_seq_len
        self.count_backward = position_order == "backward"

        self.item_embedding = nn.Embedding(num_items, embedding_dim)
        self.position_embedding = nn.Embedding(max_seq_len, embedding_dim)
        self.layers = nn.ModuleList(
            EncoderLayer(embedding_dim, num_heads, ffn_dim, dropout, norm_first) for _ in range(num_layers)
        )
        # Pre-norm layers leave the residual stream unnormalised, so a final norm closes the stack.
        self.final_norm = nn.LayerNorm(embedding_dim) if norm_first else nn.Identity()
        self.apply(_init_weights)

    @property
    def item_embeddings(self) -> torch.Tensor:
        """[I, D] float, the item table (shared by inputs and scoring)."""
        return self.item_embedding.weight

    def positions(self, lengths: torch.Tensor, seq_len: int) -> torch.Tensor:
        """[B, L] int64 position indices for right-padded rows (padding positions get a valid dummy)."""
        steps = torch.arange(seq_len, device=lengths.device)[None, :]
        if not self.count_backward:
            return steps.expand(len(lengths), seq_len)
        return (lengths[:, None] - 1 - steps).clamp(min=0)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """inputs: [B, L] int64 right-padded item ids, lengths: [B] int64 in [1, L] -> hidden [B, L, D]."""
        seq_len = inputs.shape[1]
        if seq_len > self.max_seq_len:
            raise ValueError(f"inputs have {seq_len} positions but model.max_seq_len={self.max_seq_len}")
        x = self.item_embedding(inputs) + self.position_embedding(self.positions(lengths, seq_len))
        for layer in self.layers:
            x = layer(x)
        return self.final_norm(x)

    def last_hidden(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, D]: the output at each row's most recent item (position lengths - 1)."""
        hidden = self.forward(inputs, lengths)
        return hidden[torch.arange(len(lengths), device=hidden.device), lengths - 1]

    def score(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden: [S, D] -> [S, I] scores against the whole catalog."""
        return hidden @ self.item_embeddings.T


def _init_weights(module: nn.Module) -> None:
    """Truncated normal(0, 0.02) cut at +-0.04 for every weight; norms' weights 1; biases 0."""
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear | nn.Embedding):
        nn.init.trunc_normal_(module.weight, 0.0, 0.02, -0.04, 0.04)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
