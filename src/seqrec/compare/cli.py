"""`python -m seqrec.compare`: the table, the ceiling, the significance rows and verdicts, the figures.

python -m seqrec.compare multirun/2026-01-01/12-00-00                      # plain text for a terminal
python -m seqrec.compare SWEEP_A SWEEP_B --baseline bce --metric dcg@10    # several sweep folders
python -m seqrec.compare SWEEP --format markdown | json   --plots          # pages, scripts, figures
python -m seqrec.compare SWEEP --pairs all --segments --exclude-seen true  # every pair, where, convention
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

from seqrec.compare.budget import budget_flags, budget_json, flagged_verdict, format_budget
from seqrec.compare.conventions import parse_convention, with_convention
from seqrec.compare.cost import cost_per_run, cost_table, format_cost
from seqrec.compare.plots import save_figures
from seqrec.compare.protocols import (
    ProtocolGroup,
    differing_settings,
    group_runs,
    protocol_groups,
    variant_of,
    where,
)
from seqrec.compare.ranking import BEST, PAIRINGS, all_pairs, best_objective, first_place, pairs_heading
from seqrec.compare.runs import RunRecord, RunScan, scan_run_dirs
from seqrec.compare.segments import SegmentsNeedRerun, format_segments, segment_table
from seqrec.compare.significance import (
    METHODS,
    TESTS,
    format_significance,
    paired_significance,
    significance_heading,
)
from seqrec.compare.statistics import ALPHA, MIN_SEEDS_FOR_VERDICT
from seqrec.compare.table import PROTOCOL_METRICS, SECONDS_COLUMN, format_table, results_table, table_style
from seqrec.compare.tuning import format_study, plot_tuning_curves, study_json, study_views
from seqrec.compare.wandb_source import scan_wandb_runs
from seqrec.files import write_text_atomic

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
    """Everything a report shows, computed once from a scan. `runs` are the compared runs (relabelled with
    what differs under allow_mixed), `groups` their protocol groups, `notes` what changed the method."""

    sources: list[str]
    scan: RunScan
    split: str
    table: pl.DataFrame
    baseline: str | None = None
    metric: str = "dcg@10"
    test: str = "seeds"
    significance: pl.DataFrame | None = None
    ceiling: dict[str, float] | None = None  # the single group's ceiling; see `ceilings` for mixed groups
    figures: list[Path] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    groups: list[ProtocolGroup] = field(default_factory=list)
    ceilings: list[tuple[ProtocolGroup, dict[str, float]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    budget: tuple = ((), {})  # seqrec.compare.budget.budget_flags of the shown runs: (per run, per objective)
    tuning: list = field(default_factory=list)  # seqrec.compare.tuning.StudyView of each tuned sweep

    pairs: str = "baseline"  # "baseline": each objective vs the baseline; "all": every pair
    first_place: str | None = None  # which objectives are statistically tied for first
    segments: pl.DataFrame | None = None
    segments_note: str | None = None  # why there are no segments (e.g. runs that predate them)
    cost: pl.DataFrame | None = None
    exclude_seen: bool | None = None  # the seen-items convention asked for (None: each run's primary)

    @property
    def mixed(self) -> bool:
        return len(self.groups) > 1

    def row_groups(self) -> list[str] | None:
        """The protocol group label of each table row (for `format_table`); None when there is one group."""
        if not self.mixed:
            return None
        group_of = {run.objective: group.label for group in self.groups for run in group.runs}
        return [group_of[name] for name in self.table["objective"]]


def _group_ceiling(group: ProtocolGroup) -> dict[str, float] | None:
    return next(
        (dict(run.metrics[CEILING_SPLIT]) for run in group.runs if CEILING_SPLIT in run.metrics), None
    )


def ceiling(runs: Sequence[RunRecord]) -> dict[str, float] | None:
    """Test metrics of the synthetic generator's Bayes-optimal ranking of the runs' test samples under their
    evaluation: no objective can beat it on average. None for real data, and for runs of several protocols
    or test sets (each has its own ceiling: `Comparison.ceilings`)."""
    groups = protocol_groups(runs)
    return _group_ceiling(groups[0]) if len(groups) == 1 else None


def _select(runs: Sequence[RunRecord], objectives: Sequence[str] | None) -> list[RunRecord]:
    """The runs of `objectives` (variant labels, or `variant @ difference` labels), before grouping."""
    if objectives is None:
        return list(runs)
    wanted = {variant_of(name) for name in objectives}
    return [run for run in runs if run.objective in wanted]


def _expand(names: Sequence[str] | None, labels: Sequence[str]) -> list[str] | None:
    """`--objectives bce` picks every `bce @ ...` row of a mixed comparison; exact labels pick themselves."""
    if names is None:
        return None
    expanded = []
    for name in names:
        matches = [label for label in labels if label == name] or [
            label for label in labels if variant_of(label) == name
        ]
        expanded += matches or [name]  # an unknown name: results_table says which exist
    return list(dict.fromkeys(expanded))


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
    allow_mixed: bool = False,
    pairs: str = "baseline",
    segments: bool = False,
    history_edges: Sequence[int] | None = None,
    exclude_seen: bool | None = None,
) -> Comparison:
    """The comparison of the scan's runs. Runs of different protocols or test sets raise MixedProtocols
    (a ValueError naming what differs) unless `allow_mixed`; then rows are labelled with what differs and
    significance stays within the baseline's protocol and test set.

    baseline: an objective, or None / "best" (default): the best mean on `metric` against every other.
    pairs="all": every pair instead, Holm over all. segments: per-segment metrics and differences.
    exclude_seen: compare under this seen-items convention (runs record both)."""
    if pairs not in PAIRINGS:
        raise ValueError(f"pairs must be one of {PAIRINGS}, got {pairs!r}")
    scan = RunScan(with_convention(scan.runs, exclude_seen), scan.skipped)
    runs, groups = group_runs(_select(scan.runs, objectives), allow_mixed)
    labels = list(dict.fromkeys(run.objective for run in runs))
    table = results_table(runs, metrics=metrics, split=split, objectives=_expand(objectives, labels))
    shown = table["objective"].to_list()
    comparison = Comparison(list(sources), scan, split, table, metric=metric, test=test, pairs=pairs)
    comparison.runs, comparison.groups = runs, groups
    comparison.exclude_seen = exclude_seen
    comparison.ceilings = [(group, found) for group in groups if (found := _group_ceiling(group))]
    comparison.budget = budget_flags([run for run in runs if run.objective in shown])
    comparison.tuning = study_views(sources)
    if len(groups) == 1 and comparison.ceilings:
        comparison.ceiling = comparison.ceilings[0][1]
    if all(run.dir is not None for run in runs):
        comparison.cost = cost_table(runs, shown)
    if len(shown) > 1:
        if baseline in (None, BEST):
            chosen = best_objective(runs, metric, shown, split)
        else:
            chosen = (_expand([baseline], shown) or [baseline])[0]
        if chosen not in shown:
            raise ValueError(f"baseline {chosen!r} has no completed run; objectives: {shown}")
        comparison.baseline = chosen
        group_of = {run.objective: group.label for group in groups for run in group.runs}
        tested = [name for name in shown if group_of.get(name) == group_of.get(chosen)]
        elsewhere = [name for name in shown if name not in tested]
        if elsewhere:
            comparison.notes.append(
                f"No significance row or verdict for {', '.join(elsewhere)}: another protocol or test set "
                f"than the baseline {chosen}; nothing is tested across protocols or test sets."
            )
        if len(tested) > 1:
            tested_runs = [run for run in runs if run.objective in tested]
            options = {"test": test, "split": split, "n_bootstrap": n_bootstrap}
            if pairs == "all":
                comparison.significance = all_pairs(tested_runs, metric, tested, **options)
            else:
                comparison.significance = paired_significance(
                    tested_runs, chosen, metric, objectives=tested, **options
                )
                in_table = set(comparison.significance["objective"])
                missing = [name for name in tested if name != chosen and name not in in_table]
                if missing:
                    comparison.notes.append(
                        f"No significance row for {', '.join(missing)}: "
                        + (
                            "no run with test ranks"
                            if test == "samples"
                            else "no seed shared with the baseline"
                        )
                        + f" ({chosen})."
                    )
            flags = comparison.budget[1]
            rows = comparison.significance.select("verdict", "objective", "baseline").rows()
            verdicts = [flagged_verdict(text, objective, base, flags) for text, objective, base in rows]
            comparison.significance = comparison.significance.with_columns(pl.Series("verdict", verdicts))
            best = best_objective(tested_runs, metric, tested, split)
            if pairs == "all" or chosen == best:
                comparison.first_place = first_place(comparison.significance, best, metric)
            if segments:
                try:
                    comparison.segments = segment_table(tested_runs, chosen, metric, tested, history_edges)
                except SegmentsNeedRerun as error:
                    comparison.segments_note = f"Segments: {error}"
    return comparison


def _protocol_text(comparison: Comparison, style: str) -> str:
    """Which protocol and test set the rows share, or, for a mixed comparison, each group and its rows."""
    groups = comparison.groups
    if not groups:
        return ""
    if len(groups) == 1:
        return f"All runs share one protocol and test set: {groups[0].describe()}."
    code = "`" if style == "markdown" else ""
    lines = [
        f"Mixed protocols or test sets ({len(groups)} groups, --allow-mixed): each row is labelled "
        "`variant @ what differs`; the table never pools them, and significance and verdicts stay within "
        "the baseline's group."
    ]
    for group in groups:
        lines.append(f"- {code}{group.label}{code}: {group.describe()}; {where(group, groups)}")
    return "\n".join(lines)


def _ceiling_text(values: Sequence[tuple[str, float]], style: str, rows: str | None) -> str:
    heading = table_style(style).heading
    title = (
        f"{heading}Ceiling: the synthetic generator's Bayes-optimal ranking of the same test samples "
        "(no objective can beat it on average)"
    )
    if rows:  # a mixed comparison: one ceiling per protocol and test set, for its rows only
        title = (
            f"{heading}Ceiling for {rows} only: the Bayes-optimal ranking of their test samples, evaluated "
            "as they are"
        )
    if style == "markdown":
        header = "| ranking | " + " | ".join(m for m, _ in values) + " |\n|---|" + "---|" * len(values)
        return (
            f"{title}\n\n{header}\n| Bayes-optimal oracle | "
            + " | ".join(f"{v:.4f}" for _, v in values)
            + " |"
        )
    return f"{title}\n" + "  ".join(f"{m} {v:.4f}" for m, v in values)


def _ceiling_texts(comparison: Comparison, metrics: Sequence[str], style: str) -> list[str]:
    texts = []
    shown = set(comparison.table["objective"])
    for group, found in comparison.ceilings:
        rows = [name for name in dict.fromkeys(run.objective for run in group.runs) if name in shown]
        values = [(m, found[m]) for m in metrics if m in found]
        if rows and values:
            texts.append(_ceiling_text(values, style, ", ".join(rows) if comparison.mixed else None))
    return texts


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
        format_table(comparison.table, style=style, row_groups=comparison.row_groups()),
    ]
    parts += [_wrapped(text, style) for text in _ceiling_texts(comparison, metrics, style)]
    if comparison.groups:
        parts.append(_wrapped(_protocol_text(comparison, style), style))
    significance = comparison.significance
    if significance is None and comparison.table.height > 1:
        parts.append("Significance: no objective shares the baseline's protocol and test set.")
    elif significance is None:
        parts.append("Significance: only one objective, nothing to compare.")
    else:
        if comparison.pairs == "all":
            title = pairs_heading(significance, comparison.metric)
        else:
            title = significance_heading(significance, comparison.baseline, comparison.metric)
        parts.append(heading + _wrapped(title, style))
        parts.append(format_significance(significance, style=style))
        if comparison.first_place:
            parts.append(_wrapped(comparison.first_place, style))
        methods = significance["method"].unique(maintain_order=True).to_list()
        meaning = " ".join(INTERVALS_MEAN[m] for m in methods)
        if "samples" not in methods:
            meaning += f" A verdict needs at least {MIN_SEEDS_FOR_VERDICT} seeds and p < {ALPHA}."
        parts.append(_wrapped(meaning, style))
    parts += [_wrapped(note, style) for note in comparison.notes]
    parts += [_wrapped(text, style) for text in [format_budget(*comparison.budget, style)] if text]
    parts += [format_study(view, style) for view in comparison.tuning]
    if comparison.segments is not None:
        parts.append(_wrapped_last(format_segments(comparison.segments, style), style))
    elif comparison.segments_note:
        parts.append(comparison.segments_note)  # one line, however long: it names a run folder
    if comparison.cost is not None:
        parts.append(_wrapped_last(format_cost(comparison.cost, style), style, paragraphs=True))
    if comparison.exclude_seen is not None:
        parts.append(
            f"Seen items: evaluation.exclude_seen={str(comparison.exclude_seen).lower()} for every run "
            "(each run records both conventions in one evaluation pass)."
        )
    parts.append(comparison.scan.note())
    if comparison.figures:
        parts.append("Figures: " + ", ".join(str(path) for path in comparison.figures) + " (and .pdf)")
    if command:
        parts.append(f"Runs: {' '.join(comparison.sources)}\nRerun: {command}")
    return "\n\n".join(parts)


def tuning_only_report(sources: Sequence[str], style: str, scan: RunScan) -> str:
    """The tuning view of study folders that have no completed final run yet."""
    views = study_views(sources)
    if style == "json":
        return json.dumps(
            _finite({"sources": list(sources), "runs": 0, "tuning": [study_json(v) for v in views]})
        )
    parts = [format_study(view, style) for view in views]
    parts.append("No completed final run yet: no test metrics, no verdicts.\n" + scan.note())
    return "\n\n".join(parts)


def _wrapped_last(text: str, style: str, paragraphs: bool = False) -> str:
    """Wrap the prose paragraph(s) after a table: the last one, or every paragraph after the first table."""
    blocks = text.split("\n\n")
    start = 2 if paragraphs else len(blocks) - 1
    return "\n\n".join(blocks[:start] + [_wrapped(block, style) for block in blocks[start:]])


def _finite(value):
    """JSON has no NaN: NaN and infinities become null, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _group_json(group: ProtocolGroup, groups: Sequence[ProtocolGroup]) -> dict:
    return {
        "label": group.label,
        "protocol": group.protocol,
        "protocol_recorded": group.recorded,
        "test_set": group.test_set,
        "test_samples": group.test_samples,
        "rows": list(dict.fromkeys(run.objective for run in group.runs)),
        "runs": [run.location for run in group.runs],
        "differs_in": {
            key: group.settings.get(key) for key in differing_settings(groups) if key in group.settings
        },
    }


def report_json(comparison: Comparison) -> str:
    table = comparison.table
    group_of = {
        run.objective: group.label or group.protocol for group in comparison.groups for run in group.runs
    }
    metrics = [c for c in table.columns if f"{c}_ci" in table.columns]
    rows = [
        {
            "objective": row["objective"],
            "n_seeds": row["n_seeds"],
            SECONDS_COLUMN: row[SECONDS_COLUMN],
            "metrics": {m: {"mean": row[m], "ci_half_width": row[f"{m}_ci"]} for m in metrics},
            "protocol": group_of.get(row["objective"]),
        }
        for row in table.iter_rows(named=True)
    ]
    significance = comparison.significance
    payload = {
        "sources": comparison.sources,
        "split": comparison.split,
        "table": rows,
        "ceiling": comparison.ceiling,
        "ceilings": [
            {"protocol": group.label or group.protocol, "test_set": group.test_set, "metrics": found}
            for group, found in comparison.ceilings
        ],
        "mixed": comparison.mixed,
        "protocols": [_group_json(group, comparison.groups) for group in comparison.groups],
        "notes": comparison.notes,
        "baseline": comparison.baseline,
        "metric": comparison.metric,
        "test": comparison.test,
        "methods": METHODS,
        "significance": significance.to_dicts() if significance is not None else [],
        "pairs": comparison.pairs,
        "first_place": comparison.first_place,
        "exclude_seen": comparison.exclude_seen,
        "segments": comparison.segments.to_dicts() if comparison.segments is not None else None,
        "segments_note": comparison.segments_note,
        "cost": comparison.cost.to_dicts() if comparison.cost is not None else None,
        "cost_per_run": cost_per_run(comparison.runs).to_dicts() if comparison.cost is not None else None,
        "runs": len(comparison.scan.runs),
        "skipped": [{"location": s.location, "reason": s.reason} for s in comparison.scan.skipped],
        "figures": [str(path) for path in comparison.figures],
        "budget": budget_json(*comparison.budget),
        "tuning": [study_json(view) for view in comparison.tuning],
    }
    return json.dumps(_finite(payload), indent=2, allow_nan=False)


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
            k = int(args.metric.partition("@")[2] or 10)
            table = comparison.table
            if not {f"dcg@{k}", f"coverage@{k}"} <= set(table.columns):
                shown = comparison.table["objective"].to_list()
                table = results_table(comparison.runs, (f"dcg@{k}", f"coverage@{k}"), objectives=shown)
            comparison.figures = save_figures(comparison.runs, table, folder, metric=args.metric, k=k)
            comparison.figures += [plot_tuning_curves(comparison.tuning, folder)] if comparison.tuning else []
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
