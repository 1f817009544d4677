"""preprocess against a brute-force pure-Python reference (exact duplicate rows, rating filter, repeated
pairs, iterative k-core, dense ids, stable order), the k-core fixed point, errors, the real ml-100k counts,
and the load_log cache."""

from __future__ import annotations

import csv
import errno
import logging
import os
import random
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import seqrec.data.preprocess
from seqrec.data.preprocess import kcore_filter, load_log, preprocess
from seqrec.data.sources import GroupLens
from seqrec.data.types import RAW_SCHEMA, DataError
from seqrec.errors import UserError

# The shared GroupLens file lies beside the checkout (../shared); SEQREC_ML100K points elsewhere.
ML_100K = Path(
    os.environ.get("SEQREC_ML100K", Path(__file__).resolve().parents[2] / "shared/data/ml-100k/u.data")
)


def raw_frame(rows: list[tuple]) -> pl.DataFrame:
    """rows: (user, item, timestamp, rating) in file order."""
    return pl.DataFrame(rows, schema=RAW_SCHEMA, orient="row")


def reference(
    rows, *, min_rating=None, drop_exact_duplicates=True, duplicates="keep", user_core=5, item_core=5
):
    """Pure-Python preprocessing, written from the protocol text: returns (events, item_ids, passes)."""
    events = [
        (position, *row) for position, row in enumerate(rows)
    ]  # (file position, user, item, ts, rating)
    if drop_exact_duplicates:
        seen = set()
        events = [event for event in events if not (event[1:4] in seen or seen.add(event[1:4]))]
    if min_rating is not None:
        events = [event for event in events if event[4] >= min_rating]
    if duplicates != "keep":
        chosen = {}
        for event in events:
            key, rank = (event[1], event[2]), (event[3], event[0])  # time, then file order
            if key not in chosen or (
                rank < chosen[key][0] if duplicates == "first" else rank > chosen[key][0]
            ):
                chosen[key] = (rank, event)
        events = sorted((event for _, event in chosen.values()), key=lambda event: event[0])
    passes = 0
    while True:
        passes += 1
        user_counts = Counter(event[1] for event in events)
        item_counts = Counter(event[2] for event in events)
        kept = [
            event
            for event in events
            if user_counts[event[1]] >= user_core and item_counts[event[2]] >= item_core
        ]
        if len(kept) == len(events):
            break
        events = kept
    item_ids = sorted({event[2] for event in events})
    dense = {original: index for index, original in enumerate(item_ids)}
    ordered = sorted(events, key=lambda event: (event[1], event[3], event[0]))
    return [(event[1], dense[event[2]], event[3]) for event in ordered], item_ids, passes


def original_rows(log) -> list[tuple]:
    """log.events with the dense user ids mapped back to the original ones."""
    return [(log.user_ids[user].item(), item, timestamp) for user, item, timestamp in log.events.rows()]


def random_rows(seed: int, n: int = 400) -> list[tuple]:
    """Few users/items, few distinct timestamps (many ties), repeated pairs, skewed item popularity."""
    rng = random.Random(seed)
    items = [rng.randrange(1000) for _ in range(40)]
    return [
        (
            rng.randrange(100, 140),
            items[min(int(rng.expovariate(0.12)), 39)],
            rng.randrange(6),
            float(rng.randrange(1, 6)),
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"user_core": 3, "item_core": 7},
        {"user_core": 5, "item_core": 3, "duplicates": "first"},
        {"user_core": 4, "item_core": 3, "duplicates": "last", "min_rating": 3.0},
        {"user_core": 12, "item_core": 2},  # up to 8 passes on these seeds
        {"user_core": 30, "item_core": 30},  # nothing survives
        {"user_core": 1, "item_core": 1},
        {"user_core": 3, "item_core": 3, "drop_exact_duplicates": False},
        {"user_core": 2, "item_core": 2, "drop_exact_duplicates": False, "duplicates": "last"},
    ],
)
def test_matches_pure_python_reference(seed, options):
    rows = random_rows(seed)
    expected_events, expected_items, expected_passes = reference(rows, **options)
    if not expected_events:
        with pytest.raises(DataError):
            preprocess(raw_frame(rows), **options)
        return
    log = preprocess(raw_frame(rows), **options)
    assert original_rows(log) == expected_events
    assert log.events["user"].to_list() == sorted(log.events["user"].to_list())  # dense, in original order
    assert log.user_ids.tolist() == sorted({event[0] for event in expected_events})
    assert log.item_ids.tolist() == expected_items and log.item_ids.dtype == np.int64
    assert log.kcore_passes == expected_passes == log.stats["kcore_passes"]
    assert log.events.schema == pl.Schema({"user": pl.Int64, "item": pl.Int64, "timestamp": pl.Int64})
    assert log.stats["raw_events"] == len(rows)
    distinct_events = {row[:3] for row in rows}  # (user, item, timestamp)
    exact_copies = len(rows) - len(distinct_events) if options.get("drop_exact_duplicates", True) else 0
    assert log.stats["exact_duplicates_dropped"] == exact_copies
    assert log.stats["interactions"] == len(expected_events)
    assert log.stats["users"] == len({event[0] for event in expected_events})
    assert log.stats["items"] == len(expected_items) == log.num_items


def test_several_passes_needed():
    """A chain u1-a-... where each pass uncovers new low-count users or items, beside a stable 2-core."""
    chain = [(1, 100, 0), (1, 101, 0), (2, 101, 0), (2, 102, 0), (3, 102, 0), (3, 103, 0)]
    core = [(7, 200, 0), (7, 201, 0), (8, 200, 0), (8, 201, 0)]
    rows = [(user, item, timestamp, None) for user, item, timestamp in chain + core]
    log = preprocess(raw_frame(rows), user_core=2, item_core=2)
    # Pass 1 drops items 100 and 103, pass 2 users 1 and 3, pass 3 user 2's items, pass 4 removes nothing.
    assert log.kcore_passes == 4 == reference(rows, user_core=2, item_core=2)[2]
    assert log.user_ids.tolist() == [7, 8] and sorted(log.events["user"].unique().to_list()) == [0, 1]
    assert log.item_ids.tolist() == [200, 201]


def test_result_is_a_fixed_point():
    rows = random_rows(11, n=600)
    log = preprocess(raw_frame(rows), user_core=6, item_core=9)
    assert log.events.group_by("user").len()["len"].min() >= 6
    assert log.events.group_by("item").len()["len"].min() >= 9
    again, passes, converged = kcore_filter(log.events, 6, 9)
    assert passes == 1 and converged and again.equals(log.events)


def test_dense_ids_and_stable_time_order():
    rows = [
        (5, 900, 20, None),
        (2, 30, 10, None),
        (5, 7, 10, None),
        (5, 300, 10, None),  # same user and time as the previous line: file order decides
        (2, 900, 10, None),
        (2, 7, 5, None),
    ]
    log = preprocess(raw_frame(rows), user_core=1, item_core=1)
    assert log.item_ids.tolist() == [7, 30, 300, 900]
    assert original_rows(log) == [(2, 0, 5), (2, 1, 10), (2, 3, 10), (5, 0, 10), (5, 2, 10), (5, 3, 20)]
    assert (log.item_ids[log.events["item"].to_numpy()] == [7, 30, 900, 7, 300, 900]).all()


def test_duplicates_keep_first_and_last():
    rows = [(1, 5, 30, 1.0), (1, 5, 10, 2.0), (1, 5, 10, 3.0), (1, 5, 30, 4.0), (1, 6, 20, 5.0)]
    kept_times = {
        "keep": [10, 10, 20, 30, 30],
        "first": [10, 20],
        "last": [20, 30],
    }
    for duplicates, times in kept_times.items():
        log = preprocess(
            raw_frame(rows), drop_exact_duplicates=False, duplicates=duplicates, user_core=1, item_core=1
        )
        assert log.events["timestamp"].to_list() == times
    # By default the exact copies (same user, item, timestamp) go first: one event at 10 and one at 30 stay.
    log = preprocess(raw_frame(rows), user_core=1, item_core=1)
    assert log.events["timestamp"].to_list() == [10, 20, 30] and log.stats["exact_duplicates_dropped"] == 2


def test_a_doubled_log_preprocesses_like_the_clean_one():
    rows = random_rows(1, n=300)
    first_rows = {}
    for row in rows:
        first_rows.setdefault(row[:3], row)
    rows = list(first_rows.values())  # no exact duplicates yet
    doubled = [row for row in rows for _ in range(2)]
    clean, dropped = (
        preprocess(raw_frame(rows), user_core=2, item_core=2),
        preprocess(raw_frame(doubled), user_core=2, item_core=2),
    )
    assert dropped.events.equals(clean.events) and dropped.item_ids.tolist() == clean.item_ids.tolist()
    assert (
        dropped.stats["exact_duplicates_dropped"] == len(rows)
        and clean.stats["exact_duplicates_dropped"] == 0
    )
    kept = preprocess(raw_frame(doubled), user_core=2, item_core=2, drop_exact_duplicates=False)
    assert kept.stats["interactions"] > clean.stats["interactions"]  # what inflated the metrics before


def test_min_rating_filters_before_kcore():
    rows = [(1, 10, 1, 5.0), (1, 11, 2, 3.0), (2, 10, 3, 4.0), (2, 11, 4, 4.5)]
    log = preprocess(raw_frame(rows), min_rating=4.0, user_core=1, item_core=2)
    assert original_rows(log) == [(1, 0, 1), (2, 0, 3)]
    assert log.stats["min_rating"] == 4.0


def test_min_rating_without_ratings_is_an_error():
    rows = [(1, 10, 1, None), (2, 10, 3, None)]
    with pytest.raises(DataError, match="preprocess.min_rating=4.0 needs ratings"):
        preprocess(raw_frame(rows), min_rating=4.0, user_core=1, item_core=1)


def test_empty_after_filtering_names_thresholds():
    rows = [(1, 10, 1, None), (2, 10, 3, None)]
    with pytest.raises(DataError, match="preprocess.user_core=5, preprocess.item_core=5: lower these"):
        preprocess(raw_frame(rows))
    with pytest.raises(DataError, match="raw log is empty"):
        preprocess(raw_frame([]))


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"user_core": 0}, "preprocess.user_core"),
        ({"item_core": "5"}, "preprocess.item_core"),
        ({"item_core": True}, "preprocess.item_core"),
        ({"duplicates": "drop"}, "preprocess.duplicates"),
        ({"drop_exact_duplicates": "yes"}, "preprocess.drop_exact_duplicates"),
        ({"min_rating": "4"}, "preprocess.min_rating"),
        ({"min_rating": float("nan")}, "preprocess.min_rating"),
    ],
)
def test_bad_arguments_name_the_config_key(options, key):
    with pytest.raises(ValueError, match=key):
        preprocess(raw_frame([(1, 2, 3, None)]), **options)


def test_raw_log_is_checked_and_typed():
    with pytest.raises(DataError, match="lacks column"):
        preprocess(pl.DataFrame({"user": [1], "item": [2]}))
    with pytest.raises(DataError, match="missing values .*'item': 1"):
        preprocess(
            pl.DataFrame({"user": [1, 2], "item": [2, None], "timestamp": [1, 2], "rating": [None, None]})
        )
    narrow = pl.DataFrame(
        {"user": [1, 1], "item": [5, 6], "timestamp": [2, 1], "rating": [None, None]},
        schema={"user": pl.Int32, "item": pl.UInt16, "timestamp": pl.Int32, "rating": pl.Float32},
    )
    log = preprocess(narrow, user_core=1, item_core=1)
    assert log.events.schema == pl.Schema({"user": pl.Int64, "item": pl.Int64, "timestamp": pl.Int64})
    assert original_rows(log) == [(1, 1, 1), (1, 0, 2)]


def ml100k_by_hand(path: Path, core: int) -> tuple[int, int, int]:
    """users, items, interactions of the iterative k-core of u.data, with csv and loops only."""
    with open(path, newline="") as file:
        pairs = [(int(row[0]), int(row[1])) for row in csv.reader(file, delimiter="\t")]
    while True:
        user_counts = Counter(user for user, _ in pairs)
        item_counts = Counter(item for _, item in pairs)
        kept = [
            (user, item) for user, item in pairs if user_counts[user] >= core and item_counts[item] >= core
        ]
        if len(kept) == len(pairs):
            break
        pairs = kept
    return len({user for user, _ in pairs}), len({item for _, item in pairs}), len(pairs)


@pytest.mark.skipif(not ML_100K.is_file(), reason="needs ../shared/data/ml-100k/u.data beside the checkout")
def test_ml100k_five_core_matches_independent_computation():
    log = preprocess(GroupLens("ml-100k", path=str(ML_100K)).load(), user_core=5, item_core=5)
    users, items, interactions = ml100k_by_hand(ML_100K, core=5)
    assert (log.stats["users"], log.stats["items"], log.stats["interactions"]) == (users, items, interactions)
    assert log.stats["raw_events"] == 100_000


class CountingSource:
    """A source that counts how often it is read."""

    def __init__(self, rows: list[tuple], tag: str = "v1") -> None:
        self.rows, self.tag, self.loads = rows, tag, 0

    def load(self) -> pl.DataFrame:
        self.loads += 1
        return raw_frame(self.rows)

    def fingerprint(self) -> str:
        return f"counting-source {self.tag}"


def cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.parquet"))


def assert_same_log(first, second) -> None:
    assert first.events.equals(second.events)
    assert first.item_ids.tolist() == second.item_ids.tolist() and second.item_ids.dtype == np.int64
    assert first.kcore_passes == second.kcore_passes and first.stats == second.stats


def test_load_log_cache_hit_does_not_load(tmp_path):
    source = CountingSource(random_rows(3))
    first = load_log(source, cache_dir=str(tmp_path), user_core=3, item_core=3)
    assert source.loads == 1 and len(cache_files(tmp_path)) == 1
    second = load_log(source, cache_dir=str(tmp_path), user_core=3, item_core=3)
    assert source.loads == 1
    assert_same_log(first, second)
    assert [path.name for path in tmp_path.iterdir()] == [cache_files(tmp_path)[0].name]  # no temp files


def test_load_log_key_covers_arguments_and_fingerprint(tmp_path):
    source = CountingSource(random_rows(4))
    load_log(source, cache_dir=str(tmp_path))
    load_log(source, cache_dir=str(tmp_path), user_core=5, item_core=5, duplicates="keep")  # the defaults
    assert source.loads == 1
    load_log(source, cache_dir=str(tmp_path), user_core=4)
    assert source.loads == 2
    changed = CountingSource(random_rows(4), tag="v2")
    load_log(changed, cache_dir=str(tmp_path))
    assert changed.loads == 1 and len(cache_files(tmp_path)) == 3


def test_load_log_cache_key_covers_exact_duplicates_and_reports_them(tmp_path, caplog):
    rows = random_rows(8)
    source = CountingSource(rows)
    with caplog.at_level(logging.WARNING, logger="seqrec.data.preprocess"):
        dropped = load_log(source, cache_dir=str(tmp_path), user_core=2, item_core=2)
        again = load_log(source, cache_dir=str(tmp_path), user_core=2, item_core=2)  # a cache hit reports too
    copies = len(rows) - len({row[:3] for row in rows})
    lines = [record.getMessage() for record in caplog.records]
    assert (
        lines
        == [
            f"dropped {copies} exact duplicate rows (same user, item and timestamp) of {len(rows)} raw "
            "events; preprocess.drop_exact_duplicates=false keeps them"
        ]
        * 2
    )
    assert source.loads == 1 and again.stats == dropped.stats
    kept = load_log(source, cache_dir=str(tmp_path), user_core=2, item_core=2, drop_exact_duplicates=False)
    assert source.loads == 2 and kept.stats["interactions"] > dropped.stats["interactions"]


@pytest.mark.parametrize("cache_dir", ["/proc/nonexistent/cache", "FILE/cache"])
def test_unusable_cache_folder_is_named_and_null_suggested(tmp_path, cache_dir):
    (tmp_path / "FILE").write_text("a file, not a folder")
    source = CountingSource(random_rows(9))
    with pytest.raises(UserError) as error:
        load_log(
            source, cache_dir=cache_dir.replace("FILE", str(tmp_path / "FILE")), user_core=2, item_core=2
        )
    message = str(error.value)
    assert message.startswith("the cache folder (cache_dir)") and "cache_dir=null" in message
    assert "\n" not in message and source.loads == 0


def test_full_disk_while_caching_warns_and_goes_on(tmp_path, monkeypatch, caplog):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(seqrec.data.preprocess, "_write_cache", full_disk)
    source = CountingSource(random_rows(10))
    with caplog.at_level(logging.WARNING, logger="seqrec.data.preprocess"):
        log = load_log(source, cache_dir=str(tmp_path), user_core=2, item_core=2)
    assert log.stats["interactions"] > 0
    (warning,) = [r.getMessage() for r in caplog.records if "cache folder" in r.getMessage()]
    assert "No space left on device" in warning and "cache_dir=null" in warning


def test_load_log_rebuilds_corrupt_cache(tmp_path):
    source = CountingSource(random_rows(5))
    first = load_log(source, cache_dir=str(tmp_path), user_core=2, item_core=2)
    (cache_file,) = cache_files(tmp_path)
    cache_file.write_bytes(b"PAR1 this is not parquet")
    rebuilt = load_log(source, cache_dir=str(tmp_path), user_core=2, item_core=2)
    assert source.loads == 2
    assert_same_log(first, rebuilt)
    load_log(source, cache_dir=str(tmp_path), user_core=2, item_core=2)
    assert source.loads == 2  # the rewritten file is valid again


def test_load_log_without_cache_dir_always_loads(tmp_path):
    source = CountingSource(random_rows(6))
    load_log(source, cache_dir=None, user_core=2, item_core=2)
    load_log(source, cache_dir=None, user_core=2, item_core=2)
    assert source.loads == 2


def test_load_log_validates_arguments_even_on_a_cache_hit(tmp_path):
    source = CountingSource(random_rows(7))
    with pytest.raises(ValueError, match="unknown preprocess option"):
        load_log(source, cache_dir=str(tmp_path), user_kore=5)
    with pytest.raises(ValueError, match="preprocess.user_core"):
        load_log(source, cache_dir=str(tmp_path), user_core=-1)
    assert source.loads == 0


@pytest.mark.slow
def test_one_million_rows_keep_their_invariants():
    """At ML-1M size (speed is measured by benchmarks/data_pipeline.py, not here)."""
    rng = np.random.default_rng(0)
    n = 1_000_000
    raw = pl.DataFrame(
        {
            "user": rng.integers(0, 6000, n),
            "item": (rng.pareto(1.0, n) * 50).astype(np.int64),
            "timestamp": rng.integers(0, 10**9, n),
            "rating": rng.integers(1, 6, n).astype(np.float64),
        }
    )
    kept = {}
    for duplicates in ("keep", "first"):
        log = preprocess(raw, duplicates=duplicates, min_rating=2.0)
        table = log.events
        assert table.group_by("user").len()["len"].min() >= 5
        assert table.group_by("item").len()["len"].min() >= 5
        kept[duplicates] = table.height
    assert kept["first"] <= kept["keep"] < n
