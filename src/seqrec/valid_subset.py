"""`evaluation.valid_max_samples`: validation on a fixed random subset of the validation samples.

Validation is a large part of a tuning budget. The subset depends only on the split and SUBSET_SEED, never
on the run's seed or objective, so every objective and seed of a sweep validates on the same samples; the
test set is always evaluated whole.
"""

from __future__ import annotations

import torch

from seqrec.data.types import EvalSamples

SUBSET_SEED = 1234


def validation_subset(samples: EvalSamples, max_samples: int | None) -> EvalSamples:
    """`samples`, or `max_samples` of them drawn without replacement (kept in their original order)."""
    if max_samples is None or max_samples >= len(samples):
        return samples
    generator = torch.Generator().manual_seed(SUBSET_SEED)
    keep = torch.randperm(len(samples), generator=generator)[:max_samples].sort().values
    train_end = (
        samples.train_end[keep.to(samples.train_end.device)] if samples.train_end is not None else None
    )
    keep = keep.to(samples.target.device)
    return EvalSamples(
        user=samples.user[keep],
        history_start=samples.history_start[keep],
        history_end=samples.history_end[keep],
        target=samples.target[keep],
        train_end=train_end,
    )
