"""SASRec backbone: item + position embeddings through a causal transformer encoder.

Reads top to bottom: layer norm, attention, one encoder layer, the backbone. Inputs are RIGHT-padded
windows (real items first, then padding) with their lengths, so the causal mask alone keeps every real
position blind to padding; outputs at padded positions are garbage and must be ignored.

The defaults are seqrec's own block (nn.TransformerEncoderLayer's layout). The other options reproduce
the original SASRec code and its ports (experiments/sasrec_original, experiments/ms_recommenders):
queries-only pre-norm whose residuals start from the normalised stream, ReLU, scaled item embeddings,
embedding dropout, per-position norm parameters, and attention to left padding.

Two layouts compute the same function: `padded` runs every [B, L] position through fused kernels
(F.scaled_dot_product_attention, the fast path on CUDA); `packed` (seqrec.packed) runs only the real
positions and the causal blocks of attention that matter, the fast path on CPU. Their dropout masks
follow the same distribution from different random draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqrec.initialization import INIT_SCHEMES, initialise
from seqrec.packed import PackedLayout, blocked_causal_attention, dropout

POSITION_ORDERS = ("backward", "forward")
SIMILARITIES = ("dot", "cosine")
LAYOUTS = ("auto", "padded", "packed")
ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


class LayerNorm(nn.Module):
    """Layer norm over the last dimension. Gain and bias are [D], or [P, D] with `num_positions` = P:
    one gain and bias per position index (the TF2 port's norm), picked by the `positions` of each row."""

    def __init__(self, dim: int, eps: float, num_positions: int | None = None):
        super().__init__()
        shape = (dim,) if num_positions is None else (num_positions, dim)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x: [B, L, D], positions: [B, L] int64 -> [B, L, D] (or packed: [N, D], [N] -> [N, D])."""
        if self.weight.dim() == 1:
            return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        return F.layer_norm(x, x.shape[-1:], eps=self.eps) * self.weight[positions] + self.bias[positions]


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention; `qkv` has the layout of nn.MultiheadAttention's in_proj.

    Without `out_projection` the heads' concatenated outputs are returned as they are (the TF2 port)."""

    def __init__(self, embedding_dim: int, num_heads: int, dropout: float, out_projection: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(embedding_dim, 3 * embedding_dim)
        self.out = nn.Linear(embedding_dim, embedding_dim) if out_projection else nn.Identity()

    def forward(
        self, x: torch.Tensor, keys_values: torch.Tensor | None = None, layout: PackedLayout | None = None
    ) -> torch.Tensor:
        """x: [B, L, D] input of the queries; keys_values: [B, L, D] input of keys and values
        (None: x, the usual self-attention) -> [B, L, D]. Packed real positions: [N, D] -> [N, D]."""
        dim = x.shape[-1]
        dropout_p = self.dropout if self.training else 0.0
        if keys_values is None:
            q, k, v = self.qkv(x).split(dim, dim=-1)
        else:
            weight, bias = self.qkv.weight, self.qkv.bias
            q = F.linear(x, weight[:dim], bias[:dim])
            k, v = F.linear(keys_values, weight[dim:], bias[dim:]).split(dim, dim=-1)
        if layout is not None:
            qkv = torch.cat([q, k, v], dim=1)
            return self.out(blocked_causal_attention(qkv, layout, self.num_heads, dropout_p))
        batch_size, seq_len, _ = x.shape
        # [B, L, D] -> [B, H, L, D / H]
        q, k, v = (t.view(batch_size, seq_len, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)
        return self.out(y.transpose(1, 2).reshape(batch_size, seq_len, dim))

    def last_query(self, x: torch.Tensor, keys_values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Inference at each row's last position only: x: [B, D] its query input, keys_values: [B, L, D]
        the row's inputs of keys and values (right-padded), lengths: [B] -> [B, D]."""
        (batch_size, seq_len, dim), weight, bias = keys_values.shape, self.qkv.weight, self.qkv.bias
        q = F.linear(x, weight[:dim], bias[:dim]).view(batch_size, self.num_heads, 1, -1)
        k, v = F.linear(keys_values, weight[dim:], bias[dim:]).split(dim, dim=-1)
        k, v = (t.view(batch_size, seq_len, self.num_heads, -1).transpose(1, 2) for t in (k, v))
        real_keys = torch.arange(seq_len, device=x.device)[None, :] < lengths[:, None]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=real_keys[:, None, None, :])
        return self.out(y.reshape(batch_size, dim))


@dataclass(frozen=True)
class BlockOptions:
    """How an encoder layer is wired (the model.* options of the same names)."""

    norm_first: bool = False
    norm_keys_values: bool = True
    residual_from_norm: bool = False
    ffn_norm: bool = True
    activation: str = "gelu"
    attention_output_dropout: bool = True
    attention_out_projection: bool = True
    ffn_output_dropout: bool = True
    layer_norm_eps: float = 1e-5
    norm_positions: int | None = None  # P for per-position norm parameters, None for shared ones


class EncoderLayer(nn.Module):
    """One transformer layer: post-norm like nn.TransformerEncoderLayer's default, or pre-norm.

    Pre-norm variants of the original SASRec code: keys and values may read the un-normalised stream
    (only the queries are normalised), each residual may start from the normalised stream instead of
    the raw one, and the feed-forward sub-layer may have no norm of its own.
    """

    def __init__(
        self, embedding_dim: int, num_heads: int, ffn_dim: int, dropout: float, options: BlockOptions
    ):
        super().__init__()
        self.options = options
        self.attention = CausalSelfAttention(
            embedding_dim, num_heads, dropout, out_projection=options.attention_out_projection
        )
        self.feed_forward = nn.Sequential(
            nn.Linear(embedding_dim, ffn_dim),
            ACTIVATIONS[options.activation](),
            nn.Dropout(dropout),
            nn.Linear(ffn_dim, embedding_dim),
        )
        eps, positions = options.layer_norm_eps, options.norm_positions
        self.norm1 = LayerNorm(embedding_dim, eps, positions)
        self.norm2 = LayerNorm(embedding_dim, eps, positions) if options.ffn_norm else None
        self.dropout1 = nn.Dropout(dropout) if options.attention_output_dropout else nn.Identity()
        self.dropout2 = nn.Dropout(dropout) if options.ffn_output_dropout else nn.Identity()

    def forward(
        self, x: torch.Tensor, positions: torch.Tensor, layout: PackedLayout | None = None
    ) -> torch.Tensor:
        """x: [B, L, D], positions: [B, L] int64 (for per-position norms) -> [B, L, D]; or packed real
        positions x: [N, D], positions: [N] given their layout -> [N, D]."""
        o = self.options

        def drop(module: nn.Module, values: torch.Tensor) -> torch.Tensor:
            # The packed path draws cheaper dropout masks (seqrec.packed.dropout) than nn.Dropout.
            if layout is None or not isinstance(module, nn.Dropout):
                return module(values)
            return dropout(values, module.p, module.training)

        def feed_forward(values: torch.Tensor) -> torch.Tensor:
            linear1, activation, inner_dropout, linear2 = self.feed_forward
            return linear2(drop(inner_dropout, activation(linear1(values))))

        if not o.norm_first:
            x = self.norm1(x + drop(self.dropout1, self.attention(x, layout=layout)), positions)
            return self.norm2(x + drop(self.dropout2, feed_forward(x)), positions)
        normed = self.norm1(x, positions)
        attended = self.attention(normed, None if o.norm_keys_values else x, layout)
        x = (normed if o.residual_from_norm else x) + drop(self.dropout1, attended)
        ffn_input = self.norm2(x, positions) if self.norm2 is not None else x
        return (ffn_input if o.residual_from_norm else x) + drop(self.dropout2, feed_forward(ffn_input))

    def last_positions(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        last: torch.Tensor,
        pad: Callable,
        lengths: torch.Tensor,
    ) -> torch.Tensor:
        """Inference output at each row's last position only, [B, D]: what forward() gives there.
        x, positions: the layer's input in either layout; last: [B] index of each row's last position in
        x's flattened positions; pad: x's layout -> right-padded [B, L, D]."""
        o = self.options
        flat, flat_positions = x.reshape(-1, x.shape[-1]), positions.reshape(-1)
        last_x, last_positions = flat[last], flat_positions[last]
        if not o.norm_first:
            h = self.norm1(last_x + self.attention.last_query(last_x, pad(x), lengths), last_positions)
            return self.norm2(h + self.feed_forward(h), last_positions)
        normed = self.norm1(flat, flat_positions)
        keys_values = normed.view(x.shape) if o.norm_keys_values else x
        attended = self.attention.last_query(normed[last], pad(keys_values), lengths)
        h = (normed[last] if o.residual_from_norm else last_x) + attended
        ffn_input = self.norm2(h, last_positions) if self.norm2 is not None else h
        return (ffn_input if o.residual_from_norm else h) + self.feed_forward(ffn_input)


class SasRecBackbone(nn.Module):
    """SASRec (Kang & McAuley, 2018) encoder; scores items by dot product with the input item table.

    The item table has no padding row: padding is handled by right padding plus `lengths`.
    Position index counts backward from the most recent item (most recent = 0, the protocol) or
    forward from the first one (first = 0).

    Two towers (the in-batch tutorial's head, experiments/two_tower): `query_projection` and
    `item_projection` put a linear layer (with bias) on the last hidden state and on the item table's
    output side (inputs still read the raw table); similarity="cosine" L2-normalises both vectors.
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
        norm_keys_values: bool = True,
        residual_from_norm: bool = False,
        ffn_norm: bool = True,
        norm_per_position: bool = False,
        layer_norm_eps: float = 1e-5,
        activation: str = "gelu",
        attention_out_projection: bool = True,
        attention_output_dropout: bool = True,
        embedding_dropout: float = 0.0,
        scale_item_embeddings: bool = False,
        attend_padding: bool = False,
        init: str = "trunc_normal",
        layout: str = "auto",
        ffn_output_dropout: bool = True,
        padding_embedding: bool = False,
        query_projection: bool = False,
        item_projection: bool = False,
        similarity: str = "dot",
    ):
        super().__init__()
        _check_hyperparameters(**{k: v for k, v in locals().items() if k not in ("self", "__class__")})
        self.max_seq_len = max_seq_len
        self.count_backward = position_order == "backward"
        self.item_scale = math.sqrt(embedding_dim) if scale_item_embeddings else 1.0
        self.attend_padding = attend_padding
        self.layout = layout
        self.similarity = similarity  # what item_vectors() @ query_vectors() computes; export records it

        self.item_embedding = nn.Embedding(num_items, embedding_dim)
        self.position_embedding = nn.Embedding(max_seq_len, embedding_dim)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        options = BlockOptions(
            norm_first=norm_first,
            norm_keys_values=norm_keys_values,
            residual_from_norm=residual_from_norm,
            ffn_norm=ffn_norm,
            activation=activation,
            attention_output_dropout=attention_output_dropout,
            attention_out_projection=attention_out_projection,
            ffn_output_dropout=ffn_output_dropout,
            layer_norm_eps=layer_norm_eps,
            norm_positions=max_seq_len if norm_per_position else None,
        )
        self.layers = nn.ModuleList(
            EncoderLayer(embedding_dim, num_heads, ffn_dim, dropout, options) for _ in range(num_layers)
        )
        # Pre-norm layers leave the residual stream unnormalised, so a final norm closes the stack.
        self.final_norm = (
            LayerNorm(embedding_dim, layer_norm_eps, options.norm_positions) if norm_first else None
        )
        initialise(self, init)
        # Optional parts are built and initialised after the rest, whose initial weights they leave as
        # they are without them.
        self.padding_embedding = nn.Embedding(1, embedding_dim) if padding_embedding else None
        self.query_projection = nn.Linear(embedding_dim, embedding_dim) if query_projection else None
        self.item_projection = nn.Linear(embedding_dim, embedding_dim) if item_projection else None
        for part in (self.padding_embedding, self.query_projection, self.item_projection):
            if part is not None:
                initialise(part, init)

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
        x, positions, layout = self._embed(inputs, lengths)
        if layout is not None:
            return layout.unpack(self._encode(x, positions, layout))
        if self.attend_padding:
            return self._encode_left_padded(x, lengths)
        return self._encode(x, positions)

    def _embed(
        self, inputs: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, PackedLayout | None]:
        """Embedded inputs with dropout and their position indices: [B, L, D] and [B, L] in the padded
        layout (layout None), [N, D] and [N] in the packed one."""
        seq_len = inputs.shape[1]
        if seq_len > self.max_seq_len:
            raise ValueError(f"inputs have {seq_len} positions but model.max_seq_len={self.max_seq_len}")
        positions = self.positions(lengths, seq_len)
        layout = None
        if self.layout == "packed" or (
            self.layout == "auto" and inputs.device.type == "cpu" and not self.attend_padding
        ):
            layout = PackedLayout.of(lengths, seq_len)
            inputs, positions = layout.pack(inputs), layout.pack(positions)
        items = self.item_embedding(inputs)
        if self.item_scale != 1.0:
            items = items * self.item_scale
        x = items + self.position_embedding(positions)
        if layout is not None:
            return dropout(x, self.embedding_dropout.p, self.training), positions, layout
        return self.embedding_dropout(x), positions, None

    def _encode(
        self, x: torch.Tensor, positions: torch.Tensor, layout: PackedLayout | None = None
    ) -> torch.Tensor:
        """x: [B, L, D] embedded inputs (or packed [N, D]) -> the same through the layers and final norm."""
        for layer in self.layers:
            x = layer(x, positions, layout)
        return self.final_norm(x, positions) if self.final_norm is not None else x

    def _encode_left_padded(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The PyTorch port's padding: every row sits at the right end of a max_seq_len window whose
        padding slots enter the first layer as zero vectors and are never masked, so real positions
        also attend to them. x: [B, L, D] right-padded -> [B, L, D] right-padded."""
        frame_len, (batch_size, seq_len, dim) = self.max_seq_len, x.shape
        # Frame slot s holds right-padded position s - (frame_len - length), or padding where that is < 0.
        source = torch.arange(frame_len, device=x.device)[None, :] - (frame_len - lengths)[:, None]
        is_real = source >= 0
        source = source.clamp(min=0)
        frame = x.gather(1, source[..., None].expand(batch_size, frame_len, dim))
        if self.count_backward:  # slot index counted from the window's end, padding slots included
            frame_positions = torch.arange(frame_len - 1, -1, -1, device=x.device).expand(
                batch_size, frame_len
            )
        else:
            frame_positions = source
        if self.padding_embedding is None:
            frame = frame.masked_fill(~is_real[..., None], 0.0)
        else:  # a padding item's embedding plus the slot's position, as a Keras table with mask_zero
            padding = self.padding_embedding.weight[0] + self.position_embedding(frame_positions)
            frame = torch.where(is_real[..., None], frame, self.embedding_dropout(padding))
        frame = self._encode(frame, frame_positions)
        slots = (frame_len - lengths)[:, None] + torch.arange(seq_len, device=x.device)[None, :]
        slots = slots.clamp(max=frame_len - 1)  # padding positions read a real slot: garbage, ignored
        return frame.gather(1, slots[..., None].expand(batch_size, seq_len, dim))

    def last_hidden(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, D]: the output at each row's most recent item (position lengths - 1).

        In inference the last layer computes only these positions (their keys and values still cover
        the whole row): the same function as forward() up to float rounding, for a fraction of the work.
        """
        rows = torch.arange(len(lengths), device=lengths.device)
        if self.training or self.attend_padding:
            return self.forward(inputs, lengths)[rows, lengths - 1]
        inputs = inputs[:, : int(lengths.max())]  # right padding beyond the longest row changes nothing
        x, positions, layout = self._embed(inputs, lengths)
        for layer in self.layers[:-1]:
            x = layer(x, positions, layout)
        if layout is None:
            last, pad = rows * inputs.shape[1] + lengths - 1, lambda values: values
        else:
            last, pad = torch.cumsum(lengths, 0) - 1, layout.unpack  # packed rows are in row-major order
        hidden = self.layers[-1].last_positions(x, positions, last, pad, lengths)
        if self.final_norm is None:
            return hidden
        return self.final_norm(hidden, positions.reshape(-1)[last])

    def item_vectors(self) -> torch.Tensor:
        """[I, D] float, the vectors that queries are scored against (training, evaluation, export):
        the item table, through item_projection if there is one, L2-normalised for cosine similarity."""
        vectors = self.item_embeddings
        if self.item_projection is not None:
            vectors = self.item_projection(vectors)
        return F.normalize(vectors, dim=-1) if self.similarity == "cosine" else vectors

    def query_vectors(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden: [S, D] last hidden states -> [S, D] query vectors, scored by a dot product with
        item_vectors() (through query_projection if there is one, L2-normalised for cosine)."""
        if self.query_projection is not None:
            hidden = self.query_projection(hidden)
        return F.normalize(hidden, dim=-1) if self.similarity == "cosine" else hidden

    def score(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden: [S, D] -> [S, I] scores against the whole catalog."""
        return self.query_vectors(hidden) @ self.item_vectors().T


def _check_hyperparameters(**h) -> None:
    """ValueError naming the model.<key> of the first impossible value."""
    for key in ("num_items", "embedding_dim", "num_heads", "num_layers", "ffn_dim", "max_seq_len"):
        if h[key] < 1:
            raise ValueError(f"model.{key} must be >= 1, got {h[key]}")
    if h["embedding_dim"] % h["num_heads"] != 0:
        raise ValueError(
            f"model.embedding_dim={h['embedding_dim']} must be divisible by model.num_heads={h['num_heads']}"
        )
    for key in ("dropout", "embedding_dropout"):
        if not 0.0 <= h[key] < 1.0:
            raise ValueError(f"model.{key} must be in [0, 1), got {h[key]}")
    if h["layer_norm_eps"] <= 0:
        raise ValueError(f"model.layer_norm_eps must be > 0, got {h['layer_norm_eps']}")
    for key, allowed in [
        ("layout", LAYOUTS),
        ("position_order", POSITION_ORDERS),
        ("activation", tuple(ACTIVATIONS)),
        ("init", INIT_SCHEMES),
        ("similarity", SIMILARITIES),
    ]:
        if h[key] not in allowed:
            raise ValueError(f"model.{key} must be one of {allowed}, got {h[key]!r}")
    pre_norm_only = {"norm_keys_values": False, "residual_from_norm": True, "ffn_norm": False}
    for key, value in pre_norm_only.items():
        if h[key] == value and not h["norm_first"]:
            raise ValueError(
                f"model.{key}={str(value).lower()} needs a pre-norm block: set model.norm_first=true"
            )
    if h["padding_embedding"] and not h["attend_padding"]:
        raise ValueError(
            "model.padding_embedding=true gives padding slots an embedding, but only with "
            "model.attend_padding=true does attention see padding slots; set it or padding_embedding=false"
        )
    if h["layout"] == "packed" and h["attend_padding"]:
        raise ValueError(
            "model.layout=packed computes only real positions but model.attend_padding=true attends to "
            "padding; use model.layout=auto or padded"
        )
