"""Segments: the per-sample keys a run records (from the training split only, against brute force), the
recorded definitions, and `compare --segments` on fabricated runs (counts, differences, intervals)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from compare_records import write_ranked_sweep
from seqrec import compare
from seqrec.compare import statistics
from seqrec.compare.segments import define_segments, segment_table
from seqrec.data.splits import LeaveOneOutSplit, TimeSplit
from seqrec.data.types import InteractionLog
from seqrec.segment_keys import history_edges, popularity_thresholds, sample_keys, segment_definitions


def _random_log(seed: int = 0) -> InteractionLog:
    """30 users, 12 items; user 30 has only late events (a cold user), item 11 occurs only late (cold)."""
    rng = np.random.default_rng(seed)
    rows = [(u, int(rng.integers(0, 11)), int(rng.integers(0, 1000))) for u in range(30) for _ in range(8)]
    rows += [(30, 3, 990), (30, 4, 995), (30, 5, 999), (2, 11, 998), (5, 11, 997)]
    rows.sort(key=lambda row: (row[0], row[2]))
    events = pl.DataFrame(
        rows, schema={"user": pl.Int64, "item": pl.Int64, "timestamp": pl.Int64}, orient="row"
    )
    return InteractionLog(events, np.arange(12, dtype=np.int64), kcore_passes=1)


def test_time_split_keys_and_cold_counts_match_brute_force_over_the_training_split():
    log = _random_log()
    split = TimeSplit(valid_quantile=0.6, test_quantile=0.8, min_train_events=3).apply(log)
    t_valid = split.stats["t_valid"]
    rows = list(log.events.iter_rows())
    training = [(u, i) for u, i, t in rows if t < t_valid]
    item_counts = np.bincount([i for _, i in training], minlength=12)
    assert split.item_train_events.tolist() == item_counts.tolist()

    keys = sample_keys(split.test, split.item_train_events)
    users, targets = split.test.user.numpy(), split.test.target.numpy()
    expected_history = [sum(1 for u, _ in training if u == user) for user in users]
    assert keys["train_history"].tolist() == expected_history
    assert keys["target_train_events"].tolist() == item_counts[targets].tolist()

    cold_users = {user for user in users if not any(u == user for u, _ in training)}
    cold_items = {item for item in targets if item_counts[item] == 0}
    assert 30 in cold_users and 11 in cold_items  # the late user and the late item
    assert split.stats["test_cold_users"] == len(cold_users)
    assert split.stats["test_cold_items"] == len(cold_items)
    assert {"valid_cold_users", "valid_cold_items"} <= set(split.stats)


def test_leave_one_out_training_split_is_all_but_the_last_two_events():
    log = _random_log(1)
    split = LeaveOneOutSplit(min_events=4).apply(log)
    keys = sample_keys(split.test, split.item_train_events)
    sizes = log.events.group_by("user", maintain_order=True).len()["len"].to_numpy()
    assert keys["train_history"].tolist() == (sizes[sizes >= 4] - 2).tolist()
    assert split.stats["test_cold_users"] == 0


def test_definitions_by_hand():
    counts = np.array([0, 10, 5, 3, 1, 1])  # warm shares 0.5, 0.75, 0.9, 0.95, 1.0
    assert popularity_thresholds(counts) == (10, 5)
    assert history_edges(np.array([0, 1, 2, 3, 4, 5, 6, 7, 8])) == [3, 5, 7]  # quartiles of 1..8, rounded up
    definitions = segment_definitions(np.array([0, 1, 2, 3, 4, 5, 6, 7, 8]), counts)
    assert definitions["items"] == {"head": 1, "torso": 1, "tail": 3, "cold": 1}
    assert definitions["users_with_training_events"] == 8 and definitions["source"] == "training split"


def _segmented_sweep(root: Path, n: int = 400) -> tuple[np.ndarray, np.ndarray, dict[str, list[np.ndarray]]]:
    """bce and softmax, 3 seeds; softmax's extra hits are all on tail targets."""
    rng = np.random.default_rng(5)
    history = rng.integers(0, 60, size=n)
    popularity = rng.choice([0, 2, 40, 300], size=n)
    sets = {"bce": [], "softmax": []}
    for _ in range(3):
        bce = np.where(rng.random(n) < 0.3, 1, 50)
        softmax = bce.copy()
        tail_misses = np.flatnonzero((popularity == 2) & (bce == 50))
        softmax[rng.choice(tail_misses, size=20, replace=False)] = 1
        sets["bce"].append(bce)
        sets["softmax"].append(softmax)
    write_ranked_sweep(root, sets)
    definitions = {"history_edges": [10, 30], "head_min_train_events": 100, "torso_min_train_events": 10}
    for run_json in root.rglob("run.json"):
        record = json.loads(run_json.read_text())
        run_json.write_text(json.dumps(record | {"segments": definitions}))
        ranks_path = run_json.parent / "test_ranks.parquet"
        ranks = pl.read_parquet(ranks_path)
        ranks.with_columns(
            train_history=pl.Series(history), target_train_events=pl.Series(popularity)
        ).write_parquet(ranks_path)
    return history, popularity, sets


def test_segment_table_differences_and_intervals_are_the_paired_test_on_each_segment(tmp_path: Path):
    history, popularity, sets = _segmented_sweep(tmp_path)
    runs = compare.scan_run_dirs(tmp_path).runs
    table = segment_table(runs, "bce", "dcg@10", ["bce", "softmax"])
    segments = table["segment"].unique(maintain_order=True).to_list()
    assert segments == [
        "cold user (0)",
        "1-9",
        "10-29",
        "30+",
        "cold item (0)",
        "tail (1-9)",
        "torso (10-99)",
        "head (100+)",
    ]
    masks = {
        "cold user (0)": history == 0,
        "10-29": (history >= 10) & (history < 30),
        "tail (1-9)": (popularity > 0) & (popularity < 10),
        "head (100+)": popularity >= 100,
    }
    dcg = compare.per_sample_metric("dcg@10")
    differences = np.stack([dcg(s) - dcg(b) for s, b in zip(sets["softmax"], sets["bce"], strict=True)])
    users = np.repeat(np.arange(len(history) // 2), 2)  # compare_records.sample_keys: two samples per user
    for label, mask in masks.items():
        row = table.filter((pl.col("segment") == label) & (pl.col("objective") == "softmax")).row(
            0, named=True
        )
        expected = statistics.seed_sample_test(differences[:, mask], groups=users[mask])
        assert row["n_samples"] == mask.sum() and row["n_users"] == np.unique(users[mask]).size
        assert row["difference"] == pytest.approx(differences[:, mask].mean())
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(
            (float(expected.ci_low), float(expected.ci_high))
        )
        assert row["mean"] == pytest.approx(np.mean([dcg(s)[mask].mean() for s in sets["softmax"]]))
    tail = table.filter((pl.col("segment") == "tail (1-9)") & (pl.col("objective") == "softmax"))
    head = table.filter((pl.col("segment") == "head (100+)") & (pl.col("objective") == "softmax"))
    assert tail["ci_low"][0] > 0 and head["difference"][0] == 0  # the lead comes from the tail only
    edges = segment_table(runs, "bce", "dcg@10", ["bce", "softmax"], history_edges=[20])
    assert edges.filter(pl.col("family").str.starts_with("user"))["segment"].unique(
        maintain_order=True
    ).to_list() == [
        "cold user (0)",
        "1-19",
        "20+",
    ]


def test_command_line_segments_and_old_rank_files(tmp_path: Path, capsys):
    _segmented_sweep(tmp_path / "new")
    assert compare.main([str(tmp_path / "new"), "--segments", "--baseline", "bce"]) == 0
    printed = capsys.readouterr().out
    assert "Segments on dcg@10: where the differences come from" in printed
    assert "target popularity" in printed and "softmax − bce" in printed
    assert compare.main([str(tmp_path / "new"), "--segments", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["segments"]) == 2 * 8

    write_ranked_sweep(tmp_path / "old", {"bce": [np.full(300, 3)] * 3, "softmax": [np.full(300, 2)] * 3})
    assert compare.main([str(tmp_path / "old"), "--segments"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("Segments:") == 1 and "segments need a re-run with this seqrec" in printed


def test_define_segments_drops_empty_segments():
    keys = pl.DataFrame({"train_history": [5, 5], "target_train_events": [50, 50]})
    definitions = {"history_edges": [10], "head_min_train_events": 40, "torso_min_train_events": 10}
    assert [label for _, label, _ in define_segments(keys, definitions)] == ["1-9", "head (40+)"]
