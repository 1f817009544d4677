"""What each objective cost, in numbers that do not depend on scheduling: training steps and events to the
best validation step, and training CPU (and CUDA) microseconds per event measured by each run's own process;
events/s and evaluation seconds per run beside them, with a note when runs of one objective ran under
different load (their events/s differ by more than LOAD_SPREAD) and when evaluation took a large share of
the wall time."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import polars as pl

from seqrec.compare.runs import RUN_FILE, RunRecord
from seqrec.compare.table import table_style

LOAD_SPREAD = 0.30  # events/s of one objective's runs differing by more than this: different load
LARGE_EVAL_SHARE = 0.20  # evaluation share of training + evaluation wall time worth a note


def _timings(run: RunRecord) -> dict:
    if run.dir is None:
        return {}
    try:
        return json.loads((run.dir / RUN_FILE).read_text()).get("timings") or {}
    except (OSError, ValueError):
        return {}


def _events_to_best(run: RunRecord, timings: dict) -> float | None:
    if timings.get("train_events_to_best") is not None:
        return float(timings["train_events_to_best"])
    history = run.history()
    if run.best_step is None or "train_events" not in history.columns:
        return None
    at_best = history.filter(pl.col("step") == run.best_step)["train_events"]
    return float(at_best[0]) if at_best.len() and at_best[0] is not None else None


def _eval_share(timings: dict) -> float | None:
    if timings.get("eval_share") is not None:
        return float(timings["eval_share"])
    train, evaluation = timings.get("train_seconds"), timings.get("eval_seconds")
    return evaluation / (train + evaluation) if train and evaluation is not None else None


def cost_per_run(runs: Sequence[RunRecord]) -> pl.DataFrame:
    """One row per run: objective, seed, steps and events to the best step, CPU / CUDA microseconds per
    training event, events/s, evaluation seconds and share (null where a run did not record it)."""
    rows = []
    for run in runs:
        timings = _timings(run)
        rows.append(
            {
                "objective": run.objective,
                "seed": run.seed,
                "steps_to_best": run.best_step,
                "events_to_best": _events_to_best(run, timings),
                "cpu_us_per_event": timings.get("train_cpu_us_per_event"),
                "cuda_us_per_event": timings.get("train_cuda_us_per_event"),
                "events_per_second": timings.get("train_events_per_second"),
                "eval_seconds": timings.get("eval_seconds"),
                "eval_share": _eval_share(timings),
            }
        )
    schema = {"objective": pl.String, "seed": pl.Int64, "steps_to_best": pl.Int64} | {
        name: pl.Float64
        for name in (
            "events_to_best",
            "cpu_us_per_event",
            "cuda_us_per_event",
            "events_per_second",
            "eval_seconds",
            "eval_share",
        )
    }
    return pl.DataFrame(rows, schema=schema)


def cost_table(runs: Sequence[RunRecord], objectives: Sequence[str]) -> pl.DataFrame:
    """Per objective (in `objectives` order): seeds, means of the per-run costs, lowest and highest
    events/s."""
    per_run = cost_per_run([run for run in runs if run.objective in objectives])
    means = [
        pl.col(name).mean()
        for name in (
            "steps_to_best",
            "events_to_best",
            "cpu_us_per_event",
            "cuda_us_per_event",
            "eval_seconds",
        )
    ]
    grouped = per_run.group_by("objective").agg(
        pl.len().alias("n_seeds"),
        *means,
        pl.col("eval_share").mean(),
        pl.col("events_per_second").min().alias("events_per_second_min"),
        pl.col("events_per_second").max().alias("events_per_second_max"),
    )
    return pl.DataFrame({"objective": list(objectives)}).join(grouped, on="objective", maintain_order="left")


def load_notes(table: pl.DataFrame) -> list[str]:
    """A note per objective whose runs trained at events/s differing by more than LOAD_SPREAD, and one when
    evaluation took at least LARGE_EVAL_SHARE of the wall time."""
    notes, spreads = [], []
    for row in table.iter_rows(named=True):
        low, high = row["events_per_second_min"], row["events_per_second_max"]
        if low and high and high / low - 1 > LOAD_SPREAD:
            spreads.append(f"{row['objective']} {low:,.0f} to {high:,.0f} (+{high / low - 1:.0%})")
    if spreads:
        notes.append(
            "note: runs of one objective ran under different load, training events/s: "
            + ", ".join(spreads)
            + "; compare cost by steps, events and CPU time per event, not by wall-clock seconds (s to best)."
        )
    shares = table["eval_share"].drop_nulls()
    if shares.len() and shares.max() >= LARGE_EVAL_SHARE:
        notes.append(
            f"note: evaluation took {shares.min():.0%}-{shares.max():.0%} of each run's training + "
            "evaluation wall time (validations and the test); validate less often "
            "(trainer.eval_every_steps) to spend more of it training."
        )
    return notes


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:,.{digits}f}"


def format_cost(table: pl.DataFrame, style: str = "plain") -> str:
    """The cost table with its notes."""
    drawing = table_style(style)
    has_cuda = table["cuda_us_per_event"].drop_nulls().len() > 0
    header = ["objective", "seeds", "steps to best", "events to best", "CPU µs/event"]
    header += ["CUDA µs/event"] if has_cuda else []
    header += ["events/s", "eval s", "eval share"]
    rows = []
    for row in table.iter_rows(named=True):
        low, high = row["events_per_second_min"], row["events_per_second_max"]
        speed = "-" if low is None else (_number(low) if low == high else f"{_number(low)}-{_number(high)}")
        share = "-" if row["eval_share"] is None else f"{row['eval_share']:.0%}"
        cells = [
            row["objective"],
            str(row["n_seeds"]),
            _number(row["steps_to_best"]),
            _number(row["events_to_best"]),
        ]
        cells += [_number(row["cpu_us_per_event"], 1)]
        cells += [_number(row["cuda_us_per_event"], 1)] if has_cuda else []
        cells += [speed, _number(row["eval_seconds"], 1), share]
        rows.append(cells)
    explanation = (
        "Means over seeds. steps / events to best: training until the best validation step; CPU µs/event: "
        "training CPU time of the run's own process (all its threads, validations excluded) per training "
        "event, which other jobs on the machine change little; events/s (lowest-highest run) and eval s "
        "(validations + test, wall clock) depend on the load."
    )
    return "\n\n".join(
        [f"{drawing.heading}Cost", drawing.render(header, rows), explanation, *load_notes(table)]
    )
