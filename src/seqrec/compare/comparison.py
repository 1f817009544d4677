"""One comparison of recorded runs, computed once: the runs picked and grouped by protocol, the table, the
ceiling, the significance rows and verdicts, first place, segments, cost, budget and tuning notes.

`compare(scan, sources, ...)` gives a `Comparison`; `seqrec.compare.report_text` and `report_json` show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from seqrec.compare.budget import budget_flags, flagged_verdict
from seqrec.compare.conventions import with_convention
from seqrec.compare.cost import cost_table
from seqrec.compare.protocols import ProtocolGroup, group_runs, protocol_groups, variant_of
from seqrec.compare.ranking import BEST, PAIRINGS, all_pairs, best_objective, first_place
from seqrec.compare.runs import RunRecord, RunScan
from seqrec.compare.segments import SegmentsNeedRerun, segment_table
from seqrec.compare.significance import paired_significance
from seqrec.compare.table import PROTOCOL_METRICS, results_table
from seqrec.compare.tuning import study_views

CEILING_SPLIT = "oracle_test"  # run.json metrics of the synthetic generator's Bayes-optimal ranking


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
