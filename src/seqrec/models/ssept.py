"""SSE-PT (Wu, Li, Hsieh and Sharpnack, RecSys 2020) as Microsoft Recommenders builds it on its TF2 SASRec
(recommenders.models.sasrec.ssept, the SASRec notebook's model_name='ssept'; experiments/ms_recommenders).

Personalised transformer: each input position is the concatenation [item embedding * sqrt(d_i) | user
embedding * sqrt(d_u)] plus a position embedding of the joined width d = d_i + d_u, through the TF2 port's
block at width d (seqrec.models.sasrec_tf2_port). Item j's score joins the user to the item on the output
side too: <h, [e_j | sqrt(d_u) u]> = <h[:d_i], e_j> + sqrt(d_u) <h[d_i:], u>. seqrec scores with a dot
product of query_vectors(hidden, users) and item_vectors(), so that every objective, full-catalog evaluation
and export work unchanged: the item vectors are [e_j | 1] and the query's last column holds the user term.

Stochastic shared embeddings (SSE, the SSE-PT authors' sampler; Microsoft Recommenders' sampler has none,
so the notebook's SSE-PT runs with both probabilities 0): in training only, each row's user is replaced by
a uniformly drawn user with probability `sse_user_prob`, and each real input position is chosen with
probability `sse_item_prob`: its input item becomes a uniformly drawn item, which is also the target of the
position before it (the same event in its other role), and its own target another uniformly drawn item.
The replaced batch is used everywhere in the step (input, output side, objective), as the sampler's batch
is; negatives still avoid the user's true history. Evaluation and serving never replace anything.

Unknown users: a user the model has not trained on (no training row: e.g. a time split's user whose events
all come after t_valid; a history given without a user; an id outside the saved users) gets the mean of the
embeddings of the users it has trained on, at the input and on the output side. The model marks the users of
every training batch (before SSE) in the buffer `user_trained`, saved with the weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqrec.data.batches import TrainBatch
from seqrec.layers import Rows
from seqrec.model import SasRecBackbone
from seqrec.models.sasrec_tf2_port import SasRecTf2Port, keras_table


class SsePt(SasRecTf2Port):
    """SSE-PT on the TF2 port's block; defaults are the notebook's sizes and Microsoft Recommenders' SSE
    (none). embedding_dim: the item embedding width d_i; user_embedding_dim: d_u; the transformer, the
    position table and the hidden states are d_i + d_u wide; ffn_dim: the feed-forward's inner width."""

    def __init__(
        self,
        num_items: int,
        num_users: int,
        embedding_dim: int = 100,
        user_embedding_dim: int = 100,
        num_heads: int = 1,
        num_layers: int = 2,
        ffn_dim: int = 200,
        dropout: float = 0.1,
        max_seq_len: int = 50,
        sse_user_prob: float = 0.0,
        sse_item_prob: float = 0.0,
        layout: str = "auto",
    ):
        _check(locals())
        width = embedding_dim + user_embedding_dim
        # The base class builds a [num_items, width] item table; SSE-PT's is d_i wide, built below.
        super().__init__(1, width, num_heads, num_layers, ffn_dim, dropout, max_seq_len, layout)
        self.num_users, self.sse_user_prob, self.sse_item_prob = num_users, sse_user_prob, sse_item_prob
        self.item_embedding = nn.Embedding(num_items, embedding_dim)
        self.user_embedding = nn.Embedding(num_users, user_embedding_dim)
        with torch.no_grad():
            keras_table(self.item_embedding.weight)
            keras_table(self.user_embedding.weight)
        self.register_buffer("user_trained", torch.zeros(num_users, dtype=torch.bool))

    # ----- users -----
    def user_vectors(self, users: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        """[B, d_u] each row's user embedding times sqrt(d_u): the table's row in training; in evaluation
        the row of a trained user, the mean of the trained users' rows for any other (users None or < 0,
        or a user never trained on)."""
        table = self.user_embedding.weight
        scale = math.sqrt(table.shape[1])
        if self.training:  # the split's own ids: checked there, not by a host sync in every step
            if users is None:
                raise ValueError("model=ssept trains on each row's user: the training rows carry no user ids")
            return table[users] * scale
        if users is not None and len(users) and int(users.max()) >= self.num_users:
            raise ValueError(
                f"user id {int(users.max())} is outside the model's {self.num_users} users (model.num_users)"
            )
        trained = self.user_trained
        fallback = (table[trained] if bool(trained.any()) else table).mean(0)
        if users is None:
            return fallback.expand(batch_size, -1) * scale
        known = (users >= 0) & trained[users.clamp(min=0)]
        return torch.where(known[:, None], table[users.clamp(min=0)], fallback) * scale

    def training_batch(self, batch: TrainBatch) -> TrainBatch:
        """The batch a training step uses: its users marked as trained, then SSE's replacements."""
        if not self.training:
            return batch
        if batch.users is None:
            raise ValueError("model=ssept trains on each row's user: the training rows carry no user ids")
        self.user_trained[batch.users] = True
        users = replace_users(batch.users, self.sse_user_prob, self.num_users)
        inputs, targets = replace_items(
            batch.inputs, batch.targets, batch.lengths, self.sse_item_prob, self.item_embedding.num_embeddings
        )
        return batch._replace(inputs=inputs, targets=targets, users=users)

    # ----- the joined embedding -----
    def item_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """[..., d]: the scaled item embedding in the first d_i columns, zeros in the user's d_u."""
        return F.pad(super().item_inputs(inputs), (0, self.user_embedding.embedding_dim))

    def embed(self, inputs: torch.Tensor, lengths: torch.Tensor, users=None) -> tuple[torch.Tensor, Rows]:
        """The encoder input [item * sqrt(d_i) | user * sqrt(d_u)] + position, then embedding dropout."""
        x, rows = SasRecBackbone.embed(self, inputs, lengths)  # items + positions, before the port's dropout
        user = F.pad(self.user_vectors(users, len(lengths)), (self.item_embedding.embedding_dim, 0))  # [B, d]
        per_position = user[:, None, :].expand(*inputs.shape, -1)
        x = x + (rows.layout.pack(per_position) if rows.layout is not None else per_position)
        return rows.drop(self.embedding_dropout, x), rows

    # ----- scoring -----
    def item_vectors(self) -> torch.Tensor:
        """[I, d_i + 1]: each item's embedding and a 1, the column of the query's user term."""
        items = self.item_embedding.weight
        return torch.cat([items, items.new_ones(len(items), 1)], -1)

    def query_vectors(self, hidden: torch.Tensor, users=None) -> torch.Tensor:
        """hidden [S, d] -> [S, d_i + 1]: hidden's item part, and the user term <hidden's user part, u>."""
        item_dim = self.item_embedding.embedding_dim
        item_part, user_part = hidden.split([item_dim, hidden.shape[-1] - item_dim], -1)
        user_term = (user_part * self.user_vectors(users, len(hidden))).sum(-1, keepdim=True)
        return torch.cat([item_part, user_term], -1)


def replace_users(users: torch.Tensor, prob: float, num_users: int) -> torch.Tensor:
    """users [B], each replaced with probability `prob` by a uniform draw of 0..num_users-1."""
    if prob == 0.0:
        return users
    chosen = torch.rand(users.shape, device=users.device) < prob
    return torch.where(chosen, torch.randint_like(users, num_users), users)


def replace_items(
    inputs: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor, prob: float, num_items: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """SSE on the items of training rows (inputs, targets [B, L] right-padded, targets[t] = inputs[t+1]
    before the row's last position): each real position is chosen with probability `prob` (see swap_items)."""
    if prob == 0.0:
        return inputs, targets
    real = torch.arange(inputs.shape[1], device=inputs.device)[None, :] < lengths[:, None]
    chosen = (torch.rand(inputs.shape, device=inputs.device) < prob) & real
    draws = torch.randint_like(inputs, num_items), torch.randint_like(targets, num_items)
    return swap_items(inputs, targets, chosen, *draws)


def swap_items(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    chosen: torch.Tensor,
    input_draws: torch.Tensor,
    target_draws: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The SSE-PT sampler's replacement, all [B, L]: a chosen input t becomes input_draws[t], which is also
    the target of t - 1 (the same event in its other role), and the target of t becomes target_draws[t]."""
    new_inputs = torch.where(chosen, input_draws, inputs)
    next_chosen, next_inputs = torch.zeros_like(chosen), torch.zeros_like(inputs)
    next_chosen[:, :-1], next_inputs[:, :-1] = chosen[:, 1:], new_inputs[:, 1:]
    new_targets = torch.where(next_chosen, next_inputs, targets)
    return new_inputs, torch.where(chosen, target_draws, new_targets)


def _check(h: dict) -> None:
    """ValueError naming the model.<key> of the first impossible value the base class does not check."""
    for key in ("num_items", "num_users", "embedding_dim", "user_embedding_dim", "num_heads"):
        if h[key] < 1:
            raise ValueError(f"model.{key} must be >= 1, got {h[key]}")
    width = h["embedding_dim"] + h["user_embedding_dim"]
    if width % h["num_heads"] != 0:
        raise ValueError(
            f"model.embedding_dim + model.user_embedding_dim = {width} (the transformer's width) must be "
            f"divisible by model.num_heads={h['num_heads']}"
        )
    for key in ("sse_user_prob", "sse_item_prob"):
        if not 0.0 <= h[key] <= 1.0:
            raise ValueError(f"model.{key} must be in [0, 1], got {h[key]}")
