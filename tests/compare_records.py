"""Fabricated run folders (run.json, history.jsonl, test_ranks.parquet) for the seqrec.compare tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from seqrec.compare import PROTOCOL_METRICS as METRICS


def metric_values(base: float) -> dict[str, float]:
    """Distinct, known test metrics: base + 0.001 * column index."""
    return {metric: base + 0.001 * index for index, metric in enumerate(METRICS)}


def write_run(
    run_dir: Path,
    objective: str,
    seed: int,
    *,
    test: dict[str, float] | None = None,
    status: str = "completed",
    error: str | None = None,
    ranks: pl.DataFrame | None = None,
    history: list[dict] | None = None,
    overrides: list[str] | None = None,
    config: dict | None = None,
    best_step: int | None = None,
    oracle: dict[str, float] | None = None,
    fingerprints: dict | None = None,
) -> Path:
    run_dir.mkdir(parents=True)
    if test is None:  # what the run would have recorded: its ranks' metrics (compare checks they agree)
        test = metrics_of_ranks(ranks["rank"].to_numpy()) if ranks is not None else metric_values(0.1)
    metrics = {"best_valid": {"dcg@20": 0.5}, "test": test}
    if oracle is not None:
        metrics["oracle_test"] = oracle
    record = {
        "status": status,
        "error": error,
        "seed": seed,
        "choices": {"loss": objective, "split": "time", "dataset": "ml-100k"},
        "overrides": [f"loss={objective}", f"seed={seed}", *(overrides or [])],
        "config": config or {},
        "run_name": f"{objective}-time-ml-100k-s{seed}",
        "metrics": metrics,
        "best_step": best_step,
        "dataset_stats": {"test_samples": ranks.height} if ranks is not None else {},
    }
    if fingerprints is not None:
        record["fingerprints"] = fingerprints
    (run_dir / "run.json").write_text(json.dumps(record))
    entries = history if history is not None else []
    (run_dir / "history.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    if ranks is not None:
        ranks.write_parquet(run_dir / "test_ranks.parquet")
    return run_dir


def ranks_frame(users: np.ndarray, items: np.ndarray, ranks: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame(
        {"user": users, "item": items, "rank": ranks},
        schema={"user": pl.Int64, "item": pl.Int64, "rank": pl.Int64},
    )


N_SAMPLES = 300


def sample_keys(n_samples: int = N_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """Users 0..n/2-1 with two test targets each; user 7 rated item 5 twice (a repeated pair)."""
    users = np.repeat(np.arange(n_samples // 2), 2)
    items = np.tile([5, 9], n_samples // 2) + users
    items[15] = items[14]
    return users, items


def metrics_of_ranks(ranks: np.ndarray) -> dict[str, float]:
    """The test metrics run.json records for these [S] ranks (coverage fixed at 0.5: it needs the lists)."""
    metrics = {}
    for k in (5, 10, 20):
        metrics[f"dcg@{k}"] = float(np.where(ranks <= k, 1 / np.log2(ranks + 1.0), 0.0).mean())
        metrics[f"hitrate@{k}"] = float((ranks <= k).mean())
        metrics[f"coverage@{k}"] = 0.5
    return metrics


def write_ranked_sweep(root: Path, rank_sets: dict[str, list[np.ndarray]]) -> None:
    """One run per objective and seed (the list index), with the given [S] ranks and their metrics."""
    users, items = sample_keys(rank_sets[next(iter(rank_sets))][0].size)
    for objective, per_seed in rank_sets.items():
        for seed, ranks in enumerate(per_seed):
            frame = ranks_frame(users, items, ranks)
            write_run(
                root / f"{objective}-{seed}", objective, seed, ranks=frame, test=metrics_of_ranks(ranks)
            )


def write_sweep_with_seed_differences(root: Path, differences: list[float], n_samples: int = 1000) -> None:
    """bce and softmax with len(differences) seeds; softmax's DCG@10 minus bce's is differences[s] at seed s
    exactly. Ranks are 1 (a hit: DCG@10 = 1) or 50 (DCG@10 = 0); bce hits 300 + 15 s random samples and
    softmax the same ones plus (or minus) differences[s] * n_samples others: like two retrainings that
    agree on most samples, so the test-sample noise is small next to the seed-to-seed spread."""
    rng = np.random.default_rng(7)
    rank_sets: dict[str, list[np.ndarray]] = {"bce": [], "softmax": []}
    for seed, difference in enumerate(differences):
        baseline = np.full(n_samples, 50)
        hits = rng.choice(n_samples, size=300 + 15 * seed, replace=False)
        baseline[hits] = 1
        objective = baseline.copy()
        change = round(difference * n_samples)
        if change > 0:
            objective[rng.choice(np.flatnonzero(baseline == 50), size=change, replace=False)] = 1
        else:
            objective[rng.choice(hits, size=-change, replace=False)] = 50
        rank_sets["bce"].append(baseline)
        rank_sets["softmax"].append(objective)
    write_ranked_sweep(root, rank_sets)
