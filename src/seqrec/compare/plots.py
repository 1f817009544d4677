"""Figures of a comparison: validation curves, time to quality, quality vs coverage. Matplotlib is imported
only inside these functions. Each objective keeps its colour across figures (order of first appearance)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from seqrec.compare.runs import RunRecord

CPU_SECONDS = "train_cpu_seconds"  # history.jsonl: training CPU seconds of the process so far


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


def _seeds_text(counts: pl.Series) -> str:
    """'3 seeds', '1 seed', '2-3 seeds' from per-objective seed counts."""
    low, high = int(counts.min()), int(counts.max())
    return f"{low if low == high else f'{low}-{high}'} seed{'' if high == 1 else 's'}"


def _axes(ax: Any, size: tuple[float, float]) -> Any:
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=size, layout="constrained")
    return ax


def _summary(curves: pl.DataFrame, metric: str) -> pl.DataFrame:
    """Per objective and validation step: mean, min and max of `metric` over seeds, mean elapsed seconds."""
    if metric not in curves.columns:
        available = [c for c in curves.columns if "@" in c]
        raise ValueError(f"no validation metric {metric!r} in the history; available: {available}")
    seconds = pl.col("elapsed_seconds").mean() if "elapsed_seconds" in curves.columns else pl.lit(None)
    cpu = pl.col(CPU_SECONDS).mean() if CPU_SECONDS in curves.columns else pl.lit(None, dtype=pl.Float64)
    # Runs stop at different steps (early stopping): keep the steps every seed of the objective reached,
    # so that each mean is over the same seeds and the mean time grows with the step.
    every_seed = pl.col("step") <= pl.col("step").max().over("objective", "seed").min().over("objective")
    return (
        curves.filter(every_seed)
        .group_by("objective", "step", maintain_order=True)
        .agg(
            mean=pl.col(metric).mean(),
            low=pl.col(metric).min(),
            high=pl.col(metric).max(),
            seconds=seconds,
            cpu_seconds=cpu,
            seeds=pl.len(),
        )
        .sort("step")
    )


def plot_validation_curves(curves: pl.DataFrame, metric: str = "dcg@10", ax: Any = None) -> Any:
    """Validation `metric` at every validation step, one line per objective: mean over seeds (markers at
    the validations), band from the lowest to the highest seed; up to the last step all its seeds reached."""
    summary = _summary(curves, metric)
    ax = _axes(ax, (7.5, 4.5))
    for index, objective in enumerate(curves["objective"].unique(maintain_order=True)):
        line = summary.filter(pl.col("objective") == objective)
        color = f"C{index % 10}"
        ax.plot(line["step"], line["mean"], marker="o", markersize=3, color=color, label=objective)
        ax.fill_between(line["step"], line["low"], line["high"], color=color, alpha=0.15, linewidth=0)
    seeds = _seeds_text(curves.group_by("objective").agg(pl.col("seed").n_unique())["seed"])
    ax.set(
        xlabel="optimizer step", ylabel=f"validation {metric}", title=f"Validation {metric} during training"
    )
    note = f"line: mean over {seeds}; band: lowest to highest seed; until the first seed stops"
    return _finish_curves(ax, note)


def plot_time_to_quality(curves: pl.DataFrame, metric: str = "dcg@10", ax: Any = None) -> Any:
    """Validation `metric` (mean over seeds) against the training CPU seconds of each run's own process
    (validations left out; recorded in history.jsonl since seqrec measures them), else wall-clock training
    seconds; means over seeds, one line per objective, until its first seed stops; a star marks the best
    mean. CPU seconds of the process do not depend on how many other jobs shared the machine."""
    if "elapsed_seconds" not in curves.columns and CPU_SECONDS not in curves.columns:
        raise ValueError("the history has no elapsed_seconds; time to quality needs them")
    summary = _summary(curves, metric)
    use_cpu = CPU_SECONDS in curves.columns and curves[CPU_SECONDS].null_count() == 0
    x = "cpu_seconds" if use_cpu else "seconds"
    ax = _axes(ax, (7.5, 4.5))
    for index, objective in enumerate(curves["objective"].unique(maintain_order=True)):
        line = summary.filter(pl.col("objective") == objective)
        color = f"C{index % 10}"
        ax.plot(line[x], line["mean"], marker="o", markersize=3, color=color, label=objective)
        best = line.row(int(line["mean"].arg_max()), named=True)
        ax.plot(best[x], best["mean"], marker="*", markersize=12, color=color, linestyle="none")
    ax.set(
        xlabel="training CPU seconds of the run's process (validations excluded)"
        if use_cpu
        else "training seconds (wall clock, validations included)",
        ylabel=f"validation {metric}",
        title=f"Time to quality: validation {metric} against training time",
    )
    return _finish_curves(ax, "line: mean over seeds, until the first seed stops; star: best mean validation")


def _finish_curves(ax: Any, legend_note: str) -> Any:
    """Grid, legend outside the axes, and a small note saying what the lines and marks mean."""
    ax.text(0.99, 0.02, legend_note, transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color="0.3")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax


def _clipped_error(value: float, half_width: float | None) -> list[float]:
    """[below, above] error-bar lengths of value ± half_width, clipped to the metric's range [0, 1]."""
    if half_width is None:
        return [0.0, 0.0]
    return [min(half_width, value), min(half_width, 1.0 - value)]


def plot_quality_coverage(table: pl.DataFrame, k: int = 10, ax: Any = None) -> Any:
    """Trade-off: x = coverage@k, y = dcg@k, one point per objective with 95% CI bars over seeds, clipped
    to [0, 1] (no bar for a single seed)."""
    quality, coverage = f"dcg@{k}", f"coverage@{k}"
    missing = [metric for metric in (quality, coverage) if metric not in table.columns]
    if missing:
        raise ValueError(f"results table has no {missing}; build it with metrics that include them")
    ax = _axes(ax, (7.5, 4.8))
    for index, row in enumerate(table.iter_rows(named=True)):
        x, y = row[coverage], row[quality]
        xerr = [[side] for side in _clipped_error(x, row[f"{coverage}_ci"])]
        yerr = [[side] for side in _clipped_error(y, row[f"{quality}_ci"])]
        ax.errorbar(
            x, y, xerr=xerr, yerr=yerr, fmt="o", capsize=3, color=f"C{index % 10}", label=row["objective"]
        )
    seeds = table["n_seeds"]
    bars = (
        f"bars: 95% CI over seeds ({_seeds_text(seeds)} per point), clipped to [0, 1]"
        if seeds.max() > 1
        else "one seed per point: no interval"
    )
    ax.set(
        xlabel=f"{coverage} (share of the catalog recommended to someone)",
        ylabel=f"{quality}",
        title=f"Quality vs coverage at {k}",
    )
    ax.text(
        0.99,
        0.02,
        bars,
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=8,
        color="0.3",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # labels by points would overlap
    return ax


def save_figures(
    runs: Sequence[RunRecord], table: pl.DataFrame, folder: str | Path, metric: str = "dcg@10", k: int = 10
) -> list[Path]:
    """Draw the three figures and write each as PNG and PDF into `folder`; returns the PNG paths."""
    from matplotlib.figure import Figure  # not pyplot: files only, whatever the session's backend

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    curves = validation_curves(runs)
    drawings = [("quality-coverage", lambda ax: plot_quality_coverage(table, k=k, ax=ax))]
    if curves.height:
        drawings.append((f"validation-{metric}", lambda ax: plot_validation_curves(curves, metric, ax=ax)))
    if "elapsed_seconds" in curves.columns:
        drawings.append((f"time-to-{metric}", lambda ax: plot_time_to_quality(curves, metric, ax=ax)))
    written = []
    for name, draw in drawings:
        figure = Figure(figsize=(8, 4.8), layout="constrained")
        draw(figure.subplots())
        for suffix in ("png", "pdf"):
            figure.savefig(folder / f"{name}.{suffix}", dpi=150)
        written.append(folder / f"{name}.png")
    return written
