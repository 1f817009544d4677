"""`python -m seqrec.compare`: the command line. It reads the runs (sweep folders or a W&B project), computes
the comparison (seqrec.compare.comparison), writes the figures with --plots and prints the report as plain
text, markdown (seqrec.compare.report_text) or JSON (seqrec.compare.report_json).

python -m seqrec.compare multirun/2026-01-01/12-00-00                      # plain text for a terminal
python -m seqrec.compare SWEEP_A SWEEP_B --baseline bce --metric dcg@10    # several sweep folders
python -m seqrec.compare SWEEP --format markdown | json   --plots          # pages, scripts, figures
python -m seqrec.compare SWEEP --pairs all --segments --exclude-seen true  # every pair, where, convention
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from seqrec.compare.comparison import Comparison, compare
from seqrec.compare.conventions import parse_convention
from seqrec.compare.plots import save_figures
from seqrec.compare.ranking import PAIRINGS
from seqrec.compare.report_json import report_json
from seqrec.compare.report_text import format_report, tuning_only_report
from seqrec.compare.runs import scan_run_dirs
from seqrec.compare.significance import TESTS
from seqrec.compare.table import PROTOCOL_METRICS, results_table
from seqrec.compare.tuning import plot_tuning_curves, study_views
from seqrec.compare.wandb_source import scan_wandb_runs
from seqrec.files import write_text_atomic

FORMATS = ("plain", "markdown", "json")


def default_metrics(style: str, metric: str) -> tuple[str, ...]:
    """Terminal and markdown tables show the quality, hit rate and coverage at the significance metric's
    cutoff; JSON shows every protocol metric (`--metrics all` everywhere)."""
    if style == "json":
        return PROTOCOL_METRICS
    k = metric.partition("@")[2] or "10"
    return (f"dcg@{k}", f"hitrate@{k}", f"coverage@{k}")


def _metrics_argument(metrics: Sequence[str] | None) -> Sequence[str] | None:
    return PROTOCOL_METRICS if metrics and [m.lower() for m in metrics] == ["all"] else metrics


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
    parser.add_argument(
        "--baseline",
        help="objective the others are tested against; best (default): the best mean on --metric",
    )
    parser.add_argument(
        "--pairs",
        choices=PAIRINGS,
        default="baseline",
        help="baseline (default): each objective vs the baseline; all: every pair, Holm over all pairs",
    )
    parser.add_argument("--metric", default="dcg@10", help="metric of the paired test (default dcg@10)")
    parser.add_argument(
        "--metrics", nargs="+", help="table columns (default: @k of --metric; all: every protocol metric)"
    )
    parser.add_argument(
        "--segments",
        action="store_true",
        help="metric and paired difference per segment: user history length, target popularity, cold",
    )
    parser.add_argument(
        "--history-edges",
        type=int,
        nargs="+",
        metavar="N",
        help="user history bins [1,N1), [N1,N2), ... (default: quartiles of the training split's users)",
    )
    parser.add_argument(
        "--exclude-seen",
        metavar="true|false",
        help="compare under this seen-items convention (runs record both; default: each run's own)",
    )
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
    parser.add_argument(
        "--allow-mixed",
        action="store_true",
        help="show runs of different protocols or test sets side by side (rows labelled with what differs, "
        "no verdict across them) instead of refusing",
    )
    return parser


def write_figures(comparison: Comparison, folder: Path, metric: str) -> list[Path]:
    """The figures of --plots (curves, time to quality, quality vs coverage at the metric's k, tuning
    curves of tuned sweeps) in `folder`; returns their paths (PNG)."""
    k = int(metric.partition("@")[2] or 10)
    table = comparison.table
    if not {f"dcg@{k}", f"coverage@{k}"} <= set(table.columns):
        shown = comparison.table["objective"].to_list()
        table = results_table(comparison.runs, (f"dcg@{k}", f"coverage@{k}"), objectives=shown)
    figures = save_figures(comparison.runs, table, folder, metric=metric, k=k)
    return figures + ([plot_tuning_curves(comparison.tuning, folder)] if comparison.tuning else [])


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if bool(args.sweep_dirs) == bool(args.wandb):
        parser.error("give either SWEEP_DIR ... or --wandb ENTITY/PROJECT")
    sources = [args.wandb] if args.wandb else [str(path) for path in args.sweep_dirs]
    try:
        scan = scan_wandb_runs(args.wandb, args.group) if args.wandb else scan_run_dirs(*args.sweep_dirs)
        if not scan.runs and not args.wandb and study_views(sources):  # a study whose final runs are not done
            print(tuning_only_report(sources, args.style, scan))
            return 0
        if not scan.runs:
            print(f"error: no completed run found in {' '.join(sources)}.\n{scan.note()}", file=sys.stderr)
            return 1
        comparison = compare(
            scan,
            sources,
            metrics=_metrics_argument(args.metrics) or default_metrics(args.style, args.metric),
            baseline=args.baseline,
            metric=args.metric,
            objectives=args.objectives,
            split=args.split,
            test=args.test,
            n_bootstrap=args.n_bootstrap,
            allow_mixed=args.allow_mixed,
            pairs=args.pairs,
            segments=args.segments,
            history_edges=args.history_edges,
            exclude_seen=parse_convention(args.exclude_seen),
        )
        if args.plots:
            folder = args.figures_dir or (
                args.sweep_dirs[0] / "figures" if args.sweep_dirs else Path("figures")
            )
            comparison.figures = write_figures(comparison, folder, args.metric)
    except (FileNotFoundError, ValueError) as error:  # RecordError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.style == "json":
        report = report_json(comparison)
    else:
        report = format_report(comparison, args.style, "python -m seqrec.compare " + shlex.join(argv))
    print(report)
    if args.output is not None:
        write_text_atomic(args.output, report + "\n")
    return 0
