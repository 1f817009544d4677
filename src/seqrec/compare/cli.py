"""`python -m seqrec.compare`: the table, the ceiling, the significance rows and verdicts, the figures.

python -m seqrec.compare multirun/2026-01-01/12-00-00                      # plain text for a terminal
python -m seqrec.compare SWEEP_A SWEEP_B --baseline bce --metric dcg@10    # several sweep folders
python -m seqrec.compare SWEEP --format markdown | json   --plots          # pages, scripts, figures
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from seqrec.compare.plots import save_figures
from seqrec.compare.runs import RunRecord, RunScan, scan_run_dirs
from seqrec.compare.significance import (
    METHODS,
    TESTS,
    format_significance,
    paired_significance,
    significance_heading,
)
from seqrec.compare.statistics import ALPHA, MIN_SEEDS_FOR_VERDICT
from seqrec.compare.table import PROTOCOL_METRICS, SECONDS_COLUMN, format_table, results_table, table_style
from seqrec.compare.wandb_source import scan_wandb_runs

FORMATS = ("plain", "markdown", "json")
CEILING_SPLIT = "oracle_test"  # run.json metrics of the synthetic generator's Bayes-optimal ranking

INTERVALS_MEAN = {
    "seeds+samples": "Each interval is for the expected difference between the objectives over retraining "
    "(seeds) and over test samples drawn like these; more seeds and more test users narrow it.",
    "seeds": "Each interval is for the expected difference over retraining (seeds) on this test set; without "
    "per-sample ranks the test set's own sampling noise is not included.",
    "samples": "Each interval is for these trained models on test samples like these: it ignores training "
    "randomness, so it says nothing about which objective is better.",
}


@dataclass
class Comparison:
    """Everything a report shows, computed once from a scan."""

    sources: list[str]
    scan: RunScan
    split: str
    table: pl.DataFrame
    baseline: str | None = None
    metric: str = "dcg@10"
    test: str = "seeds"
    significance: pl.DataFrame | None = None
    ceiling: dict[str, float] | None = None
    figures: list[Path] = field(default_factory=list)


def ceiling(runs: Sequence[RunRecord]) -> dict[str, float] | None:
    """Test metrics of the synthetic generator's Bayes-optimal ranking (the same for every run on one data
    set): no objective can beat it on average. None for real data."""
    return next((dict(run.metrics[CEILING_SPLIT]) for run in runs if CEILING_SPLIT in run.metrics), None)


def compare(
    scan: RunScan,
    sources: Sequence[str],
    *,
    metrics: Sequence[str] = PROTOCOL_METRICS,
    baseline: str | None = None,
    metric: str = "dcg@10",
    objectives: Sequence[str] | None = None,
    split: str = "test",
    test: str = "seeds",
    n_bootstrap: int = 10_000,
) -> Comparison:
    table = results_table(scan.runs, metrics=metrics, split=split, objectives=objectives)
    shown = table["objective"].to_list()
    comparison = Comparison(
        list(sources), scan, split, table, metric=metric, test=test, ceiling=ceiling(scan.runs)
    )
    if len(shown) > 1:
        comparison.baseline = baseline or shown[0]
        comparison.significance = paired_significance(
            scan.runs,
            comparison.baseline,
            metric,
            test=test,
            split=split,
            objectives=shown,
            n_bootstrap=n_bootstrap,
        )
    return comparison


def _ceiling_text(comparison: Comparison, metrics: Sequence[str], style: str) -> str:
    values = [(m, comparison.ceiling[m]) for m in metrics if m in comparison.ceiling]
    heading = table_style(style).heading
    title = (
        f"{heading}Ceiling: the synthetic generator's Bayes-optimal ranking of the same test samples "
        "(no objective can beat it on average)"
    )
    if style == "markdown":
        header = "| ranking | " + " | ".join(m for m, _ in values) + " |\n|---|" + "---|" * len(values)
        return (
            f"{title}\n\n{header}\n| Bayes-optimal oracle | "
            + " | ".join(f"{v:.4f}" for _, v in values)
            + " |"
        )
    return f"{title}\n" + "  ".join(f"{m} {v:.4f}" for m, v in values)


def _wrapped(text: str, style: str) -> str:
    """Prose lines fit a 120-column terminal in plain text; markdown pages wrap by themselves."""
    if style != "plain":
        return text
    return "\n".join(textwrap.fill(line, width=120, break_on_hyphens=False) for line in text.splitlines())


def format_report(comparison: Comparison, style: str = "plain", command: str | None = None) -> str:
    """The comparison as text: results table, ceiling, significance with verdicts, runs, figures."""
    heading = table_style(style).heading
    metrics = [c for c in comparison.table.columns if f"{c}_ci" in comparison.table.columns]
    parts = [
        f"{heading}Metrics on {comparison.split}: mean ± 95% CI over seeds (Student t, n-1 df)",
        format_table(comparison.table, style=style),
    ]
    if comparison.ceiling:
        parts.append(_wrapped(_ceiling_text(comparison, metrics, style), style))
    significance = comparison.significance
    if significance is None:
        parts.append("Significance: only one objective, nothing to compare.")
    else:
        title = significance_heading(significance, comparison.baseline, comparison.metric)
        parts.append(heading + _wrapped(title, style))
        parts.append(format_significance(significance, style=style))
        methods = significance["method"].unique(maintain_order=True).to_list()
        meaning = " ".join(INTERVALS_MEAN[m] for m in methods)
        if "samples" not in methods:
            meaning += f" A verdict needs at least {MIN_SEEDS_FOR_VERDICT} seeds and p < {ALPHA}."
        parts.append(_wrapped(meaning, style))
    parts.append(comparison.scan.note())
    if comparison.figures:
        parts.append("Figures: " + ", ".join(str(path) for path in comparison.figures) + " (and .pdf)")
    if command:
        parts.append(f"Runs: {' '.join(comparison.sources)}\nRerun: {command}")
    return "\n\n".join(parts)


def _finite(value):
    """JSON has no NaN: NaN and infinities become null, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def report_json(comparison: Comparison) -> str:
    table = comparison.table
    metrics = [c for c in table.columns if f"{c}_ci" in table.columns]
    rows = [
        {
            "objective": row["objective"],
            "n_seeds": row["n_seeds"],
            SECONDS_COLUMN: row[SECONDS_COLUMN],
            "metrics": {m: {"mean": row[m], "ci_half_width": row[f"{m}_ci"]} for m in metrics},
        }
        for row in table.iter_rows(named=True)
    ]
    significance = comparison.significance
    payload = {
        "sources": comparison.sources,
        "split": comparison.split,
        "table": rows,
        "ceiling": comparison.ceiling,
        "baseline": comparison.baseline,
        "metric": comparison.metric,
        "test": comparison.test,
        "methods": METHODS,
        "significance": significance.to_dicts() if significance is not None else [],
        "runs": len(comparison.scan.runs),
        "skipped": [{"location": s.location, "reason": s.reason} for s in comparison.scan.skipped],
        "figures": [str(path) for path in comparison.figures],
    }
    return json.dumps(_finite(payload), indent=2, allow_nan=False)


def default_metrics(style: str, metric: str) -> tuple[str, ...]:
    """Terminal tables show the quality, hit rate and coverage at the significance metric's cutoff; pages and
    JSON show every protocol metric."""
    if style != "plain":
        return PROTOCOL_METRICS
    k = metric.partition("@")[2] or "10"
    return (f"dcg@{k}", f"hitrate@{k}", f"coverage@{k}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m seqrec.compare",
        description="Compare recorded seqrec runs: a table (mean ± 95% CI over seeds), seed-aware paired "
        "significance against a baseline with a verdict per objective, and figures.",
    )
    parser.add_argument(
        "sweep_dirs", nargs="*", type=Path, help="folders holding run directories at any depth"
    )
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read runs from Weights & Biases instead")
    parser.add_argument("--group", help="W&B run group (with --wandb)")
    parser.add_argument("--baseline", help="objective the others are tested against (default: first row)")
    parser.add_argument("--metric", default="dcg@10", help="metric of the paired test (default dcg@10)")
    parser.add_argument("--metrics", nargs="+", help="table columns (default: @k of --metric on a terminal)")
    parser.add_argument("--objectives", nargs="+", help="objectives to show, in this order (default: all)")
    parser.add_argument("--split", default="test", help="metrics split of run.json to tabulate")
    parser.add_argument(
        "--test",
        choices=TESTS,
        default="seeds",
        help="seeds (default): seed-aware; samples: these trained models, test-sample noise only",
    )
    parser.add_argument("--n-bootstrap", type=int, default=10_000, help="resamples of --test samples")
    parser.add_argument("--format", choices=FORMATS, default="plain", dest="style")
    parser.add_argument("--plots", action="store_true", help="write the figures (PNG and PDF)")
    parser.add_argument("--figures-dir", type=Path, help="where --plots writes (default: FIRST_DIR/figures)")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if bool(args.sweep_dirs) == bool(args.wandb):
        parser.error("give either SWEEP_DIR ... or --wandb ENTITY/PROJECT")
    sources = [args.wandb] if args.wandb else [str(path) for path in args.sweep_dirs]
    try:
        scan = scan_wandb_runs(args.wandb, args.group) if args.wandb else scan_run_dirs(*args.sweep_dirs)
        if not scan.runs:
            print(f"error: no completed run found in {' '.join(sources)}.\n{scan.note()}", file=sys.stderr)
            return 1
        comparison = compare(
            scan,
            sources,
            metrics=args.metrics or default_metrics(args.style, args.metric),
            baseline=args.baseline,
            metric=args.metric,
            objectives=args.objectives,
            split=args.split,
            test=args.test,
            n_bootstrap=args.n_bootstrap,
        )
        if args.plots:
            folder = args.figures_dir or (
                args.sweep_dirs[0] / "figures" if args.sweep_dirs else Path("figures")
            )
            k = int(args.metric.partition("@")[2] or 10)
            table = comparison.table
            if not {f"dcg@{k}", f"coverage@{k}"} <= set(table.columns):
                table = results_table(scan.runs, (f"dcg@{k}", f"coverage@{k}"), objectives=args.objectives)
            comparison.figures = save_figures(scan.runs, table, folder, metric=args.metric, k=k)
    except (FileNotFoundError, ValueError) as error:  # DataError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.style == "json":
        report = report_json(comparison)
    else:
        report = format_report(comparison, args.style, "python -m seqrec.compare " + shlex.join(argv))
    print(report)
    if args.output is not None:
        args.output.write_text(report + "\n")
    return 0
