"""k-core passes and order (preprocess.kcore_passes / kcore_order) and string ids, against pure Python."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import polars as pl
import pytest

from seqrec.data.preprocess import kcore_filter, load_log, preprocess
from seqrec.data.splits import LeaveOneOutSplit

SCHEMA = {"user": pl.String, "item": pl.String, "timestamp": pl.Int64, "rating": pl.Float64}


def reference_kcore(pairs, user_core, item_core, max_passes, order):
    """Loops over (user, item) pairs: returns (kept pairs, passes run, whether both thresholds hold)."""

    def keep_users(rows):
        counts = Counter(user for user, _ in rows)
        return [row for row in rows if counts[row[0]] >= user_core]

    def keep_items(rows):
        counts = Counter(item for _, item in rows)
        return [row for row in rows if counts[row[1]] >= item_core]

    def together(rows):
        users, items = Counter(u for u, _ in rows), Counter(i for _, i in rows)
        return [(u, i) for u, i in rows if users[u] >= user_core and items[i] >= item_core]

    one_pass = {
        "together": together,
        "items_first": lambda rows: keep_users(keep_items(rows)),
        "users_first": lambda rows: keep_items(keep_users(rows)),
    }[order]
    passes = 0
    while max_passes is None or passes < max_passes:
        passes += 1
        kept = one_pass(pairs)
        if len(kept) == len(pairs):
            return kept, passes, True
        pairs = kept
    return pairs, passes, len(together(pairs)) == len(pairs)


def random_pairs(seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [(rng.randrange(30), min(int(rng.expovariate(0.15)), 25)) for _ in range(300)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("order", ["together", "items_first", "users_first"])
@pytest.mark.parametrize("max_passes", [None, 1, 2])
def test_kcore_filter_matches_loops(seed, order, max_passes):
    pairs = random_pairs(seed)
    table = pl.DataFrame(pairs, schema={"user": pl.Int64, "item": pl.Int64}, orient="row")
    kept, passes, converged = kcore_filter(table, 6, 8, max_passes, order)
    expected, expected_passes, expected_converged = reference_kcore(pairs, 6, 8, max_passes, order)
    assert kept.rows() == expected and (passes, converged) == (expected_passes, expected_converged)


def test_every_order_reaches_the_same_fixed_point():
    for seed in range(8):
        table = pl.DataFrame(random_pairs(seed), schema={"user": pl.Int64, "item": pl.Int64}, orient="row")
        results = [
            kcore_filter(table, 5, 7, None, order)[0] for order in ("together", "items_first", "users_first")
        ]
        assert results[0].equals(results[1]) and results[0].equals(results[2])


def test_one_pass_items_first_can_leave_items_below_the_threshold():
    rows = [("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "a"), ("u2", "b"), ("u5", "c"), ("u5", "d")]
    raw = pl.DataFrame(
        [(user, item, t, None) for t, (user, item) in enumerate(rows)], schema=SCHEMA, orient="row"
    )
    one_pass = preprocess(raw, user_core=2, item_core=2, kcore_passes=1, kcore_order="items_first")
    # Items first drops d (1 row); users then drop u5 (c only): item c is left with u1's row alone.
    assert one_pass.user_ids.tolist() == ["u1", "u2"] and one_pass.item_ids.tolist() == ["a", "b", "c"]
    stats = one_pass.stats
    assert (stats["kcore_passes"], stats["kcore_pass_limit"], stats["kcore_order"]) == (1, 1, "items_first")
    assert stats["kcore_converged"] is False
    fixed = preprocess(raw, user_core=2, item_core=2)
    assert fixed.item_ids.tolist() == ["a", "b"] and fixed.stats["kcore_passes"] == 4  # d, then u5, then c
    assert fixed.stats["kcore_converged"] is True and fixed.stats["kcore_pass_limit"] is None
    assert fixed.stats["kcore_order"] == "together"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"kcore_passes": 0}, "preprocess.kcore_passes"),
        ({"kcore_passes": True}, "preprocess.kcore_passes"),
        ({"kcore_order": "items"}, "preprocess.kcore_order"),
    ],
)
def test_bad_kcore_settings_name_the_key(options, key):
    raw = pl.DataFrame([("u", "i", 1, None)], schema=SCHEMA, orient="row")
    with pytest.raises(ValueError, match=key):
        preprocess(raw, **options)


def string_log_rows() -> list[tuple]:
    """Amazon-like ids: reviewer ids and ASINs, some all digits with leading zeros."""
    rng = random.Random(3)
    users = [f"A{rng.randrange(10**6):06d}" for _ in range(12)]
    items = ["0000031852", "B00004Y2UT", "0439394074", "B0009XT", "007", "B01"]
    return [(rng.choice(users), rng.choice(items), rng.randrange(5), None) for _ in range(150)]


def test_string_ids_are_kept_verbatim_and_ordered_like_their_text():
    rows = string_log_rows()
    # The random rows repeat some (user, item, timestamp) events: keep them, the reference below does.
    raw = pl.DataFrame(rows, schema=SCHEMA, orient="row")
    log = preprocess(raw, user_core=2, item_core=2, drop_exact_duplicates=False)
    assert log.user_ids.dtype == object and log.item_ids.dtype == object
    assert "0000031852" in log.item_ids.tolist() and "007" in log.item_ids.tolist()
    assert log.user_ids.tolist() == sorted({user for user, *_ in rows}) and log.item_ids.tolist() == sorted(
        {item for _, item, *_ in rows}
    )
    # Events in (original user, time, file order); dense ids map back to the originals row by row.
    expected = sorted(
        ((user, item, t, n) for n, (user, item, t, _) in enumerate(rows)), key=lambda r: (r[0], r[2], r[3])
    )
    events = log.events.rows()
    assert [(log.user_ids[u], log.item_ids[i], t) for u, i, t in events] == [
        (u, i, t) for u, i, t, _ in expected
    ]
    assert log.events.schema == pl.Schema({"user": pl.Int64, "item": pl.Int64, "timestamp": pl.Int64})


def test_string_ids_survive_the_cache(tmp_path):
    class Source:
        def load(self):
            return pl.DataFrame(string_log_rows(), schema=SCHEMA, orient="row")

        def fingerprint(self):
            return "string ids"

    first = load_log(Source(), cache_dir=str(tmp_path), user_core=2, item_core=2)
    cached = load_log(Source(), cache_dir=str(tmp_path), user_core=2, item_core=2)
    assert cached.user_ids.tolist() == first.user_ids.tolist() and cached.user_ids.dtype == object
    assert cached.item_ids.tolist() == first.item_ids.tolist() and all(
        isinstance(i, str) for i in cached.item_ids
    )
    assert cached.events.equals(first.events) and cached.stats == first.stats
    integer = load_log(Source(), cache_dir=None, user_core=2, item_core=2)
    assert integer.events.equals(first.events)


def test_split_maps_users_and_items_back_to_the_original_ids():
    log = preprocess(pl.DataFrame(string_log_rows(), schema=SCHEMA, orient="row"), user_core=2, item_core=2)
    split = LeaveOneOutSplit(min_events=4).apply(log)
    users, items = split.original_users(split.test.user), split.original_items(split.test.target)
    events = log.events.rows()
    last_event = {log.user_ids[u]: log.item_ids[i] for u, i, _ in events}  # each user's latest event wins
    assert len(users) == split.stats["test_samples"] > 0
    assert all(items[n] == last_event[user] for n, user in enumerate(users.tolist()))
    assert isinstance(users[0], str) and isinstance(items[0], str)
    plain = preprocess(
        pl.DataFrame(
            [(7, 3, t, None) for t in range(5)],
            schema={**SCHEMA, "user": pl.Int64, "item": pl.Int64},
            orient="row",
        ),
        user_core=1,
        item_core=1,
    )
    plain_split = LeaveOneOutSplit().apply(plain)
    assert plain_split.original_users(plain_split.test.user).tolist() == [7]
    assert plain_split.original_users(plain_split.test.user).dtype == np.int64
