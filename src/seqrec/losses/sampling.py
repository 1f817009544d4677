"""Helpers shared by the objective heads: negative draws, accidental-hit masks, float32 logits.

Draws use torch's global generator on the batch's device. Logits are computed with autocast
disabled so that a bf16/fp16 autocast region upstream never lowers the precision of a loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Rejection rounds for `resample_seen`; each round redraws only the rejected entries.
MAX_RESAMPLE_ROUNDS = 10


def at_least_float32(values: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 values upcast to float32; float32 and float64 pass through unchanged."""
    return values.to(torch.promote_types(values.dtype, torch.float32))


def pair_scores(queries: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products in at least float32: queries [N, D], items [N, D] -> [N]."""
    return (at_least_float32(queries) * at_least_float32(items)).sum(dim=-1)


def score_matrix(queries: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """All dot products in at least float32: queries [N, D], items [K, D] -> [N, K]."""
    with torch.autocast(queries.device.type, enabled=False):
        return at_least_float32(queries) @ at_least_float32(items).T


def batched_score_matrix(queries: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Per-row dot products in at least float32: queries [B, M, D], items [B, K, D] -> [B, M, K]."""
    with torch.autocast(queries.device.type, enabled=False):
        return torch.bmm(at_least_float32(queries), at_least_float32(items).transpose(1, 2))


def uniform_items(num_items: int, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Item ids drawn uniformly from the whole catalog with replacement: [*shape] int64."""
    return torch.randint(num_items, shape, device=device)


def prior_items(item_prior: torch.Tensor, num: int) -> torch.Tensor:
    """[num] int64 item ids drawn with replacement, proportionally to item_prior [I]."""
    return torch.multinomial(item_prior, num, replacement=True)


def pool_indices(pool_size: int, num: int, device: torch.device) -> torch.Tensor:
    """[min(num, pool_size)] int64 distinct indices into a pool, drawn without replacement."""
    return torch.randperm(pool_size, device=device)[:num]


def accidental_hits(positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """[N, K] bool: negative k of position n is the position's own positive. positives [N], negatives [K]."""
    return positives[:, None] == negatives[None, :]


def positive_first_cross_entropy(
    positive_logits: torch.Tensor, negative_logits: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy with the positive as class 0: positive_logits [N], negative_logits [N, K]."""
    logits = torch.cat([positive_logits[:, None], negative_logits], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


def window_events(
    item_seq: torch.Tensor, start: torch.Tensor, end: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every event of the windows item_seq[start[b]:end[b]] as (window index [M], item [M]) int64."""
    lengths = end - start
    windows = torch.repeat_interleave(torch.arange(len(start), device=item_seq.device), lengths)
    first_of_window = torch.cumsum(lengths, 0) - lengths
    offsets = torch.arange(len(windows), device=item_seq.device) - first_of_window[windows]
    return windows, item_seq[start[windows] + offsets]


def resample_seen(
    negatives: torch.Tensor,
    positives: torch.Tensor,
    rows: torch.Tensor,
    sequences: torch.Tensor,
    lengths: torch.Tensor,
    num_items: int,
    history: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Redraw negatives the row has seen: every item of the row's whole training sequence when
    `history` = (item_seq [E], start [B], end [B]) gives it (as the original SASRec code, which
    excludes all of the user's training items), else the row's input items and positives.

    negatives: [N, K] int64 uniform draws; positives, rows: [N] int64; sequences: [B, L] int64
    right-padded with lengths [B]. A row that has seen almost every item can keep a seen negative
    after MAX_RESAMPLE_ROUNDS rounds; with realistic catalogs this is vanishingly rare.
    """
    # Membership of (row, item) pairs as one int64 key row * I + item: a sorted set lookup
    # instead of an [N, K, L] comparison.
    if history is not None:
        seq_rows, seq_items = window_events(*history)
        seen_keys = seq_rows * num_items + seq_items
    else:
        real = torch.arange(sequences.shape[1], device=sequences.device)[None, :] < lengths[:, None]
        seq_rows = torch.arange(len(sequences), device=sequences.device)[:, None].expand_as(sequences)
        seen_keys = torch.cat([seq_rows[real] * num_items + sequences[real], rows * num_items + positives])
    row_offsets = (rows * num_items)[:, None]
    for _ in range(MAX_RESAMPLE_ROUNDS):
        seen = torch.isin(row_offsets + negatives, seen_keys)
        if not seen.any():
            break
        negatives = torch.where(seen, uniform_items(num_items, negatives.shape, negatives.device), negatives)
    return negatives
