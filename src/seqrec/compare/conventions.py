"""`--exclude-seen true|false`: compare runs under one seen-items convention, whichever each recorded first.

A full-catalog run evaluates its test samples once under both conventions: the primary one
(`evaluation.exclude_seen`) in `metrics.test` and the `rank` column of test_ranks.parquet, the other in
`metrics.test_other` and `rank_other`. `with_convention` gives every run the requested one as its test
metrics and ranks, so the table, the significance and the segments all use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import polars as pl

from seqrec.compare.errors import RecordError
from seqrec.compare.runs import RANKS_FILE, RunRecord

OTHER_SPLIT = "test_other"
OTHER_RANK_COLUMN = "rank_other"


def parse_convention(text: str | None) -> bool | None:
    """'true' / 'false' (any case) -> bool; None -> None (each run's primary convention)."""
    if text is None:
        return None
    value = {"true": True, "false": False}.get(text.lower())
    if value is None:
        raise ValueError(f"--exclude-seen must be true or false, got {text!r}")
    return value


def primary_exclude_seen(run: RunRecord) -> bool | None:
    """The run's primary convention: its resolved evaluation.exclude_seen (None: not a full-catalog run)."""
    value = (run.config.get("evaluation") or {}).get("exclude_seen")
    return None if value is None else bool(value)


def _other_ranks(run: RunRecord) -> pl.DataFrame:
    ranks = pl.read_parquet(run.dir / RANKS_FILE)
    if OTHER_RANK_COLUMN not in ranks.columns:
        raise RecordError(
            f"{run.location}/{RANKS_FILE} has no {OTHER_RANK_COLUMN} column; re-run it with this seqrec"
        )
    return ranks.select("user", "item", pl.col(OTHER_RANK_COLUMN).cast(pl.Int64).alias("rank"))


def with_convention(runs: Sequence[RunRecord], exclude_seen: bool | None) -> list[RunRecord]:
    """The runs with `exclude_seen`'s test metrics and ranks as their `test` ones (None: unchanged)."""
    if exclude_seen is None:
        return list(runs)
    converted = []
    for run in runs:
        primary = primary_exclude_seen(run)
        if primary is None:
            raise RecordError(
                f"{run.location} records no evaluation.exclude_seen (sampled evaluation or W&B): "
                "--exclude-seen needs full-catalog runs read from their folders"
            )
        if primary == exclude_seen:
            converted.append(run)
            continue
        if OTHER_SPLIT not in run.metrics or run.dir is None:
            raise RecordError(
                f"{run.location} was evaluated with evaluation.exclude_seen={str(primary).lower()} only "
                f"(no metrics.{OTHER_SPLIT}): re-run it with this seqrec to get both conventions, or "
                f"compare with --exclude-seen {str(primary).lower()}"
            )
        metrics = run.metrics | {"test": run.metrics[OTHER_SPLIT], OTHER_SPLIT: run.metrics["test"]}
        config = run.config | {"evaluation": run.config["evaluation"] | {"exclude_seen": exclude_seen}}
        loader = (lambda run=run: _other_ranks(run)) if run.has_ranks else None
        converted.append(replace(run, metrics=metrics, config=config, ranks_loader=loader))
    return converted
