"""Timestamps keep the resolution the file has: events within one second are ordered by time, not by
their line in the file, from the raw log to the split."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import torch

from seqrec.data.parsing import Origin, to_timestamps
from seqrec.data.preprocess import preprocess
from seqrec.data.sources import InteractionFile
from seqrec.data.splits import LeaveOneOutSplit, TimeSplit

START = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


def events(users: int = 12, per_user: int = 12, seed: int = 0) -> list[tuple[int, int, datetime]]:
    """(user, item, time): each user's events a few milliseconds apart, many within one second."""
    rng = random.Random(seed)
    rows = []
    for user in range(users):
        moment = START + timedelta(seconds=user % 3)
        for _ in range(per_user):
            moment += timedelta(milliseconds=rng.randint(1, 150))
            rows.append((user, rng.randint(0, 9), moment))
    return rows


def write_csv(path: Path, rows: list[tuple[int, int, datetime]]) -> str:
    lines = [f"{user},{item},{moment.isoformat(timespec='milliseconds')}" for user, item, moment in rows]
    path.write_text("user,item,timestamp\n" + "\n".join(lines) + "\n")
    return str(path)


def split_of(path: str, rule):
    log = preprocess(InteractionFile(path).load(), user_core=1, item_core=1)
    return rule.apply(log)


def test_reversed_file_order_gives_the_same_sequences_and_splits(tmp_path):
    rows = events()
    forward = write_csv(tmp_path / "forward.csv", rows)
    backward = write_csv(tmp_path / "backward.csv", rows[::-1])
    for rule in (TimeSplit(valid_quantile=0.6, test_quantile=0.8, min_train_events=2), LeaveOneOutSplit()):
        first, second = split_of(forward, rule), split_of(backward, rule)
        assert torch.equal(first.item_seq, second.item_seq)  # main: ties within a second in file order
        assert torch.equal(first.train_start, second.train_start)
        assert torch.equal(first.train_end, second.train_end)
        for name in ("valid", "test"):
            assert torch.equal(getattr(first, name).target, getattr(second, name).target)
            assert torch.equal(getattr(first, name).history_end, getattr(second, name).history_end)


def test_each_users_sequence_follows_the_milliseconds(tmp_path):
    rows = events(seed=1)
    log = preprocess(
        InteractionFile(write_csv(tmp_path / "log.csv", rows[::-1])).load(), user_core=1, item_core=1
    )
    expected = [item for _, item, _ in sorted(rows, key=lambda row: (row[0], row[2]))]
    assert log.item_ids[log.events["item"].to_numpy()].tolist() == expected


def test_datetimes_become_integer_time_in_the_finest_unit_the_data_needs():
    origin = Origin(Path("log.csv"), "timestamps", first_line=2)

    def converted(values):
        return to_timestamps(pl.Series(values), origin).to_list()

    whole = int(datetime(2001, 1, 1, tzinfo=UTC).timestamp())
    assert converted(["2001-01-01 00:00:00", "2001-01-01 00:00:10"]) == [whole, whole + 10]  # seconds
    assert converted(["2001-01-01T00:00:00.250", "2001-01-01T00:00:01"]) == [
        whole * 10**3 + 250,
        (whole + 1) * 10**3,
    ]
    assert converted(["2001-01-01T00:00:00.000001Z"]) == [whole * 10**6 + 1]
    assert converted(["2001-01-01T00:00:00.123456789"]) == [whole * 10**9 + 123_456_789]
    parquet_like = pl.Series([datetime(2001, 1, 1, 0, 0, 0, 5000)], dtype=pl.Datetime("ns"))
    assert to_timestamps(parquet_like, origin).to_list() == [whole * 10**3 + 5]  # 5 ms
    assert np.diff(converted(["2001-01-01T00:00:00.001", "2001-01-01T00:00:00.002"])).tolist() == [1]
