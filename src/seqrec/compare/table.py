"""The results table: one row per objective, each metric as the mean over seeds ± a 95% Student-t interval,
and the training time to the best validation; drawn as markdown (pages) or plain text (terminals)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats

from seqrec.compare.errors import RecordError
from seqrec.compare.protocols import check_one_group
from seqrec.compare.runs import PROTOCOL_OVERRIDES, RunRecord, flatten
from seqrec.fingerprints import BOOKKEEPING_KEYS, is_under

logger = logging.getLogger(__name__)

PROTOCOL_METRICS = (
    "dcg@5",
    "dcg@10",
    "dcg@20",
    "hitrate@5",
    "hitrate@10",
    "hitrate@20",
    "coverage@5",
    "coverage@10",
    "coverage@20",
)
SECONDS_COLUMN = "seconds_to_best"
# Config keys that may differ between the runs of one comparison without making it unfair: the objective,
# its preset pins (experiment_loss, a group chosen by the loss), the preset, the seed and bookkeeping.
_ALLOWED_DIFFERENCES = ("loss", "experiment_loss", "experiment", "seed", *BOOKKEEPING_KEYS)


def objective_order(runs: Sequence[RunRecord], objectives: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(run.objective for run in runs))
    if objectives is None:
        return present
    missing = [name for name in objectives if name not in present]
    if missing:
        raise ValueError(f"objectives {missing} have no completed run; available: {present}")
    return list(objectives)


def check_one_run_per_seed(runs: Sequence[RunRecord]) -> None:
    locations: dict[tuple[str, int], list[str]] = {}
    for run in runs:
        locations.setdefault((run.objective, run.seed), []).append(run.location)
    duplicates = {key: places for key, places in locations.items() if len(places) > 1}
    if duplicates:
        (objective, seed), places = next(iter(duplicates.items()))
        raise ValueError(
            f"{len(duplicates)} (objective, seed) pairs have several runs, e.g. {objective} seed {seed}: "
            f"{places}. The runs differ in something the overrides do not show (dataset, split, a preset) "
            "or were run twice: compare one setup at a time (pass only its folders)."
        )


def shipped_search_keys() -> tuple[str, ...]:
    """Every key a search space in conf/search tunes (seqrec.tune)."""
    from omegaconf import OmegaConf

    from seqrec.tune.settings import CONF_DIR

    return tuple(sorted({str(k) for p in (CONF_DIR / "search").glob("*.yaml") for k in OmegaConf.load(p)}))


def warn_if_setups_differ(runs: Sequence[RunRecord]) -> None:
    """Runs of one comparison should differ only in the objective (and its variant) and the seed."""
    flat = [flatten(run.choices) | flatten(run.config) for run in runs]
    settings = [{key: str(value) for key, value in setting.items()} for setting in flat]
    keys = sorted({key for setting in settings for key in setting})
    labelled = {part.split("=")[0] for run in runs for part in run.objective.partition("[")[2].split(",")}
    # variant labels show these differences already; protocol groups (seqrec.compare.protocols) the others
    allowed = (*_ALLOWED_DIFFERENCES, *labelled, *PROTOCOL_OVERRIDES)
    if runs and all(str(run.choices.get("experiment") or "").startswith("tuned-") for run in runs):
        allowed += shipped_search_keys()  # tuned presets differ in their tuned hyperparameters by design
    mixed = []
    for key in keys:
        if is_under(key, allowed):
            continue
        values = sorted({setting.get(key, "(unset)") for setting in settings})
        if len(values) > 1:
            mixed.append(f"{key} = {values}")
    if mixed:
        logger.warning(f"the runs mix {', '.join(mixed[:5])}: compare like with like, or select one setup")


def results_table(
    runs: Sequence[RunRecord],
    metrics: Sequence[str] = PROTOCOL_METRICS,
    split: str = "test",
    objectives: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> pl.DataFrame:
    """One row per objective: n_seeds; per metric the mean over seeds and `<metric>_ci`, the half-width of
    the Student-t confidence interval (n-1 df), null for a single seed; `seconds_to_best`, the mean
    wall-clock training seconds to the best validation (null where no history has them).

    Rows follow `objectives` (which also selects) or the order of first appearance in `runs`.
    """
    if not runs:
        raise ValueError("no runs to tabulate")
    order = objective_order(runs, objectives)
    selected = [run for run in runs if run.objective in order]
    check_one_run_per_seed(selected)
    for objective in order:  # a row never pools seeds of different data, protocols or test sets
        check_one_group([run for run in selected if run.objective == objective], f"one row ({objective})")
    warn_if_setups_differ(selected)
    values = np.empty((len(selected), len(metrics)))
    for row, run in enumerate(selected):
        split_metrics = run.metrics.get(split, {})
        missing = [metric for metric in metrics if split_metrics.get(metric) is None]
        if missing:
            raise RecordError(
                f"{run.location} has no {split} metrics {missing}; it has {sorted(split_metrics)} "
                f"(splits: {sorted(run.metrics)}). Pass metrics=... or split=... that every run has."
            )
        values[row] = [split_metrics[metric] for metric in metrics]

    per_run = pl.DataFrame(
        {
            "objective": [run.objective for run in selected],
            SECONDS_COLUMN: pl.Series([run.seconds_to_best() for run in selected], dtype=pl.Float64),
            **dict(zip(metrics, values.T, strict=True)),
        }
    )
    grouped = per_run.group_by("objective").agg(
        pl.len().alias("n_seeds"),
        pl.col(SECONDS_COLUMN).mean(),
        *(pl.col(metric).mean() for metric in metrics),
        *(pl.col(metric).std(ddof=1).alias(f"{metric}_std") for metric in metrics),
    )
    table = pl.DataFrame({"objective": order}).join(
        grouped, on="objective", how="left", maintain_order="left"
    )
    # t quantile with n-1 df; n = 1 has no interval (df clipped only to keep scipy quiet, masked below)
    degrees_of_freedom = np.maximum(table["n_seeds"].to_numpy() - 1, 1)
    table = table.with_columns(t_quantile=pl.Series(stats.t.ppf(0.5 + confidence / 2, df=degrees_of_freedom)))
    half_widths = [
        pl.when(pl.col("n_seeds") > 1)
        .then(pl.col("t_quantile") * pl.col(f"{metric}_std") / pl.col("n_seeds").sqrt())
        .alias(f"{metric}_ci")
        for metric in metrics
    ]
    columns = [column for metric in metrics for column in (metric, f"{metric}_ci")]
    return table.with_columns(half_widths).select(
        "objective", pl.col("n_seeds").cast(pl.Int64), *columns, SECONDS_COLUMN
    )


def table_metrics(table: pl.DataFrame) -> list[str]:
    """Metric columns of a `results_table` (those with a `<metric>_ci` partner), in order."""
    return [column for column in table.columns if f"{column}_ci" in table.columns]


# ------------------------------------------------------------------------------------------ drawing


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _plain_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


@dataclass(frozen=True)
class TableStyle:
    """How a table is drawn and how the best and second-best cells of a column are marked."""

    render: Callable[[Sequence[str], Sequence[Sequence[str]]], str]
    best: Callable[[str], str]
    second: Callable[[str], str]
    legend: str
    heading: str  # prefix of section titles in the CLI report


TABLE_STYLES = {
    "markdown": TableStyle(
        _markdown_table,
        lambda cell: f"**{cell}**",
        lambda cell: f"<u>{cell}</u>",
        "Best mean of each column in bold, second underlined.",
        "## ",
    ),
    "plain": TableStyle(
        _plain_table, lambda cell: f"{cell} *", lambda cell: f"{cell} +", "* best, + second best.", ""
    ),
}


def table_style(style: str) -> TableStyle:
    if style not in TABLE_STYLES:
        raise ValueError(f"style must be one of {sorted(TABLE_STYLES)}, got {style!r}")
    return TABLE_STYLES[style]


def _rank_marks(means: np.ndarray) -> np.ndarray:
    """0 for the best value of a column (ties share it), 1 for the second best distinct value, else 2."""
    distinct = np.unique(means[~np.isnan(means)])[::-1]
    marks = np.full(means.shape, 2)
    for mark, value in enumerate(distinct[:2]):
        marks[means == value] = mark
    return marks


def format_table(
    table: pl.DataFrame,
    style: str = "markdown",
    digits: int = 4,
    metrics: Sequence[str] | None = None,
    row_groups: Sequence[str] | None = None,
) -> str:
    """Cells "mean ± CI" (just the mean for a single seed, said once below the table); the best mean of each
    column in bold, the second underlined (markdown), or marked * and + (plain). Every metric counts as
    higher-is-better. `metrics` picks and orders the columns (default: all of the table's). `row_groups`
    (one protocol label per row, a mixed comparison) marks the best within each group only: rows of other
    protocols or test sets are not ranked against each other."""
    drawing = table_style(style)
    shown = list(metrics) if metrics is not None else table_metrics(table)
    absent = [metric for metric in shown if metric not in table_metrics(table)]
    if absent:
        raise ValueError(f"the table has no metrics {absent}; it has {table_metrics(table)}")
    cells = []
    for metric in shown:
        means = table[metric].to_numpy()
        marks = np.full(means.shape, 2)
        groups = np.asarray(row_groups if row_groups is not None else [""] * len(means))
        for group in dict.fromkeys(groups.tolist()):
            marks[groups == group] = _rank_marks(means[groups == group])
        column = []
        for mean, ci, mark in zip(means, table[f"{metric}_ci"].to_list(), marks, strict=True):
            cell = f"{mean:.{digits}f}" + ("" if ci is None else f" ± {ci:.{digits}f}")
            column.append((drawing.best, drawing.second, str)[mark](cell))
        cells.append(column)
    seconds = table[SECONDS_COLUMN].to_list() if SECONDS_COLUMN in table.columns else [None] * table.height
    header = ["objective", "seeds", *shown, "s to best"]
    rows = [
        [objective, str(n), *(column[row] for column in cells), "-" if s is None else f"{s:.1f}"]
        for row, (objective, n, s) in enumerate(
            zip(table["objective"], table["n_seeds"], seconds, strict=True)
        )
    ]
    notes = [drawing.legend]
    if row_groups is not None and len(set(row_groups)) > 1:
        notes.append("Marked within each protocol and test set only.")
    if (table["n_seeds"] == 1).any():
        notes.append("Rows with 1 seed show the mean only (no interval).")
    notes.append("s to best: wall-clock training seconds to the best validation step, validations included.")
    separator = " " if style == "markdown" else "\n"
    return drawing.render(header, rows) + ("\n\n" if style == "markdown" else "\n") + separator.join(notes)
