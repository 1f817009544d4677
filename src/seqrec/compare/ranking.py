"""Is the winner the best? The objective with the best mean against every other (`--baseline best`),
every pair (`--pairs all`), and which objectives are statistically tied for first.

Both families are Holm-adjusted as a whole: best-vs-others over its k-1 comparisons, all pairs over
k(k-1)/2, so "tied for first" and "beats" keep the family-wise error at alpha.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import polars as pl

from seqrec.compare import statistics
from seqrec.compare.errors import RecordError
from seqrec.compare.runs import RunRecord
from seqrec.compare.significance import METHODS, paired_significance, verdict

BEST = "best"
PAIRINGS = ("baseline", "all")


def mean_by_objective(runs: Sequence[RunRecord], metric: str, objectives: Sequence[str], split: str) -> dict:
    """{objective: mean over its seeds of the recorded `split` metric}, in the order of `objectives`."""
    means = {}
    for objective in objectives:
        values = [run.metrics.get(split, {}).get(metric) for run in runs if run.objective == objective]
        if not values or any(value is None for value in values):
            raise RecordError(
                f"some runs of {objective} have no {split} metric {metric!r}; pick another --metric"
            )
        means[objective] = float(np.mean(values))
    return means


def best_objective(
    runs: Sequence[RunRecord], metric: str, objectives: Sequence[str], split: str = "test"
) -> str:
    """The objective with the highest mean `metric` over seeds (the first of exact ties, in table order)."""
    means = mean_by_objective(runs, metric, objectives, split)
    return max(means, key=lambda objective: means[objective])


def all_pairs(
    runs: Sequence[RunRecord], metric: str, objectives: Sequence[str], *, split: str = "test", **options
) -> pl.DataFrame:
    """Every pair of objectives, the one with the higher mean as `objective` and the other as `baseline`,
    Holm-adjusted over all pairs; rows ordered by the higher mean, then the lower."""
    means = mean_by_objective(runs, metric, objectives, split)
    ranked = sorted(objectives, key=lambda objective: -means[objective])
    frames = [
        paired_significance(runs, lower, metric, split=split, objectives=[higher], **options)
        for higher, lower in combinations(ranked, 2)
    ]
    table = pl.concat([frame for frame in frames if frame.height], how="vertical")
    rows = table.to_dicts()
    for row, adjusted in zip(rows, statistics.holm([row["p_value"] for row in rows]), strict=True):
        row["p_holm"] = adjusted
        row["verdict"] = verdict(row, several=len(rows) > 1)
    return pl.DataFrame(rows, schema=table.schema)


def _significant(row: dict) -> bool:
    """The row's verdict tells the two apart (enough seeds, seed-aware, Holm p below alpha)."""
    p = row["p_holm"] if row["p_holm"] is not None else row["p_value"]
    return (
        row["method"] != "samples"
        and row["n_seeds"] >= statistics.MIN_SEEDS_FOR_VERDICT
        and p is not None
        and p < statistics.ALPHA
    )


def _beats(row: dict, best: str) -> bool:
    """`best` is significantly ahead of the other objective of the row."""
    ahead = row["difference"] > 0 if row["objective"] == best else row["difference"] < 0
    return _significant(row) and ahead


def _other(row: dict, best: str) -> str:
    return row["baseline"] if row["objective"] == best else row["objective"]


def tied_for_first(significance: pl.DataFrame, best: str) -> list[str]:
    """`best` and every objective it does not beat: those statistically tied for first."""
    rows = [row for row in significance.to_dicts() if best in (row["objective"], row["baseline"])]
    return [best, *dict.fromkeys(_other(row, best) for row in rows if not _beats(row, best))]


def first_place(significance: pl.DataFrame, best: str, metric: str) -> str:
    """The line that says which objective is first on `metric`, or which are tied for first."""
    rows = [row for row in significance.to_dicts() if best in (row["objective"], row["baseline"])]
    if not rows:
        return f"First on {metric}: {best} (nothing to compare it with)."
    if any(row["method"] == "samples" for row in rows):
        return f"Best mean on {metric}: {best} (test-sample noise only: no verdict about retraining)."
    fewest = min(row["n_seeds"] for row in rows)
    if fewest < statistics.MIN_SEEDS_FOR_VERDICT:
        return (
            f"Best mean on {metric}: {best}; which objective is first cannot be told with {fewest} seed"
            f"{'s' if fewest != 1 else ''} (a verdict needs {statistics.MIN_SEEDS_FOR_VERDICT})."
        )
    tied = tied_for_first(significance, best)
    if len(tied) == 1:
        worst_p = max(row["p_holm"] if row["p_holm"] is not None else row["p_value"] for row in rows)
        p_text = statistics.format_p_value(worst_p)
        return f"First on {metric}: {best}, ahead of every other objective (largest Holm p = {p_text})."
    by_other = {_other(row, best): row for row in rows}
    notes = [
        f"{name} (not distinguishable from {best}, Holm p = "
        f"{statistics.format_p_value(by_other[name]['p_holm'])})"
        for name in tied[1:]
    ]
    return f"Statistically tied for first on {metric}: {best} (best mean), " + ", ".join(notes) + "."


def pairs_heading(table: pl.DataFrame, metric: str) -> str:
    """Heading of the all-pairs significance section, with the method line."""
    methods = table["method"].unique(maintain_order=True).to_list() if table.height else []
    return (
        f"Significance of every pair on {metric} (p-values Holm-adjusted over {table.height} pairs; "
        "each row: the higher mean vs the lower)\nMethod: " + "; ".join(METHODS[m] for m in methods) + "."
    )
