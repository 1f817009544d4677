"""Evaluation protocols (the `evaluation` config group): which catalog items compete with each target.

Every protocol has `evaluate(score_fn, samples, item_seq, max_seq_len, num_items) -> EvaluationResult`.
score_fn(inputs [B, L] int64, lengths [B] int64, users [B] int64) -> scores [B, I] float scores a batch of
model inputs (right-padded windows, see seqrec.data.batches.gather_windows; users: the samples'
EvalSamples.user, for models with user embeddings) into a new tensor, which the protocol may overwrite;
the protocol batches the samples, masks the items that do not compete with -inf and accumulates
seqrec.metrics.RankingMetrics.

Memory: at most `max_scores` scores ([batch x catalog]) are in flight; batches shrink for large catalogs
(min(batch_size, max_scores // I) samples, at least one) and the metrics' temporaries are bool masks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from seqrec.data.batches import gather_windows
from seqrec.data.types import DataError, EvalSamples
from seqrec.errors import ConfigError
from seqrec.metrics import RankingMetrics, check_ks, top_k_items

ScoreFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
_MINUS_INF = float("-inf")
_DRAW_CHUNK = 256  # at most this many samples' random keys at a time when drawing sampled candidates


@dataclass(frozen=True)
class EvaluationResult:
    """metrics: {'dcg@k', 'hitrate@k', 'coverage@k'}; ranks: [S] int64 (CPU), each sample's target rank.
    other: the same samples under the other seen-items convention (FullCatalog with both_conventions)."""

    metrics: dict[str, float]
    ranks: torch.Tensor
    other: EvaluationResult | None = None


class FullCatalog:
    """The protocol: every catalog item competes with the target; exact ties go to the lower item id.

    exclude_seen: give -inf to the items of the sample's whole history (not only the truncated model
    input), except the target itself. The target keeps competing even when it repeats an earlier
    event, so a re-consumed item is ranked like any other target instead of getting no rank at all.
    `evaluate(..., both_conventions=True)` also ranks the same scores under the other convention
    (`result.other`): one forward pass, both numbers peers report.
    """

    def __init__(
        self,
        ks: Sequence[int] = (5, 10, 20),
        exclude_seen: bool = False,
        batch_size: int = 256,
        max_scores: int = 2**26,
        valid_max_samples: int | None = None,
    ):
        self.ks = check_ks(ks)
        self.exclude_seen = exclude_seen
        self.valid_max_samples = check_valid_max_samples(valid_max_samples)
        self.batch_size = _check_batch_size(batch_size)
        self.max_scores = _check_max_scores(max_scores)

    @torch.inference_mode()
    def evaluate(
        self,
        score_fn: ScoreFn,
        samples: EvalSamples,
        item_seq: torch.Tensor,
        max_seq_len: int,
        num_items: int,
        both_conventions: bool = False,
    ) -> EvaluationResult:
        primary = RankingMetrics(self.ks, num_items)
        other = RankingMetrics(self.ks, num_items) if both_conventions else None
        with_seen, without_seen = (other, primary) if self.exclude_seen else (primary, other)
        batch_size = _rows_in_flight(self.batch_size, self.max_scores, num_items)
        for _, batch in _sample_batches(samples, batch_size, item_seq, num_items):
            scores = _score_batch(score_fn, batch, item_seq, max_seq_len, num_items)
            if with_seen is not None:
                with_seen.update(scores, batch.target)
            if without_seen is not None:
                target_scores = scores.gather(1, batch.target[:, None])
                scores[history_events(item_seq, batch.history_start, batch.history_end)] = _MINUS_INF
                scores.scatter_(1, batch.target[:, None], target_scores)  # the target keeps competing
                without_seen.update(scores, batch.target)
        other_result = None if other is None else EvaluationResult(other.compute(), other.ranks())
        return EvaluationResult(primary.compute(), primary.ranks(), other_result)


SAMPLED_EXCLUSIONS = ("history", "training")


class SampledCandidates:
    """Sampled evaluation of the original SASRec paper: the target competes only with `num_negatives`
    items drawn uniformly, without replacement, among the items that are neither in the user's history
    nor the target; every other item gets -inf.

    Sampled metrics are known to distort model comparisons (they can even reorder models), so this is
    an explicitly named option, never the default; use FullCatalog to compare objectives.

    - Draws depend only on (samples, item_seq, num_items, num_negatives, seed), never on the model or
      batch_size, so every model is ranked against the same candidates. They are drawn once per
      EvalSamples object and cached on this protocol.
    - Ties count against the target (pessimistic): rank = 1 + #{candidates scoring >= the target}, so a
      model with constant scores gets the worst rank rather than an id-dependent one.
    - Unlike the original, which draws with replacement, the draws are distinct, so every sample has
      exactly num_negatives + 1 candidates. "History" is the sample's history window (all the user's
      earlier events). Coverage@k counts the items in the top-k lists of those candidate rankings.

    The original code's draws (replacement=True, exclude="training"): independent uniform draws among
    the items outside the user's training events only, so a negative can repeat, and can be the target
    itself or (for test samples) the validation target. A repeated negative counts once per draw in the
    rank, and a draw of the target itself ties with it and counts against it.
    """

    def __init__(
        self,
        num_negatives: int = 100,
        ks: Sequence[int] = (5, 10, 20),
        batch_size: int = 256,
        seed: int = 0,
        replacement: bool = False,
        exclude: str = "history",
        max_scores: int = 2**26,
        valid_max_samples: int | None = None,
    ):
        if num_negatives < 1:
            raise ValueError(f"evaluation.num_negatives must be >= 1, got {num_negatives}")
        if not isinstance(replacement, bool):
            raise ValueError(f"evaluation.replacement must be true or false, got {replacement!r}")
        if exclude not in SAMPLED_EXCLUSIONS:
            raise ValueError(f"evaluation.exclude must be one of {SAMPLED_EXCLUSIONS}, got {exclude!r}")
        self.ks = check_ks(ks)
        if max(self.ks) > num_negatives + 1:
            raise ValueError(
                f"evaluation.ks={list(self.ks)} exceeds the num_negatives + 1 = {num_negatives + 1} "
                "candidates of each sample; lower evaluation.ks or raise evaluation.num_negatives"
            )
        self.num_negatives = num_negatives
        self.batch_size = _check_batch_size(batch_size)
        self.seed = seed
        self.replacement = replacement
        self.exclude = exclude
        self.max_scores = _check_max_scores(max_scores)
        self.valid_max_samples = check_valid_max_samples(valid_max_samples)
        # id(samples) -> (samples, item_seq, num_items, candidates); the strong references keep ids unique.
        self._cache: dict[int, tuple[EvalSamples, torch.Tensor, int, torch.Tensor]] = {}

    def draw_candidates(self, samples: EvalSamples, item_seq: torch.Tensor, num_items: int) -> torch.Tensor:
        """[S, num_negatives] int64 on item_seq's device: each sample's negatives, distinct, not in its
        history, not its target (or as set by `replacement` and `exclude`). Deterministic in the seed;
        raises if a user has too few allowed items."""
        if self.num_negatives >= num_items and not self.replacement:
            raise ValueError(
                f"evaluation.num_negatives={self.num_negatives} must be below the catalog size {num_items}"
            )
        if self.exclude == "training" and samples.train_end is None:
            raise ValueError(
                "evaluation.exclude=training needs samples from a split that marks training events"
            )
        generator = torch.Generator().manual_seed(self.seed)
        chunks = []
        # One generator draws sample after sample, so the chunking (which bounds the memory of the
        # [chunk, I] float64 keys or probabilities) does not change the draws.
        chunk_size = _rows_in_flight(_DRAW_CHUNK, self.max_scores, num_items)
        for _, chunk in _sample_batches(samples, chunk_size, item_seq, num_items):
            if self.exclude == "training":
                excluded = seen_item_mask(item_seq, chunk.history_start, chunk.train_end, num_items)
            else:
                excluded = seen_item_mask(item_seq, chunk.history_start, chunk.history_end, num_items)
                excluded[torch.arange(len(chunk), device=excluded.device), chunk.target] = True
            if self.replacement:
                chunks.append(self._draw_with_replacement(excluded, generator))
                continue
            # Uniform draw without replacement: the items with the smallest i.i.d. uniform keys.
            keys = torch.rand(len(chunk), num_items, generator=generator, dtype=torch.float64)
            keys = keys.to(item_seq.device).masked_fill(excluded, float("inf"))
            chosen_keys, chosen = keys.topk(self.num_negatives, dim=1, largest=False)
            if torch.isinf(chosen_keys).any():
                fewest = int((~excluded).sum(1).min())
                raise ConfigError(
                    f"evaluation.num_negatives={self.num_negatives} exceeds the {fewest} items that some "
                    f"evaluated user has not interacted with; lower evaluation.num_negatives to at most "
                    f"{fewest} or use evaluation=full"
                )
            chunks.append(chosen)
        return torch.cat(chunks)

    def _draw_with_replacement(self, excluded: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """[C, num_negatives] independent uniform draws among each row's allowed items; excluded: [C, I]."""
        allowed = (~excluded).to(torch.float64).cpu()
        if (allowed.sum(1) == 0).any():
            raise ConfigError("evaluation.exclude leaves some user no item to draw a negative from")
        draws = torch.multinomial(allowed, self.num_negatives, replacement=True, generator=generator)
        return draws.to(excluded.device)

    def candidates(self, samples: EvalSamples, item_seq: torch.Tensor, num_items: int) -> torch.Tensor:
        """draw_candidates, computed once per (samples, item_seq, num_items) and cached."""
        cached = self._cache.get(id(samples))
        if cached is None or cached[1] is not item_seq or cached[2] != num_items:
            cached = (samples, item_seq, num_items, self.draw_candidates(samples, item_seq, num_items))
            self._cache[id(samples)] = cached
        return cached[3]

    @torch.inference_mode()
    def evaluate(
        self,
        score_fn: ScoreFn,
        samples: EvalSamples,
        item_seq: torch.Tensor,
        max_seq_len: int,
        num_items: int,
    ) -> EvaluationResult:
        metrics = RankingMetrics(self.ks, num_items)
        all_negatives = self.candidates(samples, item_seq, num_items)
        batch_size = _rows_in_flight(self.batch_size, self.max_scores, num_items)
        for rows, batch in _sample_batches(samples, batch_size, item_seq, num_items):
            scores = _score_batch(score_fn, batch, item_seq, max_seq_len, num_items)
            candidates = torch.cat([all_negatives[rows], batch.target[:, None]], dim=1)  # [B, C], target last
            candidate_scores = scores.gather(1, candidates)
            ranks = 1 + (candidate_scores[:, :-1] >= candidate_scores[:, -1:]).sum(1)
            top_items = top_candidates(scores, candidates, candidate_scores, metrics.max_k)
            metrics.add(top_items, ranks, candidate_scores)
        return EvaluationResult(metrics.compute(), metrics.ranks())


def top_candidates(
    scores: torch.Tensor, candidates: torch.Tensor, candidate_scores: torch.Tensor, k: int
) -> torch.Tensor:
    """[B, k] int64: top_k_items of the scores with every item but the candidates set to -inf, computed
    from the candidates. scores: [B, I]; candidates: [B, C] items (repeats allowed); candidate_scores:
    [B, C] their scores."""
    by_id, order = candidates.sort(dim=1)
    by_id_scores = candidate_scores.gather(1, order)
    # A repeated candidate is one item: its copies after the first drop to -inf, behind every item.
    repeated = torch.zeros_like(by_id, dtype=torch.bool)
    repeated[:, 1:] = by_id[:, 1:] == by_id[:, :-1]
    best = by_id_scores.masked_fill(repeated, _MINUS_INF).sort(dim=1, descending=True, stable=True)
    top_items = by_id.gather(1, best.indices[:, :k])
    # A -inf among the k best ties with every other item; rank those rows over the whole masked catalog.
    tied_with_excluded = (best.values[:, k - 1] == _MINUS_INF).nonzero().squeeze(1)
    if len(tied_with_excluded):
        masked = torch.full_like(scores[tied_with_excluded], _MINUS_INF)
        masked.scatter_(1, candidates[tied_with_excluded], candidate_scores[tied_with_excluded])
        top_items[tied_with_excluded] = top_k_items(masked, k)
    return top_items


def history_events(
    item_seq: torch.Tensor, start: torch.Tensor, end: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, items), each [sum(end - start)] int64: one entry per event of item_seq[start[b]:end[b]].

    item_seq: [E] int64; start, end: [B] int64 on item_seq's device.
    """
    lengths = end - start
    rows = torch.repeat_interleave(torch.arange(len(start), device=item_seq.device), lengths)
    first_event_of_row = torch.cumsum(lengths, 0) - lengths
    positions = start[rows] + torch.arange(len(rows), device=item_seq.device) - first_event_of_row[rows]
    return rows, item_seq[positions]


def seen_item_mask(
    item_seq: torch.Tensor, start: torch.Tensor, end: torch.Tensor, num_items: int
) -> torch.Tensor:
    """[B, I] bool: True where item i occurs in item_seq[start[b]:end[b]].

    item_seq: [E] int64; start, end: [B] int64 on item_seq's device. Memory grows with the number of
    history events, not with the longest history times B.
    """
    seen = torch.zeros(len(start), num_items, dtype=torch.bool, device=item_seq.device)
    seen[history_events(item_seq, start, end)] = True
    return seen


def check_valid_max_samples(valid_max_samples: int | None) -> int | None:
    if valid_max_samples is not None and valid_max_samples < 1:
        raise ValueError(f"evaluation.valid_max_samples must be >= 1 or null, got {valid_max_samples}")
    return valid_max_samples


def _check_batch_size(batch_size: int) -> int:
    if batch_size < 1:
        raise ValueError(f"evaluation.batch_size must be >= 1, got {batch_size}")
    return batch_size


def _check_max_scores(max_scores: int) -> int:
    if max_scores < 1:
        raise ValueError(f"evaluation.max_scores must be >= 1, got {max_scores}")
    return max_scores


def _rows_in_flight(batch_size: int, max_scores: int, num_items: int) -> int:
    """Samples per batch: batch_size, fewer when batch_size x num_items would exceed max_scores."""
    return max(1, min(batch_size, max_scores // num_items))


def _sample_batches(
    samples: EvalSamples, batch_size: int, item_seq: torch.Tensor, num_items: int
) -> Iterator[tuple[slice, EvalSamples]]:
    """Consecutive slices of the samples, their tensors moved to item_seq's device."""
    if len(samples) == 0:
        raise DataError("cannot evaluate 0 samples: the split produced no evaluation samples for this set")
    if int(samples.target.min()) < 0 or int(samples.target.max()) >= num_items:
        raise DataError(f"evaluation targets must be item ids in 0..{num_items - 1}; check num_items")
    for begin in range(0, len(samples), batch_size):
        rows = slice(begin, begin + batch_size)
        yield (
            rows,
            EvalSamples(
                user=samples.user[rows].to(item_seq.device),
                history_start=samples.history_start[rows].to(item_seq.device),
                history_end=samples.history_end[rows].to(item_seq.device),
                target=samples.target[rows].to(item_seq.device),
                train_end=None if samples.train_end is None else samples.train_end[rows].to(item_seq.device),
            ),
        )


def _score_batch(
    score_fn: ScoreFn, batch: EvalSamples, item_seq: torch.Tensor, max_seq_len: int, num_items: int
) -> torch.Tensor:
    """[B, I] float scores of the batch's model inputs (the last max_seq_len history items)."""
    inputs, lengths = gather_windows(item_seq, batch.history_start, batch.history_end, max_seq_len)
    scores = score_fn(inputs, lengths, batch.user)
    if scores.shape != (len(batch), num_items):
        raise ValueError(f"score_fn must return [{len(batch)}, {num_items}] scores, got {list(scores.shape)}")
    return scores
