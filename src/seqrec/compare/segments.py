"""Where a difference comes from: each objective's metric and the seed-aware paired difference against the
baseline per segment of the test samples (`python -m seqrec.compare --segments`).

Segments come from the training split only, as each run recorded them (seqrec.segment_keys): users by
their training-history length (cold users with none, then the recorded quartile bins or `history_edges`),
target items by their training popularity (cold items, then tail / torso / head by share of the training
events). The interval of a segment is the same seed-aware interval as the main comparison's
(seqrec.compare.statistics.seed_sample_test over that segment's samples, users as clusters). Intervals are
not adjusted for the number of segments: they say where a difference comes from, not new verdicts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import polars as pl

from seqrec.compare import statistics
from seqrec.compare.errors import RecordError
from seqrec.compare.runs import RANKS_FILE, RUN_FILE, RunRecord
from seqrec.compare.significance import _aligned_ranks, per_sample_metric
from seqrec.compare.table import table_style

HISTORY_COLUMN = "train_history"  # seqrec.segment_keys writes these columns
POPULARITY_COLUMN = "target_train_events"
HISTORY_FAMILY = "user history"
POPULARITY_FAMILY = "target popularity"
NOTE = (
    "Segments from the training split only: user history = the user's number of events in the training "
    "split; target popularity = the target's number of events there, head/torso/tail = the most popular "
    "items holding the first, second and last third of those events; cold = none. Differences vs "
    "{baseline}, seed-aware 95% intervals as above, not adjusted for the number of segments."
)


class SegmentsNeedRerun(RecordError):
    """The runs' test_ranks.parquet predate the per-sample segment columns."""


def _definitions(run: RunRecord) -> dict:
    if run.dir is None:
        raise SegmentsNeedRerun(f"{run.location}: segments need run folders with test ranks (not W&B)")
    record = json.loads((run.dir / RUN_FILE).read_text())
    definitions = record.get("segments")
    columns = pl.read_parquet_schema(run.dir / RANKS_FILE) if run.has_ranks else {}
    if not definitions or not {HISTORY_COLUMN, POPULARITY_COLUMN} <= set(columns):
        raise SegmentsNeedRerun(
            f"{run.objective} seed {run.seed} ({run.dir.name}) has no per-sample training history and "
            f"popularity ({RANKS_FILE} lacks "
            f"{HISTORY_COLUMN}, {POPULARITY_COLUMN}): segments need a re-run with this seqrec"
        )
    return definitions


def _keys(run: RunRecord) -> pl.DataFrame:
    return pl.read_parquet(run.dir / RANKS_FILE, columns=["user", "item", HISTORY_COLUMN, POPULARITY_COLUMN])


def _range_label(low: int, high: int | None) -> str:
    if high is None:
        return f"{low}+"
    return f"{low}" if high - 1 == low else f"{low}-{high - 1}"


def define_segments(
    keys: pl.DataFrame, definitions: dict, history_edges: Sequence[int] | None = None
) -> list[tuple[str, str, np.ndarray]]:
    """(family, label, [S] bool mask) of every segment of the samples in `keys`: cold users and history
    bins [1, e1), [e1, e2), ..., [e_last, inf); cold items, tail, torso, head."""
    history = keys[HISTORY_COLUMN].to_numpy()
    popularity = keys[POPULARITY_COLUMN].to_numpy()
    edges = sorted({int(edge) for edge in (history_edges or definitions["history_edges"]) if int(edge) > 1})
    segments = [(HISTORY_FAMILY, "cold user (0)", history == 0)]
    bounds = [1, *edges]
    for low, high in zip(bounds, [*edges, None], strict=True):
        mask = (history >= low) & (history < high if high is not None else True)
        segments.append((HISTORY_FAMILY, _range_label(low, high), mask))
    head, torso = definitions["head_min_train_events"], definitions["torso_min_train_events"]
    segments += [
        (POPULARITY_FAMILY, "cold item (0)", popularity == 0),
        (POPULARITY_FAMILY, f"tail ({_range_label(1, torso)})", (popularity > 0) & (popularity < torso)),
        (
            POPULARITY_FAMILY,
            f"torso ({_range_label(torso, head)})",
            (popularity >= torso) & (popularity < head),
        ),
        (POPULARITY_FAMILY, f"head ({head}+)", popularity >= head),
    ]
    return [(family, label, mask) for family, label, mask in segments if mask.any()]


def segment_table(
    runs: Sequence[RunRecord],
    baseline: str,
    metric: str,
    objectives: Sequence[str],
    history_edges: Sequence[int] | None = None,
    confidence: float = 0.95,
) -> pl.DataFrame:
    """One row per (segment, objective): samples, users, the objective's mean metric over seeds and
    samples, and (other objectives) the paired difference vs `baseline` on their shared seeds with its
    interval and p-value."""
    values_of = per_sample_metric(metric)
    by_objective: dict[str, dict[int, RunRecord]] = {}
    for run in runs:
        by_objective.setdefault(run.objective, {})[run.seed] = run
    baseline_runs = by_objective[baseline]
    reference_run = baseline_runs[min(baseline_runs)]
    definitions = _definitions(reference_run)
    for run in runs:
        if _definitions(run) != definitions:
            raise RecordError(
                f"{run.location} records other segment definitions than {reference_run.location}: the runs "
                "have different training splits; compare one data set and split at a time"
            )
    reference = reference_run.ranks()
    keys = _keys(reference_run)
    segments = define_segments(keys, definitions, history_edges)
    users = reference["user"].rank("dense").to_numpy()

    def values(run: RunRecord) -> np.ndarray:
        return values_of(_aligned_ranks(reference, run.ranks(), run.location))

    baseline_values = {seed: values(run) for seed, run in baseline_runs.items()}
    rows = []
    for objective in objectives:
        seeds = sorted(set(by_objective[objective]) & set(baseline_runs))
        if not seeds:
            continue
        own = np.stack([values(by_objective[objective][seed]) for seed in seeds])  # [n, S]
        differences = own - np.stack([baseline_values[seed] for seed in seeds])
        for family, label, mask in segments:
            row = {
                "family": family,
                "segment": label,
                "objective": objective,
                "n_samples": int(mask.sum()),
                "n_users": int(np.unique(users[mask]).size),
                "n_seeds": len(seeds),
                "mean": float(own[:, mask].mean()),
                "difference": None,
                "ci_low": None,
                "ci_high": None,
                "p_value": None,
            }
            if objective != baseline:
                test = statistics.seed_sample_test(
                    differences[:, mask], groups=users[mask], confidence=confidence
                )
                p_value = float(test.p_value)
                row |= {"difference": float(test.difference)}
                if np.isfinite(p_value):
                    row |= {"ci_low": float(test.ci_low), "ci_high": float(test.ci_high), "p_value": p_value}
            rows.append(row)
    return pl.DataFrame(rows, schema=_SCHEMA).with_columns(baseline=pl.lit(baseline), metric=pl.lit(metric))


_SCHEMA = {
    "family": pl.String,
    "segment": pl.String,
    "objective": pl.String,
    "n_samples": pl.Int64,
    "n_users": pl.Int64,
    "n_seeds": pl.Int64,
    "mean": pl.Float64,
    "difference": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "p_value": pl.Float64,
}


def _difference_cell(row: dict) -> str:
    if row["difference"] is None:
        return "-"
    if row["ci_low"] is None:
        return f"{row['difference']:+.4f}"
    return f"{row['difference']:+.4f} [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]"


def format_segments(table: pl.DataFrame, style: str = "plain") -> str:
    """One table per family: segment, samples, users, each objective's mean, each other objective's
    difference vs the baseline [interval]; then the note saying where the segments come from."""
    drawing = table_style(style)
    baseline, metric = table["baseline"][0], table["metric"][0]
    objectives = table["objective"].unique(maintain_order=True).to_list()
    others = [objective for objective in objectives if objective != baseline]
    parts = [f"{drawing.heading}Segments on {metric}: where the differences come from"]
    for family in table["family"].unique(maintain_order=True).to_list():
        rows = []
        in_family = table.filter(pl.col("family") == family)
        for segment in in_family["segment"].unique(maintain_order=True).to_list():
            cells = {
                row["objective"]: row for row in in_family.filter(pl.col("segment") == segment).to_dicts()
            }
            first = next(iter(cells.values()))
            rows.append(
                [segment, f"{first['n_samples']:,}", f"{first['n_users']:,}"]
                + [f"{cells[name]['mean']:.4f}" if name in cells else "-" for name in objectives]
                + [_difference_cell(cells[name]) if name in cells else "-" for name in others]
            )
        header = [family, "samples", "users", *objectives, *(f"{name} − {baseline}" for name in others)]
        parts.append(drawing.render(header, rows))
    parts.append(NOTE.format(baseline=baseline))
    return "\n\n".join(parts)
