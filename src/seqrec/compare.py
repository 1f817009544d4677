"""Compare training objectives from recorded runs: table with confidence intervals, curves, significance.

Sources: a folder of run directories (`run.json`, `history.jsonl`, `test_ranks.parquet`, written by the
trainer; a Hydra multirun sweep holds them at any depth) or a Weights & Biases project (no ranks there, so
no paired significance). Matplotlib is imported only inside the plot helpers.

    python -m seqrec.compare multirun/2025-01-01/12-00-00 --baseline bce --metric dcg@10
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from seqrec.data.types import DataError
from seqrec.run_status import effective_status

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
HISTORY_FILE = "history.jsonl"
RANKS_FILE = "test_ranks.parquet"
SWEEP_FILE = "multirun.yaml"  # Hydra writes it at the root of every multirun sweep folder

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


# --------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RunRecord:
    """One completed run. `metrics[split][metric]`, e.g. `metrics["test"]["dcg@10"]`."""

    location: str  # run directory or wandb path: where to look when something is wrong
    objective: str  # the `loss` option, e.g. "logq"
    seed: int
    metrics: dict[str, dict[str, float]]
    choices: dict[str, str] = field(default_factory=dict)
    dir: Path | None = None
    history_loader: Callable[[], pl.DataFrame] | None = field(default=None, repr=False, compare=False)
    ranks_loader: Callable[[], pl.DataFrame] | None = field(default=None, repr=False, compare=False)

    @property
    def has_ranks(self) -> bool:
        return self.ranks_loader is not None

    def history(self) -> pl.DataFrame:
        """One row per validation: step, epoch, train_loss, elapsed_seconds, one column per valid metric."""
        return self.history_loader() if self.history_loader is not None else history_frame([])

    def ranks(self) -> pl.DataFrame:
        """Test ranks: user, item (original ids) and 1-based rank of the target, [S] Int64 each."""
        if self.ranks_loader is None:
            raise DataError(f"{self.location} has no test ranks ({RANKS_FILE}); paired tests need them.")
        return self.ranks_loader()


@dataclass(frozen=True)
class SkippedRun:
    location: str
    reason: str


@dataclass(frozen=True)
class RunScan:
    """Completed runs found under a source, and the runs left out with the reason for each."""

    runs: list[RunRecord]
    skipped: list[SkippedRun]

    def note(self) -> str:
        if not self.skipped:
            return f"{len(self.runs)} completed runs, none skipped."
        lines = [f"{len(self.runs)} completed runs; skipped {len(self.skipped)}:"]
        lines += [f"- {skipped.location}: {skipped.reason}" for skipped in self.skipped]
        return "\n".join(lines)


def history_frame(rows: Iterable[dict]) -> pl.DataFrame:
    """Flatten validation entries {"step", "epoch", "train_loss", "elapsed_seconds", "valid": {...}}."""
    flat = [
        {
            "step": int(row["step"]),
            **{key: _float_or_none(row.get(key)) for key in ("epoch", "train_loss", "elapsed_seconds")},
            **{metric: float(value) for metric, value in row.get("valid", {}).items()},
        }
        for row in rows
    ]
    if not flat:
        return pl.DataFrame({"step": []}, schema={"step": pl.Int64})
    return pl.from_dicts(flat, infer_schema_length=None)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _read_history_file(path: Path) -> pl.DataFrame:
    if not path.exists():
        return history_frame([])
    rows = []
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise DataError(
                f"{path}:{line_number} is not valid JSON ({error}); fix or delete that line."
            ) from None
    return history_frame(rows)


def _read_ranks_file(path: Path) -> pl.DataFrame:
    try:
        ranks = pl.read_parquet(path, columns=["user", "item", "rank"])
    except (OSError, pl.exceptions.PolarsError) as error:
        raise DataError(
            f"{path} is not a readable ranks file with user, item, rank columns ({error})"
        ) from None
    if ranks["rank"].null_count() or (ranks.height and ranks["rank"].min() < 1):
        raise DataError(f"{path}: rank must be a 1-based integer for every row; the file is damaged.")
    return ranks.with_columns(pl.col("rank").cast(pl.Int64))  # ids stay as written: integers or strings


def _run_from_json(run_json: Path) -> RunRecord | SkippedRun:
    location = str(run_json.parent)
    try:
        record = json.loads(run_json.read_text())
    except (OSError, json.JSONDecodeError) as error:
        return SkippedRun(location, f"unreadable {RUN_FILE} ({error})")
    if not isinstance(record, dict):
        return SkippedRun(location, f"{RUN_FILE} is not a JSON object")
    status = effective_status(record)  # "died" for a "running" run whose process is gone
    if status != "completed":
        error = record.get("error")
        return SkippedRun(location, f"status {status!r}" + (f": {error}" if error else ""))
    try:
        objective, seed, metrics = record["choices"]["loss"], int(record["seed"]), record["metrics"]
    except (KeyError, TypeError, ValueError) as error:
        return SkippedRun(location, f"{RUN_FILE} lacks choices.loss, seed or metrics ({error!r})")
    # A sweep over an objective's hyperparameter compares variants: name them by their overrides.
    variant = sorted(o.removeprefix("loss.") for o in record.get("overrides", []) if o.startswith("loss."))
    if variant:
        objective = f"{objective}({','.join(variant)})"
    run_dir = run_json.parent
    ranks_path = run_dir / RANKS_FILE
    return RunRecord(
        location=location,
        objective=str(objective),
        seed=seed,
        metrics={split: dict(values) for split, values in metrics.items() if isinstance(values, dict)},
        choices=dict(record["choices"]),
        dir=run_dir,
        history_loader=lambda: _read_history_file(run_dir / HISTORY_FILE),
        ranks_loader=(lambda: _read_ranks_file(ranks_path)) if ranks_path.exists() else None,
    )


def scan_run_dirs(path: str | Path) -> RunScan:
    """Every run.json below `path` (any depth, sorted by path): completed runs, and the others skipped."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory; pass a run or sweep output folder.")
    runs, skipped = [], []
    for run_json in sorted(root.rglob(RUN_FILE)):
        loaded = _run_from_json(run_json)
        (runs if isinstance(loaded, RunRecord) else skipped).append(loaded)
    return RunScan(runs, skipped)


def load_runs(path: str | Path) -> list[RunRecord]:
    """Completed runs below `path`; skipped ones (failed, interrupted, running, corrupt) are logged."""
    scan = scan_run_dirs(path)
    if scan.skipped:
        logger.warning(scan.note())
    return scan.runs


# ----------------------------------------------------------------------------------------------- wandb


def _flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, prefix=f"{name}/"))
        else:
            flat[name] = value
    return flat


def _metrics_from_summary(summary: dict) -> dict[str, dict[str, float]]:
    """{"test/dcg@10": 0.04, ...} (flat or nested) -> {"test": {"dcg@10": 0.04}}; non-numbers are dropped."""
    metrics: dict[str, dict[str, float]] = {}
    for key, value in _flatten(summary).items():
        split, _, metric = key.rpartition("/")
        if split and "@" in metric and isinstance(value, int | float) and not isinstance(value, bool):
            metrics.setdefault(split, {})[metric] = float(value)
    return metrics


def _wandb_history(run: Any) -> pl.DataFrame:
    """History rows with `valid/<metric>` keys -> the same frame as history.jsonl gives."""
    rows = []
    for row in run.scan_history():
        valid = {key.removeprefix("valid/"): value for key, value in row.items() if key.startswith("valid/")}
        if valid:
            step = row.get("step", row.get("_step"))
            loss = row.get("train_loss", row.get("train/loss"))
            rows.append({**row, "step": step, "train_loss": loss, "valid": valid})
    return history_frame(rows)


def scan_wandb_runs(project: str, group: str | None = None, api: Any = None) -> RunScan:
    """Runs of a W&B project ("entity/project"), optionally one group. Test ranks are not available.

    Needs the trainer to log the resolved config (with `choices` and `seed`), test metrics in the summary
    as "test/<metric>" and validation metrics in the history as "valid/<metric>".
    """
    if api is None:
        import wandb

        api = wandb.Api()
    filters = {"group": group} if group else None
    runs, skipped = [], []
    for wandb_run in api.runs(path=project, filters=filters):
        location = f"wandb:{project}/{wandb_run.id}"
        if wandb_run.state != "finished":
            skipped.append(SkippedRun(location, f"state {wandb_run.state!r}"))
            continue
        config = dict(wandb_run.config)
        try:
            objective, seed = config["choices"]["loss"], int(config["seed"])
        except (KeyError, TypeError, ValueError) as error:
            skipped.append(SkippedRun(location, f"config lacks choices.loss or seed ({error!r})"))
            continue
        runs.append(
            RunRecord(
                location=location,
                objective=str(objective),
                seed=seed,
                metrics=_metrics_from_summary(dict(wandb_run.summary_metrics)),
                choices=dict(config["choices"]),
                history_loader=lambda wandb_run=wandb_run: _wandb_history(wandb_run),
            )
        )
    return RunScan(runs, skipped)


def load_wandb_runs(project: str, group: str | None = None, api: Any = None) -> list[RunRecord]:
    """Finished runs of a W&B project; the others are logged as skipped. Paired significance is off."""
    scan = scan_wandb_runs(project, group, api=api)
    if scan.skipped:
        logger.warning(scan.note())
    return scan.runs


def newest_sweep_dir(start: str | Path = ".") -> Path | None:
    """Newest Hydra sweep (folder of the latest multirun.yaml) in the nearest `multirun/` folder found in
    `start` or one of its parents; None if there is no such folder or it holds no sweep."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / "multirun").is_dir():
            sweeps = sorted((folder / "multirun").rglob(SWEEP_FILE), key=lambda path: path.stat().st_mtime)
            return sweeps[-1].parent if sweeps else None
    return None


# ---------------------------------------------------------------------------------------------- table


def _objective_order(runs: Sequence[RunRecord], objectives: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(run.objective for run in runs))
    if objectives is None:
        return present
    missing = [name for name in objectives if name not in present]
    if missing:
        raise ValueError(f"objectives {missing} have no completed run; available: {present}")
    return list(objectives)


def _check_one_run_per_seed(runs: Sequence[RunRecord]) -> None:
    locations: dict[tuple[str, int], list[str]] = {}
    for run in runs:
        locations.setdefault((run.objective, run.seed), []).append(run.location)
    duplicates = {key: places for key, places in locations.items() if len(places) > 1}
    if duplicates:
        (objective, seed), places = next(iter(duplicates.items()))
        raise ValueError(
            f"{len(duplicates)} (objective, seed) pairs have several runs, e.g. {objective} seed {seed}: "
            f"{places}. The runs differ in something else (dataset, split, a hyperparameter): select one "
            "setup first, e.g. [r for r in runs if r.choices['dataset'] == 'ml-1m'], or give the variants "
            "distinct names with dataclasses.replace(run, objective=...)."
        )


def _warn_if_setups_differ(runs: Sequence[RunRecord]) -> None:
    """Runs of one table should differ only in the objective and the seed."""
    keys = sorted({key for run in runs for key in run.choices} - {"loss"})
    for key in keys:
        values = sorted({str(run.choices.get(key)) for run in runs})
        if len(values) > 1:
            logger.warning(f"the runs mix {key} = {values}: each row averages over them; select one first")


def results_table(
    runs: Sequence[RunRecord],
    metrics: Sequence[str] = PROTOCOL_METRICS,
    split: str = "test",
    objectives: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> pl.DataFrame:
    """One row per objective: n_seeds, and per metric the mean over seeds and `<metric>_ci`, the
    half-width of the Student-t confidence interval (n-1 df); null when there is a single seed.

    Rows follow `objectives` (which also selects) or the order of first appearance in `runs`.
    """
    if not runs:
        raise ValueError("no runs to tabulate")
    order = _objective_order(runs, objectives)
    selected = [run for run in runs if run.objective in order]
    _check_one_run_per_seed(selected)
    _warn_if_setups_differ(selected)
    values = np.empty((len(selected), len(metrics)))
    for row, run in enumerate(selected):
        split_metrics = run.metrics.get(split, {})
        missing = [metric for metric in metrics if split_metrics.get(metric) is None]
        if missing:
            raise DataError(
                f"{run.location} has no {split} metrics {missing}; it has {sorted(split_metrics)} "
                f"(splits: {sorted(run.metrics)}). Pass metrics=... or split=... that every run has."
            )
        values[row] = [split_metrics[metric] for metric in metrics]

    per_run = pl.DataFrame(
        {"objective": [run.objective for run in selected], **dict(zip(metrics, values.T, strict=True))}
    )
    grouped = per_run.group_by("objective").agg(
        pl.len().alias("n_seeds"),
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
    return table.with_columns(half_widths).select("objective", pl.col("n_seeds").cast(pl.Int64), *columns)


def table_metrics(table: pl.DataFrame) -> list[str]:
    """Metric columns of a `results_table` (those with a `<metric>_ci` partner), in order."""
    return [column for column in table.columns if f"{column}_ci" in table.columns]


# ------------------------------------------------------------------------------------------ formatting


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
        _markdown_table, lambda cell: f"**{cell}**", lambda cell: f"<u>{cell}</u>", "", "## "
    ),
    "plain": TableStyle(
        _plain_table, lambda cell: f"{cell} *", lambda cell: f"{cell} +", "* best, + second best", ""
    ),
}


def _table_style(style: str) -> TableStyle:
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


def format_table(table: pl.DataFrame, style: str = "markdown", digits: int = 4) -> str:
    """Cells "mean ± CI" ("mean (n=1)" for a single seed); the best mean of each column in bold, the second
    underlined (markdown), or marked * and + (plain). Every metric counts as higher-is-better."""
    table_style = _table_style(style)
    metrics = table_metrics(table)
    cells = []
    for metric in metrics:
        means = table[metric].to_numpy()
        marks = _rank_marks(means)
        column = []
        for mean, ci, mark in zip(means, table[f"{metric}_ci"].to_list(), marks, strict=True):
            cell = f"{mean:.{digits}f} " + ("(n=1)" if ci is None else f"± {ci:.{digits}f}")
            column.append((table_style.best, table_style.second, str)[mark](cell))
        cells.append(column)
    header = ["objective", "seeds", *metrics]
    rows = [
        [objective, str(n), *(column[row] for column in cells)]
        for row, (objective, n) in enumerate(zip(table["objective"], table["n_seeds"], strict=True))
    ]
    text = table_style.render(header, rows)
    return f"{text}\n{table_style.legend}" if table_style.legend else text


# ------------------------------------------------------------------------------------ significance


def dcg_per_sample(ranks: np.ndarray, k: int) -> np.ndarray:
    """[S] 1-based ranks -> [S] float: 1/log2(rank+1) if rank <= k else 0."""
    return np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)


def hitrate_per_sample(ranks: np.ndarray, k: int) -> np.ndarray:
    """[S] 1-based ranks -> [S] float: 1 if rank <= k else 0."""
    return (ranks <= k).astype(np.float64)


PER_SAMPLE_METRICS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "dcg": dcg_per_sample,
    "hitrate": hitrate_per_sample,
}


def per_sample_metric(metric: str) -> Callable[[np.ndarray], np.ndarray]:
    """ "dcg@10" -> function mapping [S] ranks to [S] per-sample values."""
    name, _, cutoff = metric.partition("@")
    if name not in PER_SAMPLE_METRICS or not cutoff.isdigit() or int(cutoff) < 1:
        raise ValueError(
            f"metric must be <name>@<k> with name in {sorted(PER_SAMPLE_METRICS)} and k >= 1, got {metric!r} "
            "(coverage is a property of the whole ranking, not of one sample, so it has no paired test)"
        )
    return lambda ranks: PER_SAMPLE_METRICS[name](ranks, int(cutoff))


def _with_occurrence(ranks: pl.DataFrame) -> pl.DataFrame:
    """Number repeated (user, item) pairs 0, 1, ... in file order so that every key is unique."""
    return ranks.with_columns(occurrence=pl.int_range(pl.len()).over("user", "item"))


def _aligned_ranks(reference: pl.DataFrame, ranks: pl.DataFrame, location: str) -> np.ndarray:
    """Ranks [S] in the row order of `reference` (user, item), joined on (user, item, occurrence)."""
    if ranks.height == reference.height and ranks.select("user", "item").equals(
        reference.select("user", "item")
    ):
        return ranks["rank"].to_numpy()
    joined = (
        _with_occurrence(reference.select("user", "item"))
        .with_row_index("position")
        .join(_with_occurrence(ranks), on=["user", "item", "occurrence"], how="left")
        .sort("position")
    )
    if ranks.height != reference.height or joined["rank"].null_count():
        raise DataError(
            f"test samples of {location} differ from the baseline's ({ranks.height} vs {reference.height} "
            "rows, or other (user, item) pairs): paired tests need runs on the same data, split and seed."
        )
    return joined["rank"].to_numpy()


def _chunks(total: int, size: int) -> Iterable[int]:
    for start in range(0, total, size):
        yield min(size, total - start)


def _rows_per_chunk(n_samples: int) -> int:
    return max(1, 2**22 // max(n_samples, 1))  # keeps each [rows, S] block at ~32 MB of float64


def bootstrap_means(differences: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `n_bootstrap` resamples (n draws with replacement) of [n] paired differences -> [n_bootstrap].

    Most differences are 0 (both objectives miss the top k) and add nothing to a resample's sum, so each
    resample draws how many of its n draws land on the m non-zero values, Binomial(n, m/n), and then only
    those draws: the same distribution as the plain bootstrap at m/n of the cost.
    """
    n = differences.size
    nonzero = differences[differences != 0]
    if nonzero.size == 0:
        return np.zeros(n_bootstrap)
    hits = rng.binomial(n, nonzero.size / n, size=n_bootstrap)
    sums = []
    for start in range(0, n_bootstrap, _rows_per_chunk(nonzero.size)):
        chunk_hits = hits[start : start + _rows_per_chunk(nonzero.size)]
        draws = nonzero[rng.integers(0, nonzero.size, size=chunk_hits.sum())]
        resample_of_draw = np.repeat(np.arange(chunk_hits.size), chunk_hits)
        sums.append(np.bincount(resample_of_draw, weights=draws, minlength=chunk_hits.size))
    return np.concatenate(sums) / n


def sign_flip_p_value(differences: np.ndarray, n_resamples: int, rng: np.random.Generator) -> float:
    """Two-sided paired randomisation test: under H0 each paired difference is as likely to have either
    sign, so flip signs at random and count means at least as extreme as the observed one.
    p = (1 + count) / (1 + n_resamples), never 0."""
    nonzero = differences[differences != 0]  # zero differences do not change under a sign flip
    observed = abs(nonzero.sum())
    extreme = 0
    for rows in _chunks(n_resamples, _rows_per_chunk(nonzero.size)):
        flipped_sums = np.where(rng.random((rows, nonzero.size)) < 0.5, -nonzero, nonzero).sum(axis=1)
        extreme += int((np.abs(flipped_sums) >= observed * (1 - 1e-12)).sum())
    return (1 + extreme) / (1 + n_resamples)


def _seed_averaged_values(
    runs_by_seed: dict[int, RunRecord],
    seeds: Sequence[int],
    reference: pl.DataFrame,
    sample_values: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Per-sample metric values [S] in `reference` row order, averaged over `seeds`."""
    per_seed = [
        sample_values(_aligned_ranks(reference, runs_by_seed[seed].ranks(), runs_by_seed[seed].location))
        for seed in seeds
    ]
    return np.mean(per_seed, axis=0)


def paired_significance(
    runs: Sequence[RunRecord],
    baseline: str,
    metric: str = "dcg@10",
    n_bootstrap: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
    objectives: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Each objective (those in `objectives`, in that order, or all) vs `baseline` on the same test samples,
    with the per-sample `metric` computed from ranks.

    Samples are paired by (user, item) within each seed; for the seeds both objectives have (with ranks),
    per-sample values are averaged over seeds, then: mean difference (objective - baseline), paired
    bootstrap percentile CI over samples, and the two-sided p-value of a paired sign-flip randomisation
    test (both with `n_bootstrap` resamples). Runs without ranks are ignored.
    """
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    sample_values = per_sample_metric(metric)
    ranked = [run for run in runs if run.has_ranks]
    _check_one_run_per_seed(ranked)
    by_objective: dict[str, dict[int, RunRecord]] = {}
    for run in ranked:
        by_objective.setdefault(run.objective, {})[run.seed] = run
    if baseline not in by_objective:
        raise ValueError(
            f"baseline {baseline!r} has no completed run with {RANKS_FILE}; objectives with ranks: "
            f"{list(by_objective)}"
        )
    baseline_runs = by_objective[baseline]
    alpha = 1 - confidence
    rows = []
    for objective in objectives if objectives is not None else list(by_objective):
        if objective == baseline:
            continue
        if objective not in by_objective:
            logger.warning(f"{objective} has no run with {RANKS_FILE}; left out of the paired test")
            continue
        objective_runs = by_objective[objective]
        common_seeds = sorted(set(objective_runs) & set(baseline_runs))
        if not common_seeds:
            logger.warning(f"{objective} shares no seed with {baseline}; left out of the paired test")
            continue
        reference = baseline_runs[common_seeds[0]].ranks()
        baseline_values = _seed_averaged_values(baseline_runs, common_seeds, reference, sample_values)
        objective_values = _seed_averaged_values(objective_runs, common_seeds, reference, sample_values)
        differences = objective_values - baseline_values
        rng = np.random.default_rng(seed)  # same draws for every objective: rows do not depend on each other
        resampled = bootstrap_means(differences, n_bootstrap, rng)
        ci_low, ci_high = np.quantile(resampled, [alpha / 2, 1 - alpha / 2])
        rows.append(
            {
                "objective": objective,
                "baseline": baseline,
                "metric": metric,
                "n_seeds": len(common_seeds),
                "n_samples": differences.size,
                "baseline_mean": baseline_values.mean(),
                "objective_mean": objective_values.mean(),
                "difference": differences.mean(),
                "ci_low": float(ci_low),
                "ci_high": float(ci_high),
                "p_value": sign_flip_p_value(differences, n_bootstrap, rng),
            }
        )
    return pl.DataFrame(rows, schema=_SIGNIFICANCE_SCHEMA)


_SIGNIFICANCE_SCHEMA = {
    "objective": pl.String,
    "baseline": pl.String,
    "metric": pl.String,
    "n_seeds": pl.Int64,
    "n_samples": pl.Int64,
    "baseline_mean": pl.Float64,
    "objective_mean": pl.Float64,
    "difference": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "p_value": pl.Float64,
}


def format_significance(table: pl.DataFrame, style: str = "markdown", digits: int = 4) -> str:
    """Paired significance as a markdown or plain table: means, difference, its CI and the p-value."""
    table_style = _table_style(style)
    if table.is_empty():
        return "(no objective shares a seed with the baseline)"
    metric, baseline = table["metric"][0], table["baseline"][0]
    header = [
        "objective",
        metric,
        f"{baseline} (baseline)",
        "difference",
        "95% CI",
        "p-value",
        "seeds",
        "samples",
    ]
    rows = [
        [
            row["objective"],
            f"{row['objective_mean']:.{digits}f}",
            f"{row['baseline_mean']:.{digits}f}",
            f"{row['difference']:+.{digits}f}",
            f"[{row['ci_low']:+.{digits}f}, {row['ci_high']:+.{digits}f}]",
            f"{row['p_value']:.3g}",
            str(row["n_seeds"]),
            str(row["n_samples"]),
        ]
        for row in table.iter_rows(named=True)
    ]
    return table_style.render(header, rows)


# ------------------------------------------------------------------------------------------ curves


def validation_curves(runs: Sequence[RunRecord]) -> pl.DataFrame:
    """Long frame: objective, seed, step, epoch, train_loss, elapsed_seconds, one column per valid metric."""
    frames = [
        run.history().with_columns(objective=pl.lit(run.objective), seed=pl.lit(run.seed, dtype=pl.Int64))
        for run in runs
    ]
    frames = [frame for frame in frames if frame.height]
    if not frames:
        return pl.DataFrame(schema={"objective": pl.String, "seed": pl.Int64, "step": pl.Int64})
    curves = pl.concat(frames, how="diagonal_relaxed")
    return curves.select("objective", "seed", "step", pl.exclude("objective", "seed", "step"))


def plot_validation_curves(curves: pl.DataFrame, metric: str = "dcg@20", ax: Any = None) -> Any:
    """Validation `metric` over steps, one line per objective (mean over seeds, band = min..max)."""
    import matplotlib.pyplot as plt

    if metric not in curves.columns:
        raise ValueError(f"no validation metric {metric!r} in the history; available: {curves.columns[3:]}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    summary = (
        curves.group_by("objective", "step", maintain_order=True)
        .agg(mean=pl.col(metric).mean(), low=pl.col(metric).min(), high=pl.col(metric).max())
        .sort("step")
    )
    for objective in curves["objective"].unique(maintain_order=True):
        line = summary.filter(pl.col("objective") == objective)
        ax.plot(line["step"], line["mean"], label=objective)
        ax.fill_between(line["step"], line["low"], line["high"], alpha=0.2)
    ax.set(
        xlabel="optimizer step", ylabel=f"validation {metric}", title="Validation curves (mean over seeds)"
    )
    ax.legend()
    return ax


def plot_quality_coverage(table: pl.DataFrame, k: int = 10, ax: Any = None) -> Any:
    """Trade-off: x = coverage@k, y = dcg@k, one point per objective with confidence-interval bars."""
    import matplotlib.pyplot as plt

    quality, coverage = f"dcg@{k}", f"coverage@{k}"
    missing = [metric for metric in (quality, coverage) if metric not in table.columns]
    if missing:
        raise ValueError(f"results table has no {missing}; build it with metrics that include them")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4.5))
    filled = table.fill_null(0.0)  # single-seed rows have no interval: draw no bar
    for row in filled.iter_rows(named=True):
        ax.errorbar(
            row[coverage],
            row[quality],
            xerr=row[f"{coverage}_ci"],
            yerr=row[f"{quality}_ci"],
            fmt="o",
            capsize=3,
        )
        ax.annotate(
            row["objective"], (row[coverage], row[quality]), textcoords="offset points", xytext=(5, 5)
        )
    ax.set(xlabel=coverage, ylabel=quality, title=f"Quality vs coverage at {k} (95% CI over seeds)")
    return ax


# --------------------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m seqrec.compare",
        description="Table (mean ± 95%% CI over seeds) and paired significance of recorded seqrec runs.",
    )
    parser.add_argument("sweep_dir", nargs="?", type=Path, help="folder holding run directories at any depth")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read runs from Weights & Biases instead")
    parser.add_argument("--group", help="W&B run group (with --wandb)")
    parser.add_argument("--baseline", help="objective the others are tested against (default: first row)")
    parser.add_argument("--metric", default="dcg@10", help="metric of the paired test: dcg@k or hitrate@k")
    parser.add_argument("--objectives", nargs="+", help="objectives to show, in this order (default: all)")
    parser.add_argument("--split", default="test", help="metrics split of run.json to tabulate")
    parser.add_argument("--n-bootstrap", type=int, default=10_000, help="bootstrap / sign-flip resamples")
    parser.add_argument("--format", choices=sorted(TABLE_STYLES), default="markdown", dest="style")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    return parser


def report_text(scan: RunScan, args: argparse.Namespace) -> str:
    heading = TABLE_STYLES[args.style].heading
    table = results_table(scan.runs, split=args.split, objectives=args.objectives)
    parts = [
        f"{heading}Metrics on {args.split}: mean ± 95% CI over seeds (Student t, n-1 df)",
        format_table(table, style=args.style),
        scan.note(),
    ]
    if not any(run.has_ranks for run in scan.runs):
        parts.append(f"Paired significance disabled: no run has {RANKS_FILE} (W&B runs never have it).")
        return "\n\n".join(parts)
    baseline = args.baseline or table["objective"][0]
    significance = paired_significance(
        scan.runs, baseline, args.metric, args.n_bootstrap, objectives=table["objective"].to_list()
    )
    parts += [
        f"{heading}Paired significance vs {baseline} on {args.metric} over test samples "
        "(paired bootstrap 95% CI, two-sided sign-flip test p-value)",
        format_significance(significance, style=args.style),
    ]
    return "\n\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.sweep_dir is None) == (args.wandb is None):
        parser.error("give either SWEEP_DIR or --wandb ENTITY/PROJECT")
    try:
        scan = scan_wandb_runs(args.wandb, args.group) if args.wandb else scan_run_dirs(args.sweep_dir)
        if not scan.runs:
            source = args.wandb or args.sweep_dir
            print(f"error: no completed run found in {source}.\n{scan.note()}", file=sys.stderr)
            return 1
        report = report_text(scan, args)
    except (FileNotFoundError, ValueError) as error:  # DataError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(report)
    if args.output is not None:
        args.output.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
