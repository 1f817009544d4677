"""SASRec, seqrec's own block: item + position embeddings through a causal transformer encoder.

The encoder layer, then the backbone (their parts: seqrec.layers). Inputs are RIGHT-padded windows with their
lengths, so the causal mask alone keeps every real position blind to padding; outputs at padded positions
are garbage and must be ignored. Two layouts compute the same function: `padded` runs every [B, L] position
through fused kernels (the fast path on CUDA); `packed` (seqrec.packed) only the real positions and the
causal blocks of attention that matter (the fast path on CPU), with dropout masks from other random draws.
The reference ports (seqrec.models) subclass the backbone and override its hooks: encoder_layer,
final_layer_norm, late_parts, initialise, item_inputs, embed, final.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from seqrec.layers import CausalSelfAttention, FeedForward, Rows, check_hyperparameters
from seqrec.packed import PackedLayout


class EncoderLayer(nn.Module):
    """One transformer layer as nn.TransformerEncoderLayer lays it out: post-norm, or pre-norm."""

    def __init__(self, embedding_dim, num_heads, ffn_dim, dropout, norm_first, activation, eps=1e-5):
        super().__init__()
        self.norm_first = norm_first
        self.attention = CausalSelfAttention(embedding_dim, num_heads, dropout)
        self.feed_forward = FeedForward(embedding_dim, ffn_dim, dropout, activation)
        self.norm1, self.norm2 = nn.LayerNorm(embedding_dim, eps), nn.LayerNorm(embedding_dim, eps)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, rows: Rows) -> torch.Tensor:
        """x: [B, L, D] (or packed [N, D]) at every position -> the output at the positions rows computes."""
        if self.norm_first:
            normed = self.norm1(x)
            x = rows.queries(x) + rows.drop(self.dropout1, self.attention(rows.queries(normed), normed, rows))
            return x + rows.drop(self.dropout2, self.feed_forward(self.norm2(x), rows))
        queries = rows.queries(x)
        x = self.norm1(queries + rows.drop(self.dropout1, self.attention(queries, x, rows)))
        return self.norm2(x + rows.drop(self.dropout2, self.feed_forward(x, rows)))


class SasRecBackbone(nn.Module):
    """SASRec (Kang & McAuley, 2018); scores items by dot product with the input item table.

    The item table has no padding row: padding is handled by right padding plus `lengths`. Position index
    counts backward from the most recent item (most recent = 0, the protocol) or forward from the first.
    Two towers (model=two_tower): `query_projection` and `item_projection` put a linear layer (with bias)
    on the last hidden state and on the item table's output side; similarity="cosine" L2-normalises both.
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
        activation: str = "gelu",
        position_order: str = "backward",
        layout: str = "auto",
        query_projection: bool = False,
        item_projection: bool = False,
        similarity: str = "dot",
    ):
        super().__init__()
        check_hyperparameters(locals())
        self.max_seq_len, self.layout, self.similarity = max_seq_len, layout, similarity
        self.count_backward = position_order == "backward"
        self.norm_first, self.activation = norm_first, activation
        self.item_embedding = nn.Embedding(num_items, embedding_dim)
        self.position_embedding = nn.Embedding(max_seq_len, embedding_dim)
        self.layers = nn.ModuleList(
            self.encoder_layer(embedding_dim, num_heads, ffn_dim, dropout) for _ in range(num_layers)
        )
        # Pre-norm layers leave the residual stream unnormalised, so a final norm closes the stack.
        self.final_norm = self.final_layer_norm(embedding_dim) if norm_first else None
        self.initialise(self)
        late = self.late_parts(embedding_dim, query_projection, item_projection)
        for name, part in late.items():
            setattr(self, name, part)
        for part in late.values():
            if part is not None:
                self.initialise(part)

    def encoder_layer(self, embedding_dim, num_heads, ffn_dim, dropout) -> nn.Module:
        return EncoderLayer(embedding_dim, num_heads, ffn_dim, dropout, self.norm_first, self.activation)

    def final_layer_norm(self, embedding_dim: int) -> nn.Module:
        return nn.LayerNorm(embedding_dim)

    def late_parts(self, embedding_dim, query_projection, item_projection) -> dict[str, nn.Module | None]:
        """Built and initialised after the rest, whose initial weights they leave as they are: the heads."""

        def linear(on: bool) -> nn.Linear | None:
            return nn.Linear(embedding_dim, embedding_dim) if on else None

        return {"query_projection": linear(query_projection), "item_projection": linear(item_projection)}

    def initialise(self, root: nn.Module) -> None:
        """Every matrix and table of `root` N(0, 0.02) truncated at +-0.04, biases 0 (norms: 1 and 0)."""
        with torch.no_grad():
            for module in root.modules():
                if isinstance(module, nn.Linear | nn.Embedding):
                    nn.init.trunc_normal_(module.weight, 0.0, 0.02, -0.04, 0.04)
                if isinstance(module, nn.Linear):
                    nn.init.zeros_(module.bias)

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

    def item_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.item_embedding(inputs)  # the ports scale it

    def embed(self, inputs: torch.Tensor, lengths: torch.Tensor, users=None) -> tuple[torch.Tensor, Rows]:
        """The encoder's input: [B, L, D] in the padded layout, [N, D] in the packed one; and its Rows."""
        (batch_size, seq_len), device = inputs.shape, inputs.device
        if seq_len > self.max_seq_len:
            raise ValueError(f"inputs have {seq_len} positions but model.max_seq_len={self.max_seq_len}")
        positions, layout = self.positions(lengths, seq_len), None
        last = torch.arange(batch_size, device=device) * seq_len + lengths - 1
        if self.layout == "packed" or (self.layout == "auto" and device.type == "cpu"):
            layout = PackedLayout.of(lengths, seq_len)
            inputs, positions = layout.pack(inputs), layout.pack(positions)
            last = torch.cumsum(lengths, 0) - 1  # packed rows are in row-major order
        x = self.item_inputs(inputs) + self.position_embedding(positions)
        return x, Rows(positions, lengths, layout, last)

    def encode(self, x: torch.Tensor, rows: Rows, last_only: bool = False) -> torch.Tensor:
        """The layers and the final norm; last_only: the last layer computes rows.last only, [B, D]."""
        for layer in self.layers[:-1]:
            x = layer(x, rows)
        rows = replace(rows, last_only=last_only)
        return self.final(self.layers[-1](x, rows), rows)

    def final(self, x: torch.Tensor, rows: Rows) -> torch.Tensor:
        return self.final_norm(x) if self.final_norm is not None else x

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor, users=None) -> torch.Tensor:
        """inputs: [B, L] int64 right-padded item ids, lengths: [B] in [1, L] -> [B, L, D] (users: unused)."""
        x, rows = self.embed(inputs, lengths, users)
        hidden = self.encode(x, rows)
        return rows.layout.unpack(hidden) if rows.layout is not None else hidden

    def last_hidden(self, inputs: torch.Tensor, lengths: torch.Tensor, users=None) -> torch.Tensor:
        """[B, D] at each row's most recent item. In inference the last layer computes there only (keys and
        values over the whole row): forward()'s function up to rounding, for a fraction of the work."""
        if self.training:
            return self.forward(inputs, lengths, users)[torch.arange(len(lengths)), lengths - 1]
        x, rows = self.embed(inputs[:, : int(lengths.max())], lengths, users)  # right padding changes nothing
        return self.encode(x, rows, last_only=True)

    def item_vectors(self) -> torch.Tensor:
        """[I, D], what queries are scored against (training, evaluation, export): the item table, through
        item_projection if there is one, L2-normalised for cosine similarity."""
        vectors = self.item_embeddings
        if self.item_projection is not None:
            vectors = self.item_projection(vectors)
        return F.normalize(vectors, dim=-1) if self.similarity == "cosine" else vectors

    def query_vectors(self, hidden: torch.Tensor, users=None) -> torch.Tensor:
        """hidden: [S, D] last hidden states -> [S, D] (query_projection, L2-normalised for cosine)."""
        if self.query_projection is not None:
            hidden = self.query_projection(hidden)
        return F.normalize(hidden, dim=-1) if self.similarity == "cosine" else hidden

    def score(
        self, hidden: torch.Tensor, users=None, item_vectors: torch.Tensor | None = None
    ) -> torch.Tensor:
        """hidden: [S, D] -> [S, I] scores against the whole catalog. item_vectors: self.item_vectors(),
        computed once by a caller scoring many batches with fixed weights (seqrec.train.inference_scores)."""
        items = self.item_vectors() if item_vectors is None else item_vectors
        return self.query_vectors(hidden, users) @ items.T
