"""Splits against literal pure-Python references of the protocol, their guarantees, and MovieLens-100K."""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from seqrec.data.batches import gather_windows
from seqrec.data.splits import LeaveOneOutSplit, TimeSplit, dataset_statistics
from seqrec.data.types import DataError, InteractionLog, SplitData

# The shared GroupLens file lies beside the checkout (../shared); SEQREC_ML100K points elsewhere.
ML100K = Path(
    os.environ.get("SEQREC_ML100K", Path(__file__).resolve().parents[2] / "shared/data/ml-100k/u.data")
)


# ---------------------------------------------------------------- helpers and references


def make_log(rows: list[tuple[int, int, int]], num_items: int, stats: dict | None = None) -> InteractionLog:
    """rows: (user, dense item, timestamp) in file order; sorted stably by (user, timestamp) here."""
    rows = sorted(rows, key=lambda row: (row[0], row[2]))
    events = pl.DataFrame(
        rows, schema={"user": pl.Int64, "item": pl.Int64, "timestamp": pl.Int64}, orient="row"
    )
    return InteractionLog(events, np.arange(num_items, dtype=np.int64), kcore_passes=1, stats=stats or {})


def log_rows(log: InteractionLog) -> list[tuple[int, int, int]]:
    return list(log.events.select("user", "item", "timestamp").iter_rows())


def reference_time_split(rows, valid_quantile, test_quantile, min_train_events, min_history) -> dict:
    """The protocol literally. rows: (user, item, ts) sorted by (user, ts). Windows are lists of row numbers;
    a sample is (user, history rows, target row)."""
    timestamps = sorted(ts for _, _, ts in rows)
    n = len(timestamps)
    t_valid = timestamps[int(n * valid_quantile)]
    t_test = timestamps[int(n * test_quantile)]
    events_by_user: dict[int, list[tuple[int, int]]] = {}
    for row, (user, _, ts) in enumerate(rows):
        events_by_user.setdefault(user, []).append((row, ts))
    train, valid, test = [], [], []
    for user, events in events_by_user.items():
        history, train_sequence = [], []
        for row, ts in events:
            if ts < t_valid:
                train_sequence.append(row)
            elif ts < t_test:
                if len(history) >= min_history:
                    valid.append((user, list(history), row))
            elif len(history) >= min_history:
                test.append((user, list(history), row))
            history.append(row)
        if len(train_sequence) >= min_train_events and len(train_sequence) >= 2:
            train.append(train_sequence)
    return {"t_valid": t_valid, "t_test": t_test, "train": train, "valid": valid, "test": test}


def reference_leave_one_out(rows, min_events) -> dict:
    events_by_user: dict[int, list[int]] = {}
    for row, (user, _, _) in enumerate(rows):
        events_by_user.setdefault(user, []).append(row)
    train, valid, test = [], [], []
    for user, user_rows in events_by_user.items():
        train_sequence = user_rows
        if len(user_rows) >= min_events:
            train_sequence = user_rows[:-2]
            valid.append((user, user_rows[:-2], user_rows[-2]))
            test.append((user, user_rows[:-1], user_rows[-1]))
        if len(train_sequence) >= 2:
            train.append(train_sequence)
    return {"train": train, "valid": valid, "test": test}


def split_windows(split: SplitData) -> dict:
    """The split in the reference's terms: windows as lists of row numbers of log.events."""

    def samples(evals):
        return [
            (user, list(range(start, end)), end)
            for user, start, end in zip(
                evals.user.tolist(), evals.history_start.tolist(), evals.history_end.tolist(), strict=True
            )
        ]

    starts_ends = zip(split.train_start.tolist(), split.train_end.tolist(), strict=True)
    return {
        "train": [list(range(start, end)) for start, end in starts_ends],
        "valid": samples(split.valid),
        "test": samples(split.test),
    }


def random_rows(rng: random.Random) -> tuple[list[tuple[int, int, int]], int]:
    """A small random log in file order: timestamps from a tiny range (many ties), and some users whose
    events are all late (so all after t_valid)."""
    num_items = rng.randint(1, 6)
    rows = []
    for user in sorted(rng.sample(range(1, 1000), rng.randint(1, 7))):
        late_user = rng.random() < 0.3
        for _ in range(rng.randint(1, 12)):
            ts = rng.randint(16, 20) if late_user else rng.randint(0, 20)
            rows.append((user, rng.randrange(num_items), ts))
    rng.shuffle(rows)
    return rows, num_items


def random_time_split_settings(rng: random.Random) -> dict:
    valid_quantile = rng.choice([0.3, 0.5, 0.6, 0.7, 0.8])
    return {
        "valid_quantile": valid_quantile,
        "test_quantile": rng.choice([q for q in (0.55, 0.75, 0.8, 0.9, 0.95) if q > valid_quantile]),
        "min_train_events": rng.randint(1, 4),
        "min_history": rng.randint(1, 3),
    }


def random_splits(num_logs: int = 150):
    """(log, split, t_valid or None) for random logs and settings where both splits succeed."""
    rng = random.Random(7)
    for _ in range(num_logs):
        rows, num_items = random_rows(rng)
        log = make_log(rows, num_items)
        for split in (TimeSplit(**random_time_split_settings(rng)), LeaveOneOutSplit(rng.randint(3, 5))):
            try:
                data = split.apply(log)
            except DataError:
                continue
            yield log, data, data.stats.get("t_valid")


# ---------------------------------------------------------------- time split


def test_time_split_hand_example():
    # ts sorted: [1 2 3 4 5 6 7 8 9 10], n=10: t_valid = ts[8] = 9, t_test = ts[9] = 10.
    rows = [(7, 0, 1), (7, 1, 2), (7, 2, 3), (7, 3, 9), (7, 4, 10)]  # user 7: train 0 1 2, valid 3, test 4
    rows += [(3, 4, 4), (3, 3, 5), (3, 2, 6), (3, 1, 7), (3, 0, 8)]  # user 3: all training
    split = TimeSplit(valid_quantile=0.8, test_quantile=0.9, min_train_events=3).apply(make_log(rows, 5))
    # item_seq is grouped by user in time order: user 3 then user 7.
    assert split.item_seq.tolist() == [4, 3, 2, 1, 0, 0, 1, 2, 3, 4]
    assert split.train_start.tolist() == [0, 5] and split.train_end.tolist() == [5, 8]
    assert split.valid.user.tolist() == [7] and split.valid.target.tolist() == [3]
    assert split.valid.history_start.tolist() == [5] and split.valid.history_end.tolist() == [8]
    assert split.test.user.tolist() == [7] and split.test.target.tolist() == [4]
    assert split.test.history_start.tolist() == [5] and split.test.history_end.tolist() == [9]
    assert split.stats == {
        "train_sequences": 2,
        "train_events": 4 + 2,
        "valid_samples": 1,
        "test_samples": 1,
        "valid_cold_users": 0,  # user 7 has training events; user 3 trains on every item
        "valid_cold_items": 0,
        "test_cold_users": 0,
        "test_cold_items": 0,
        "t_valid": 9,
        "t_test": 10,
    }
    assert split.item_train_events.tolist() == [2, 2, 2, 1, 1]
    assert split.num_items == 5 and split.item_ids.tolist() == [0, 1, 2, 3, 4]


def test_time_split_matches_reference_on_random_logs():
    rng = random.Random(0)
    compared, quantile_inside_tie, late_users = 0, 0, 0
    for _ in range(300):
        rows, num_items = random_rows(rng)
        settings = random_time_split_settings(rng)
        log = make_log(rows, num_items)
        expected = reference_time_split(log_rows(log), **settings)
        if not (expected["train"] and expected["valid"] and expected["test"]):
            with pytest.raises(DataError, match="split"):
                TimeSplit(**settings).apply(log)
            continue
        split = TimeSplit(**settings).apply(log)
        assert split_windows(split) == {key: expected[key] for key in ("train", "valid", "test")}
        assert (split.stats["t_valid"], split.stats["t_test"]) == (expected["t_valid"], expected["t_test"])
        assert split.item_seq.tolist() == [item for _, item, _ in log_rows(log)]
        assert split.stats["train_events"] == sum(len(sequence) - 1 for sequence in expected["train"])
        assert split.stats["valid_samples"] == len(expected["valid"])
        assert split.stats["test_samples"] == len(expected["test"])
        compared += 1
        timestamps = sorted(ts for _, _, ts in rows)
        cut = int(len(rows) * settings["valid_quantile"])
        quantile_inside_tie += timestamps[cut - 1] == timestamps[cut]
        first_ts = log.events.group_by("user").agg(pl.col("timestamp").min())["timestamp"]
        late_users += int((first_ts >= expected["t_valid"]).sum())
    # The random logs must exercise the tricky cases, not just exist.
    assert compared >= 50 and quantile_inside_tie >= 10 and late_users >= 10


def test_time_split_keeps_samples_of_users_without_training_sequence():
    # User 1 has a single training event (dropped: < min_train_events) but still gets evaluated.
    rows = [(1, 0, 0), (1, 1, 8), (1, 2, 9)] + [(2, item, ts) for item, ts in enumerate(range(1, 8))]
    split = TimeSplit(valid_quantile=0.8, test_quantile=0.9, min_train_events=5).apply(make_log(rows, 7))
    assert split.train_start.tolist() == [3]  # only user 2's sequence
    assert split.valid.user.tolist() == [1] and split.valid.history_end.tolist() == [1]
    assert split.test.user.tolist() == [1] and split.test.history_end.tolist() == [2]


# ---------------------------------------------------------------- leave-one-out


def test_leave_one_out_hand_example():
    rows = [(5, 0, 1), (5, 1, 2), (5, 2, 3), (5, 3, 4), (5, 4, 5)]  # 5 events: train 0 1 2, valid 3, test 4
    rows += [(9, 2, 1), (9, 1, 2), (9, 0, 3)]  # 3 < min_events: all training
    rows += [(11, 4, 1)]  # 1 event: nothing
    split = LeaveOneOutSplit(min_events=4).apply(make_log(rows, 5))
    assert split.train_start.tolist() == [0, 5] and split.train_end.tolist() == [3, 8]
    assert split.valid.user.tolist() == [5] and split.valid.target.tolist() == [3]
    assert split.valid.history_start.tolist() == [0] and split.valid.history_end.tolist() == [3]
    assert split.test.user.tolist() == [5] and split.test.target.tolist() == [4]
    assert split.test.history_start.tolist() == [0] and split.test.history_end.tolist() == [4]
    # item 3 occurs only as user 5's validation target: a cold item; item 4 is in user 11's training events
    assert split.stats == {
        "train_sequences": 2,
        "train_events": 2 + 2,
        "valid_samples": 1,
        "test_samples": 1,
        "valid_cold_users": 0,
        "valid_cold_items": 1,
        "test_cold_users": 0,
        "test_cold_items": 0,
    }
    assert split.item_train_events.tolist() == [2, 2, 2, 0, 1] and split.user_train_events.tolist() == [
        3,
        3,
        1,
    ]


def test_leave_one_out_matches_reference_on_random_logs():
    rng = random.Random(1)
    compared = 0
    for _ in range(300):
        rows, num_items = random_rows(rng)
        min_events = rng.randint(3, 6)
        log = make_log(rows, num_items)
        expected = reference_leave_one_out(log_rows(log), min_events)
        if not (expected["train"] and expected["test"]):
            with pytest.raises(DataError, match="leave-one-out"):
                LeaveOneOutSplit(min_events).apply(log)
            continue
        split = LeaveOneOutSplit(min_events).apply(log)
        assert split_windows(split) == expected
        assert split.stats["train_events"] == sum(len(sequence) - 1 for sequence in expected["train"])
        compared += 1
    assert compared >= 100


# ---------------------------------------------------------------- guarantees (both splits)


def test_train_end_marks_each_users_training_events():
    """history_start..train_end are the user's events the split assigns to training: those before t_valid
    (time split) or all but the last two (leave-one-out), kept as a training sequence or not."""
    checked = 0
    for log, split, t_valid in random_splits():
        rows = log_rows(log)
        for evals in (split.valid, split.test):
            for start, end, train_end in zip(
                evals.history_start.tolist(),
                evals.history_end.tolist(),
                evals.train_end.tolist(),
                strict=True,
            ):
                user = rows[end][0]
                user_rows = [row for row, (u, _, _) in enumerate(rows) if u == user]
                if t_valid is None:
                    expected = user_rows[:-2]
                else:
                    expected = [row for row in user_rows if rows[row][2] < t_valid]
                assert start == user_rows[0] and list(range(start, train_end)) == expected
                checked += 1
    assert checked > 500


def test_no_evaluation_target_in_its_own_input_or_in_training():
    checked = 0
    for _, split, _ in random_splits():
        train_rows = {
            row
            for s, e in zip(split.train_start.tolist(), split.train_end.tolist(), strict=True)
            for row in range(s, e)
        }
        for evals in (split.valid, split.test):
            assert torch.equal(evals.target, split.item_seq[evals.history_end])
            for start, end in zip(evals.history_start.tolist(), evals.history_end.tolist(), strict=True):
                assert end not in range(start, end)  # the target event is not part of its input
                assert end not in train_rows  # nor a training event
                checked += 1
    assert checked > 100


def test_training_windows_end_before_t_valid():
    checked = 0
    for log, split, t_valid in random_splits():
        if t_valid is None:
            continue
        timestamps = log.events["timestamp"].to_numpy()
        for start, end in zip(split.train_start.tolist(), split.train_end.tolist(), strict=True):
            assert end - start >= 2
            assert (timestamps[start:end] < t_valid).all()
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("max_len", [1, 2, 3, 50])
def test_evaluation_input_is_exactly_the_users_earlier_events(max_len):
    checked = 0
    for log, split, _ in random_splits(60):
        rows = log_rows(log)
        for evals in (split.valid, split.test):
            inputs, lengths = gather_windows(split.item_seq, evals.history_start, evals.history_end, max_len)
            for s in range(len(evals)):
                target_row = int(evals.history_end[s])
                user = rows[target_row][0]
                assert int(evals.user[s]) == user and int(evals.target[s]) == rows[target_row][1]
                earlier_rows = [row for row in range(len(rows)) if rows[row][0] == user and row < target_row]
                assert list(range(int(evals.history_start[s]), target_row)) == earlier_rows
                expected = [rows[row][1] for row in earlier_rows][-max_len:]
                assert int(lengths[s]) == len(expected)
                assert inputs[s].tolist() == expected + [0] * (max_len - len(expected))
                checked += 1
    assert checked > 50


# ---------------------------------------------------------------- bad settings and empty results


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"valid_quantile": 0.9, "test_quantile": 0.9}, "split.valid_quantile"),
        ({"valid_quantile": 0.95, "test_quantile": 0.9}, "split.valid_quantile"),
        ({"valid_quantile": 0.0}, "split.valid_quantile"),
        ({"valid_quantile": -0.1}, "split.valid_quantile"),
        ({"test_quantile": 1.0}, "split.test_quantile"),
        ({"test_quantile": 1.5}, "split.test_quantile"),
        ({"min_train_events": 0}, "split.min_train_events"),
        ({"min_history": 0}, "split.min_history"),
    ],
)
def test_time_split_rejects_bad_settings(settings, key):
    with pytest.raises(ValueError, match=key):
        TimeSplit(**settings)


@pytest.mark.parametrize("min_events", [2, 1, 0])
def test_leave_one_out_rejects_bad_settings(min_events):
    with pytest.raises(ValueError, match="split.min_events"):
        LeaveOneOutSplit(min_events)


def test_time_split_without_training_sequences_errors():
    rows = [(user, 0, ts) for user in range(1, 6) for ts in range(0, 10, 2)]
    with pytest.raises(DataError, match="min_train_events"):
        TimeSplit(min_train_events=100).apply(make_log(rows, 1))


def test_time_split_without_validation_samples_errors():
    # ts = 1 2 3 4 5 5 5 5 5 5: t_valid = ts[5] = 5 = t_test = ts[9], so no event is in [t_valid, t_test).
    rows = [(1, 0, ts) for ts in (1, 2, 3, 4, 5, 5, 5, 5, 5, 5)]
    with pytest.raises(DataError, match="no validation samples.*split.valid_quantile"):
        TimeSplit(valid_quantile=0.5, test_quantile=0.9, min_train_events=2).apply(make_log(rows, 1))


def test_time_split_without_test_samples_errors():
    # The only event at or after t_test = 9 is user 2's first event: it has no history.
    rows = [(1, 0, ts) for ts in range(8)] + [(1, 0, 8), (2, 0, 9)]
    with pytest.raises(DataError, match="no test samples.*split.test_quantile"):
        TimeSplit(valid_quantile=0.8, test_quantile=0.9, min_train_events=2).apply(make_log(rows, 1))


def test_leave_one_out_without_evaluated_users_errors():
    rows = [(user, 0, ts) for user in range(3) for ts in range(3)]
    with pytest.raises(DataError, match="split.min_events"):
        LeaveOneOutSplit(min_events=4).apply(make_log(rows, 1))


@pytest.mark.parametrize("split", [TimeSplit(), LeaveOneOutSplit()])
def test_bad_logs_error(split):
    empty = make_log([], 1)
    unsorted = InteractionLog(
        pl.DataFrame({"user": [1, 1, 1, 1], "item": [0, 0, 0, 0], "timestamp": [3, 1, 2, 4]}), np.arange(1), 1
    )
    out_of_range = make_log([(1, 0, 1), (1, 3, 2)], num_items=2)
    with pytest.raises(DataError, match="no events"):
        split.apply(empty)
    with pytest.raises(DataError, match="sorted by"):
        split.apply(unsorted)
    with pytest.raises(DataError, match="dense ids"):
        split.apply(out_of_range)


# ---------------------------------------------------------------- statistics


def test_dataset_statistics_is_plain_json():
    rows = [(1, item, ts) for item, ts in enumerate(range(10))] + [(2, 0, 8), (2, 1, 9)]
    stats = {"users": np.int64(2), "items": 10, "kcore_passes": np.int32(1), "thresholds": {"user_core": 5}}
    log = make_log(rows, 10, stats)
    split = TimeSplit(min_train_events=2).apply(log)
    merged = dataset_statistics(log, split)
    assert merged == {**json.loads(json.dumps(merged))}
    assert merged["users"] == 2 and type(merged["users"]) is int and type(merged["kcore_passes"]) is int
    assert merged["thresholds"] == {"user_core": 5}
    assert {key: merged[key] for key in split.stats} == split.stats
    clash = make_log(rows, 10, {"test_samples": 3})
    with pytest.raises(ValueError, match="test_samples"):
        dataset_statistics(clash, split)


# ---------------------------------------------------------------- MovieLens-100K


def reference_ml100k_log() -> tuple[InteractionLog, dict]:
    """The protocol's 5-core and re-indexing, in plain Python (independent of seqrec.data.preprocess)."""
    rows = []
    for line in ML100K.read_text().splitlines():
        user, item, _, ts = map(int, line.split("\t"))
        rows.append((user, item, ts))
    passes = 0
    while True:
        passes += 1
        user_count = Counter(user for user, _, _ in rows)
        item_count = Counter(item for _, item, _ in rows)
        kept = [row for row in rows if user_count[row[0]] >= 5 and item_count[row[1]] >= 5]
        if len(kept) == len(rows):
            break
        rows = kept
    item_ids = sorted({item for _, item, _ in rows})
    dense = {item: rank for rank, item in enumerate(item_ids)}
    rows = sorted(((user, dense[item], ts) for user, item, ts in rows), key=lambda row: (row[0], row[2]))
    stats = {"users": len({user for user, _, _ in rows}), "items": len(item_ids), "interactions": len(rows)}
    events = pl.DataFrame(
        rows, schema={"user": pl.Int64, "item": pl.Int64, "timestamp": pl.Int64}, orient="row"
    )
    return InteractionLog(events, np.array(item_ids, dtype=np.int64), passes, stats), stats


def reference_counts(rows, split_rows) -> dict:
    """Counts of a reference split, plus the total input length of the samples."""
    return {
        "train_sequences": len(split_rows["train"]),
        "train_events": sum(len(sequence) - 1 for sequence in split_rows["train"]),
        "valid_samples": len(split_rows["valid"]),
        "test_samples": len(split_rows["test"]),
        "valid_input_events": sum(len(history) for _, history, _ in split_rows["valid"]),
        "test_input_events": sum(len(history) for _, history, _ in split_rows["test"]),
    }


def split_counts(split: SplitData) -> dict:
    return {
        **{
            key: split.stats[key]
            for key in ("train_sequences", "train_events", "valid_samples", "test_samples")
        },
        "valid_input_events": int((split.valid.history_end - split.valid.history_start).sum()),
        "test_input_events": int((split.test.history_end - split.test.history_start).sum()),
    }


needs_ml100k = pytest.mark.skipif(not ML100K.exists(), reason=f"{ML100K} not available (set SEQREC_ML100K)")


@pytest.fixture(scope="module")
def ml100k():
    return reference_ml100k_log()


@needs_ml100k
def test_ml100k_kcore_has_the_published_size(ml100k):
    # ML-100K after 5-core: every user already has >= 20 ratings; only rare items go (1682 -> 1349).
    log, stats = ml100k
    assert stats == {"users": 943, "items": 1349, "interactions": 99287}
    assert log.kcore_passes == 2  # one pass removes items, the next removes nothing


@needs_ml100k
def test_ml100k_time_split_matches_reference(ml100k):
    log, _ = ml100k
    expected = reference_time_split(log_rows(log), 0.8, 0.9, 5, 1)
    split = TimeSplit().apply(log)
    assert split_counts(split) == reference_counts(log_rows(log), expected)
    assert (split.stats["t_valid"], split.stats["t_test"]) == (expected["t_valid"], expected["t_test"])


@needs_ml100k
def test_ml100k_leave_one_out_matches_reference(ml100k):
    log, _ = ml100k
    expected = reference_leave_one_out(log_rows(log), 4)
    split = LeaveOneOutSplit().apply(log)
    assert split_counts(split) == reference_counts(log_rows(log), expected)


@needs_ml100k
def test_ml100k_preprocess_then_time_split_matches_reference(ml100k):
    from seqrec.data.preprocess import preprocess
    from seqrec.data.types import RAW_SCHEMA

    reference_log, reference_stats = ml100k
    raw = pl.read_csv(
        ML100K,
        separator="\t",
        has_header=False,
        new_columns=["user", "item", "rating", "timestamp"],
        schema_overrides=[pl.Int64, pl.Int64, pl.Float64, pl.Int64],
    ).select(pl.col(name).cast(dtype) for name, dtype in RAW_SCHEMA.items())
    log = preprocess(raw, min_rating=None, duplicates="keep", user_core=5, item_core=5)
    original_users = pl.Series("user", log.user_ids[log.events["user"].to_numpy()])
    assert log.events.with_columns(original_users).equals(reference_log.events)
    assert log.item_ids.tolist() == reference_log.item_ids.tolist()
    assert log.kcore_passes == reference_log.kcore_passes
    split = TimeSplit().apply(log)
    expected = reference_time_split(log_rows(reference_log), 0.8, 0.9, 5, 1)
    assert split_counts(split) == reference_counts(log_rows(reference_log), expected)
    statistics = dataset_statistics(log, split)
    assert json.loads(json.dumps(statistics)) == statistics
    assert {key: statistics[key] for key in reference_stats} == reference_stats


def test_time_split_with_all_timestamps_equal_suggests_a_split_that_works():
    rows = [(user, item, 7) for user in range(1, 6) for item in range(5)]
    with pytest.raises(DataError, match=r"all 25 events have the same timestamp 7.*use split=loo"):
        TimeSplit().apply(make_log(rows, 5))
    split = LeaveOneOutSplit().apply(make_log(rows, 5))  # the suggested fix works: file order decides
    assert len(split.test) == 5 and split.test.target.tolist() == [4] * 5


def test_time_split_with_a_crowded_earliest_timestamp_names_the_quantile_that_works():
    # 8 of 10 events share the earliest timestamp, so t_valid = ts[8] would leave no training event.
    rows = [(1, 0, 1)] * 4 + [(2, 0, 1)] * 4 + [(1, 0, 2), (2, 0, 3)]
    with pytest.raises(
        DataError,
        match=r"80% of the events share the earliest timestamp; raise split.valid_quantile above 0.80",
    ):
        TimeSplit(valid_quantile=0.5, test_quantile=0.9, min_train_events=2).apply(make_log(rows, 1))
