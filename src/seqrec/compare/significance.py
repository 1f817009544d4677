"""Each objective against a baseline: difference, 95% CI, p-value (Holm-adjusted), a quotable verdict.

`paired_significance(runs, baseline, metric, test="seeds")` pairs runs by seed and uses the test ranks of
every run where it can (the per-sample metric of each test sample, paired by user and target item); the
method and its assumptions are described in `seqrec.compare.statistics`. `test="samples"` is the
sample-only test under its explicit name: these trained models, test-sample noise only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import polars as pl

from seqrec.compare import statistics
from seqrec.compare.errors import RecordError
from seqrec.compare.protocols import check_one_group
from seqrec.compare.runs import RANKS_FILE, RunRecord
from seqrec.compare.table import check_one_run_per_seed, table_style
from seqrec.sample_metrics import PER_SAMPLE_METRICS

logger = logging.getLogger(__name__)

# method name -> what its interval and p-value describe (printed in headers)
METHODS = {
    "seeds+samples": "paired by seed; interval from a Student t over seeds combined with the test set's own "
    "sampling noise (users as clusters)",
    "seeds": "paired t over seeds on the recorded per-seed metrics (no per-sample ranks: this test set only)",
    "samples": "these trained models, test-sample noise only: paired bootstrap CI over test samples of the "
    "seed-averaged differences, sign-flip p-value; says nothing about retraining",
}
TESTS = ("seeds", "samples")


def per_sample_metric(metric: str) -> Callable[[np.ndarray], np.ndarray]:
    """ "dcg@10" -> function mapping [S] ranks to [S] per-sample values."""
    name, _, cutoff = metric.partition("@")
    if name not in PER_SAMPLE_METRICS or not cutoff.isdigit() or int(cutoff) < 1:
        raise ValueError(
            f"metric must be <name>@<k> with name in {sorted(PER_SAMPLE_METRICS)} and k >= 1, got {metric!r} "
            "(coverage is a property of the whole ranking, not of one sample)"
        )
    return lambda ranks: PER_SAMPLE_METRICS[name](ranks, int(cutoff))


def _is_per_sample(metric: str) -> bool:
    try:
        per_sample_metric(metric)
    except ValueError:
        return False
    return True


def _with_occurrence(ranks: pl.DataFrame) -> pl.DataFrame:
    """Number repeated (user, item) pairs 0, 1, ... in file order so that every key is unique."""
    return ranks.with_columns(occurrence=pl.int_range(pl.len()).over("user", "item"))


def _aligned_ranks(reference: pl.DataFrame, ranks: pl.DataFrame, location: str) -> np.ndarray:
    """Ranks [S] in the row order of `reference` (user, item), joined on (user, item, occurrence). Ids
    written as integers by one run and as strings by another are joined as text (the test-set fingerprint
    treats them alike)."""
    if ranks.select("user", "item").schema != reference.select("user", "item").schema:
        reference, ranks = (
            frame.with_columns(pl.col("user", "item").cast(pl.String)) for frame in (reference, ranks)
        )
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
        raise RecordError(
            f"test samples of {location} differ from the baseline's ({ranks.height} vs {reference.height} "
            "rows, or other (user, item) pairs): paired tests need runs on the same data and split."
        )
    return joined["rank"].to_numpy()


def _per_sample_values(
    runs: Sequence[RunRecord], reference: pl.DataFrame, metric: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """[n_seeds, S] per-sample metric of each run, in the sample order of `reference`."""
    return np.stack([metric(_aligned_ranks(reference, run.ranks(), run.location)) for run in runs])


def _recorded(run: RunRecord, split: str, metric: str) -> float:
    value = run.metrics.get(split, {}).get(metric)
    if value is None:
        raise RecordError(
            f"{run.location} has no {split} metric {metric!r}; it has {sorted(run.metrics[split])}"
        )
    return float(value)


_SCHEMA = {
    "objective": pl.String,
    "baseline": pl.String,
    "metric": pl.String,
    "method": pl.String,
    "n_seeds": pl.Int64,
    "n_samples": pl.Int64,
    "seeds": pl.List(pl.Int64),
    "per_seed_differences": pl.List(pl.Float64),
    "objective_mean": pl.Float64,
    "baseline_mean": pl.Float64,
    "difference": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "p_value": pl.Float64,
    "p_holm": pl.Float64,
    "p_floor": pl.Float64,
    "seed_sd": pl.Float64,
    "sample_se": pl.Float64,
    "seeds_needed": pl.Int64,
    "more_seeds_cannot_resolve": pl.Boolean,
    "verdict": pl.String,
    "note": pl.String,  # runs without test ranks that changed this row's method or seeds, named
}


def _compare_pair(
    objective_runs: list[RunRecord],
    baseline_runs: list[RunRecord],
    metric: str,
    split: str,
    test: str,
    confidence: float,
    n_bootstrap: int,
    seed: int,
) -> dict:
    """One objective vs the baseline on their shared seeds (runs given in the same seed order)."""
    use_ranks = _is_per_sample(metric) and all(run.has_ranks for run in objective_runs + baseline_runs)
    n_seeds = len(objective_runs)
    if use_ranks:
        reference = baseline_runs[0].ranks()
        values = per_sample_metric(metric)
        objective_values = _per_sample_values(objective_runs, reference, values)
        baseline_values = _per_sample_values(baseline_runs, reference, values)
        differences = objective_values - baseline_values  # [n_seeds, S]
        per_seed = differences.mean(axis=1)
        objective_mean, baseline_mean = objective_values.mean(), baseline_values.mean()
        n_samples, users = reference.height, reference["user"].rank("dense").to_numpy()  # ids may be strings
    else:
        objective_seeds = np.array([_recorded(run, split, metric) for run in objective_runs])
        baseline_seeds = np.array([_recorded(run, split, metric) for run in baseline_runs])
        per_seed = objective_seeds - baseline_seeds
        objective_mean, baseline_mean = objective_seeds.mean(), baseline_seeds.mean()
        n_samples = baseline_runs[0].test_samples
    row = {
        "n_seeds": n_seeds,
        "n_samples": n_samples,
        "seeds": [run.seed for run in baseline_runs],
        "per_seed_differences": per_seed.tolist(),
        "objective_mean": float(objective_mean),
        "baseline_mean": float(baseline_mean),
        "seed_sd": float(per_seed.std(ddof=1)) if n_seeds > 1 else None,
    }
    if test == "samples":
        sample_differences = differences.mean(axis=0)
        rng = np.random.default_rng(seed)  # same draws for every objective: rows do not depend on each other
        resampled = statistics.bootstrap_means(sample_differences, n_bootstrap, rng)
        alpha = 1 - confidence
        ci_low, ci_high = np.quantile(resampled, [alpha / 2, 1 - alpha / 2])
        return row | {
            "method": "samples",
            "difference": float(sample_differences.mean()),
            "ci_low": float(ci_low),
            "ci_high": float(ci_high),
            "p_value": statistics.sign_flip_p_value(sample_differences, n_bootstrap, rng),
            "p_floor": 1 / (n_bootstrap + 1),
        }
    if use_ranks:
        result = statistics.seed_sample_test(differences, groups=users, confidence=confidence)
        sample_df = float(np.unique(users).size - 1)
    else:
        result = statistics.seed_test(per_seed, confidence=confidence)
        sample_df = np.inf
    difference, seed_variance = float(result.difference), float(result.seed_variance)
    sample_variance = float(result.sample_variance)
    p_value = float(result.p_value)
    return row | {
        "method": "seeds+samples" if use_ranks else "seeds",
        "difference": difference,
        "ci_low": None if np.isnan(p_value) else float(result.ci_low),
        "ci_high": None if np.isnan(p_value) else float(result.ci_high),
        "p_value": None if np.isnan(p_value) else p_value,
        "p_floor": statistics.P_DISPLAY_FLOOR,
        "sample_se": float(np.sqrt(sample_variance)) if use_ranks else None,
        "seeds_needed": statistics.seeds_needed(difference, seed_variance, sample_variance, sample_df)
        if n_seeds > 1
        else None,
        "more_seeds_cannot_resolve": statistics.more_seeds_cannot_resolve(difference, sample_variance),
    }


def paired_significance(
    runs: Sequence[RunRecord],
    baseline: str,
    metric: str = "dcg@10",
    *,
    test: str = "seeds",
    split: str = "test",
    objectives: Sequence[str] | None = None,
    confidence: float = 0.95,
    n_bootstrap: int = 10_000,
    seed: int = 0,
) -> pl.DataFrame:
    """Each objective (those in `objectives`, in that order, or all) vs `baseline` on `metric`, paired by
    seed: one row per objective with the difference (objective - baseline), its CI, p-value, Holm-adjusted
    p-value over the rows, the per-seed differences and a one-line verdict (see `verdict`).

    test="seeds" (default): seed-aware; with test ranks for every run and a per-sample metric (dcg@k,
    hitrate@k) method "seeds+samples", else "seeds" on the recorded per-seed metrics. test="samples":
    these trained models only (needs ranks), `n_bootstrap` resamples seeded by `seed`.
    """
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    without_ranks = [run for run in runs if not run.has_ranks]
    any_ranks = len(without_ranks) < len(runs)
    if test == "samples":
        per_sample_metric(metric)  # a clear error for coverage and typos before any file is read
        runs = [run for run in runs if run.has_ranks]
    check_one_run_per_seed(runs)
    tested = [run for run in runs if objectives is None or run.objective in (*objectives, baseline)]
    check_one_group(tested, "one test")  # no difference is tested across data, protocols or test sets
    by_objective: dict[str, dict[int, RunRecord]] = {}
    for run in runs:
        by_objective.setdefault(run.objective, {})[run.seed] = run
    if baseline not in by_objective:
        needs = f" with {RANKS_FILE}" if test == "samples" else ""
        raise ValueError(
            f"baseline {baseline!r} has no completed run{needs}; objectives: {list(by_objective)}"
        )
    baseline_runs = by_objective[baseline]
    rows = []
    for objective in objectives if objectives is not None else list(by_objective):
        if objective == baseline:
            continue
        if objective not in by_objective:
            logger.warning(f"{objective} has no run with {RANKS_FILE}; left out of the sample-level test")
            continue
        shared = sorted(set(by_objective[objective]) & set(baseline_runs))
        if not shared:
            logger.warning(f"{objective} shares no seed with {baseline}; left out of the paired test")
            continue
        row = _compare_pair(
            [by_objective[objective][s] for s in shared],
            [baseline_runs[s] for s in shared],
            metric,
            split,
            test,
            confidence,
            n_bootstrap,
            seed,
        )
        note = _ranks_note(objective, baseline, shared, without_ranks, metric, test, row["method"], any_ranks)
        rows.append(row | {"objective": objective, "baseline": baseline, "metric": metric, "note": note})
    for row, adjusted in zip(rows, statistics.holm([row["p_value"] for row in rows]), strict=True):
        row["p_holm"] = adjusted
        row["verdict"] = verdict(row, several=len(rows) > 1)
    return pl.DataFrame(rows, schema=_SCHEMA)


def _ranks_note(
    objective: str,
    baseline: str,
    shared: list[int],
    without_ranks: Sequence[RunRecord],
    metric: str,
    test: str,
    method: str,
    any_ranks: bool,
) -> str | None:
    """Names the completed runs without test ranks where they change this row: with test="samples" they are
    left out (the table still counts them); with test="seeds" they turn the row into the seeds-only test
    while other runs have ranks (when none has, e.g. W&B, the method line says it for every row)."""
    missing = [run for run in without_ranks if run.objective in (objective, baseline)]
    if test == "samples":
        if not missing:
            return None
        names = ", ".join(f"{run.objective} seed {run.seed} ({run.location})" for run in missing)
        return (
            f"left out of this test for lack of {RANKS_FILE}: {names}; the results table still counts them, "
            f"so it has more seeds than the {len(shared)} tested here"
        )
    missing = [run for run in missing if run.seed in shared]
    if method != "seeds" or not missing or not _is_per_sample(metric) or not any_ranks:
        return None
    names = ", ".join(f"{run.objective} seed {run.seed} ({run.location})" for run in missing)
    return (
        f"seeds-only test (recorded per-seed metrics; the test set's own noise not included) because these "
        f"runs have no {RANKS_FILE}: {names}"
    )


def _interval(row: dict) -> str:
    if row["ci_low"] is None:
        return f"{row['difference']:+.4f}"
    return f"{row['difference']:+.4f} [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]"


def _seeds_needed_note(row: dict) -> str:
    if row["n_seeds"] < 2:
        return f"seed variance unknown from 1 seed: run at least {statistics.MIN_SEEDS_FOR_VERDICT}"
    if row["difference"] == 0:
        return "no difference observed"
    if row.get("more_seeds_cannot_resolve"):
        return "more seeds alone would not resolve it: the test set's own noise is larger"
    if row["seeds_needed"] is None:
        return f"more than {statistics.MAX_SEEDS_NEEDED:,} seeds would be needed to resolve it"
    return f"about {row['seeds_needed']} seeds would resolve a difference this size (80% power, alpha 0.05)"


def verdict(row: dict, several: bool) -> str:
    """The line to quote: 'softmax beats bce on dcg@10 by +0.0058 [+0.0031, +0.0085], 5 seeds x 9,853
    samples, Holm p = 0.004', or why there is no verdict and about how many seeds would give one."""
    name, baseline, metric, n = row["objective"], row["baseline"], row["metric"], row["n_seeds"]
    seeds = f"{n} seed{'s' if n != 1 else ''}"
    size = f"{seeds} x {row['n_samples']:,} samples" if row["n_samples"] else seeds
    p_label, p = ("Holm p", row["p_holm"]) if several else ("p", row["p_value"])
    p_text = f"{p_label} = {statistics.format_p_value(p, row['p_floor'])}".replace("= <", "<")
    if row["method"] == "samples":
        return (
            f"these trained models: {name} {metric} {_interval(row)} vs {baseline}, {size}, {p_text} "
            "(test-sample noise only; retraining may change it)"
        )
    if n < statistics.MIN_SEEDS_FOR_VERDICT:
        return (
            f"{name} vs {baseline} on {metric}: not distinguishable with {seeds} (too few to judge training "
            f"randomness; {_interval(row)}); {_seeds_needed_note(row)}"
        )
    if p is not None and p < statistics.ALPHA:
        direction = "beats" if row["difference"] > 0 else "is worse than"
        return f"{name} {direction} {baseline} on {metric} by {_interval(row)}, {size}, {p_text}"
    return (
        f"{name} vs {baseline} on {metric}: not distinguishable, {_interval(row)}, {size}, {p_text}; "
        + _seeds_needed_note(row)
    )


def _per_seed_text(differences: Iterable[float], limit: int | None, digits: int) -> str:
    values = list(differences)
    shown = values if limit is None else values[:limit]
    return " ".join(f"{value:+.{digits}f}" for value in shown) + (" …" if len(shown) < len(values) else "")


def significance_heading(table: pl.DataFrame, baseline: str, metric: str) -> str:
    """'Significance vs bce on dcg@10 (Holm-adjusted ...)' and, on a second line, the method."""
    methods = table["method"].unique(maintain_order=True).to_list() if table.height else []
    text = f"Significance vs {baseline} on {metric}"
    if table.height > 1:
        text += f" (p-values Holm-adjusted over {table.height} comparisons with {baseline})"
    return text + "\nMethod: " + "; ".join(METHODS[m] for m in methods) + "."


def format_significance(table: pl.DataFrame, style: str = "markdown", digits: int = 4) -> str:
    """The significance rows as a markdown or plain table (plain leaves the means to the results table and
    shows at most 4 per-seed differences), then the verdicts, one line each."""
    drawing = table_style(style)
    if table.is_empty():
        return "(no objective shares a seed with the baseline)"
    plain = style == "plain"
    metric, baseline = table["metric"][0], table["baseline"][0]
    holm_column = table.height > 1
    pairs = table["baseline"].n_unique() > 1  # every pair: each row names its own baseline
    header = ["objective"] + (["vs"] if pairs else [])
    header += [] if plain else [metric, "baseline's" if pairs else f"{baseline} (baseline)"]
    header += ["difference", "95% CI", "p"] + (["Holm p"] if holm_column else [])
    header += ["seeds", "per-seed differences"] + ([] if plain else ["samples"])
    rows = []
    for row in table.iter_rows(named=True):
        ci = "-" if row["ci_low"] is None else f"[{row['ci_low']:+.{digits}f}, {row['ci_high']:+.{digits}f}]"
        cells = [row["objective"]] + ([row["baseline"]] if pairs else [])
        cells += (
            [] if plain else [f"{row['objective_mean']:.{digits}f}", f"{row['baseline_mean']:.{digits}f}"]
        )
        cells += [
            f"{row['difference']:+.{digits}f}",
            ci,
            statistics.format_p_value(row["p_value"], row["p_floor"]),
        ]
        cells += [statistics.format_p_value(row["p_holm"], row["p_floor"])] if holm_column else []
        cells += [
            str(row["n_seeds"]),
            _per_seed_text(row["per_seed_differences"], 4 if plain else None, 3 if plain else digits),
        ]
        cells += [] if plain else [f"{row['n_samples']:,}" if row["n_samples"] else "-"]
        rows.append(cells)
    bullet = "- "
    verdicts = "\n".join(bullet + line for line in table["verdict"])
    notes = [
        f"{bullet}{row['objective']}: {row['note']}" for row in table.iter_rows(named=True) if row["note"]
    ]
    if notes:
        verdicts += "\n\nRuns without test ranks:\n" + "\n".join(notes)
    return drawing.render(header, rows) + "\n\n" + verdicts
