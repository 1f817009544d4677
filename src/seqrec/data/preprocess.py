"""Raw log -> InteractionLog: rating filter, duplicates, iterative k-core, dense item ids, (user, time) order.

`load_log` adds a parquet cache of the result, keyed by the source's fingerprint and the arguments.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import numbers
import os
from pathlib import Path

import numpy as np
import polars as pl

from seqrec.data.download import atomic_writer
from seqrec.data.sources import RawSource
from seqrec.data.types import RAW_SCHEMA, DataError, InteractionLog

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
"""Bump when the processing below changes, so old cache files are not reused."""

_ROW = "_row"  # file order of the raw events, the tie-breaker everywhere


def keep_all(table: pl.DataFrame) -> pl.DataFrame:
    """Every repeated (user, item) event stays."""
    return table


def keep_first(table: pl.DataFrame) -> pl.DataFrame:
    """One event per (user, item): the earliest; equal timestamps keep the earlier line."""
    return _keep_one(table, "first")


def keep_last(table: pl.DataFrame) -> pl.DataFrame:
    """One event per (user, item): the latest; equal timestamps keep the later line."""
    return _keep_one(table, "last")


def _keep_one(table: pl.DataFrame, which: str) -> pl.DataFrame:
    by_time = table.sort(["timestamp", _ROW])
    return by_time.unique(["user", "item"], keep=which, maintain_order=True).sort(_ROW)


DUPLICATE_POLICIES = {"keep": keep_all, "first": keep_first, "last": keep_last}
"""preprocess.duplicates -> what to do with repeated (user, item) pairs."""


def iterative_kcore(table: pl.DataFrame, user_core: int, item_core: int) -> tuple[pl.DataFrame, int]:
    """Keep rows whose user has >= user_core rows AND whose item has >= item_core rows, both counted on
    the same table, and repeat until a pass removes nothing.

    Returns the filtered table (row order kept) and the number of passes, counting the last pass (the
    one that removed nothing): a table that is already a k-core takes 1 pass.
    """
    passes = 0
    while True:
        passes += 1
        enough = (pl.len().over("user") >= user_core) & (pl.len().over("item") >= item_core)
        kept = table.filter(enough)
        if kept.height == table.height:
            return kept, passes
        table = kept


def preprocess(
    raw: pl.DataFrame,
    *,
    min_rating: float | None = None,
    duplicates: str = "keep",
    user_core: int = 5,
    item_core: int = 5,
) -> InteractionLog:
    """Filter and re-index a raw log (RAW_SCHEMA columns, file order).

    1. drop events with rating < min_rating (when given); 2. duplicates: "keep", "first" or "last";
    3. iterative k-core; 4. dense item ids by rank of the original id (smallest -> 0), original user
    ids kept; 5. stable sort by (user, timestamp), ties in file order.
    """
    _check_arguments(min_rating=min_rating, duplicates=duplicates, user_core=user_core, item_core=item_core)
    table = _raw_table(raw).with_row_index(_ROW)
    if min_rating is not None:
        if table["rating"].null_count() == table.height:
            raise DataError(
                f"preprocess.min_rating={min_rating} needs ratings, but this log has none "
                "(set dataset.rating_column, or preprocess.min_rating=null)."
            )
        table = table.filter(pl.col("rating") >= min_rating)
    table = DUPLICATE_POLICIES[duplicates](table)
    table, kcore_passes = iterative_kcore(table, user_core, item_core)
    if table.height == 0:
        raise DataError(
            f"no interactions left after filtering {raw.height} raw events with "
            f"preprocess.min_rating={min_rating}, preprocess.user_core={user_core}, "
            f"preprocess.item_core={item_core}: lower these thresholds."
        )

    item_ids = table["item"].unique().sort().to_numpy().astype(np.int64)
    dense_item = (pl.col("item").rank("dense") - 1).cast(pl.Int64)
    events = (
        table.with_columns(dense_item).sort(["user", "timestamp", _ROW]).select("user", "item", "timestamp")
    )
    stats = {
        "raw_events": raw.height,
        "users": events["user"].n_unique(),
        "items": len(item_ids),
        "interactions": events.height,
        "kcore_passes": kcore_passes,
        "user_core": user_core,
        "item_core": item_core,
        "min_rating": min_rating,
        "duplicates": duplicates,
    }
    return InteractionLog(events=events, item_ids=item_ids, kcore_passes=kcore_passes, stats=stats)


def _raw_table(raw: pl.DataFrame) -> pl.DataFrame:
    """The RAW_SCHEMA columns of a source's output, typed, or DataError saying what is wrong."""
    missing = [column for column in RAW_SCHEMA if column not in raw.columns]
    if missing:
        raise DataError(f"the raw log lacks column(s) {missing}; sources must return {list(RAW_SCHEMA)}")
    if raw.height == 0:
        raise DataError("the raw log is empty: check dataset.path and the source's settings.")
    try:
        table = raw.select(pl.col(column).cast(dtype, strict=True) for column, dtype in RAW_SCHEMA.items())
    except pl.exceptions.PolarsError as error:
        raise DataError(f"the raw log does not fit {RAW_SCHEMA}: {error}") from error
    nulls = {column: count for column, count in table.null_count().row(0, named=True).items() if count}
    if set(nulls) - {"rating"}:
        raise DataError(f"the raw log has missing values (column: count) {nulls}; only rating may be null.")
    return table


def _check_arguments(*, min_rating: float | None, duplicates: str, user_core: int, item_core: int) -> None:
    for key, core in (("user_core", user_core), ("item_core", item_core)):
        if isinstance(core, bool) or not isinstance(core, numbers.Integral) or core < 1:
            raise ValueError(f"preprocess.{key} must be an integer >= 1 (1 keeps everything), got {core!r}")
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(
            f"preprocess.duplicates must be one of {list(DUPLICATE_POLICIES)}, got {duplicates!r}"
        )
    if min_rating is not None and (isinstance(min_rating, bool) or not isinstance(min_rating, numbers.Real)):
        raise ValueError(f"preprocess.min_rating must be a number or null, got {min_rating!r}")
    if min_rating is not None and not np.isfinite(min_rating):
        raise ValueError(f"preprocess.min_rating must be finite, got {min_rating!r}")


def load_log(source: RawSource, *, cache_dir: str | None, **preprocess_kwargs) -> InteractionLog:
    """`preprocess(source.load(), **preprocess_kwargs)`, cached as one parquet file in `cache_dir`.

    The cache key hashes `source.fingerprint()` and the preprocess arguments (defaults filled in). A
    hit never calls `source.load()`. Unreadable cache files are ignored and rewritten; `cache_dir=None`
    disables the cache.
    """
    try:
        arguments = inspect.signature(preprocess).bind(None, **preprocess_kwargs)
    except TypeError as error:
        valid = [name for name in inspect.signature(preprocess).parameters if name != "raw"]
        raise ValueError(
            f"unknown preprocess option in {sorted(preprocess_kwargs)}; valid: {valid}"
        ) from error
    arguments.apply_defaults()
    options = {name: value for name, value in arguments.arguments.items() if name != "raw"}
    _check_arguments(**options)
    if cache_dir is None:
        return preprocess(source.load(), **options)

    key_text = json.dumps(
        {"format": CACHE_FORMAT, "source": source.fingerprint(), "preprocess": options}, sort_keys=True
    )
    cache_path = _expand(cache_dir) / f"log-{hashlib.sha256(key_text.encode()).hexdigest()[:20]}.parquet"
    if cache_path.is_file():
        cached = _read_cache(cache_path, key_text)
        if cached is not None:
            log.info("using the cached processed log %s", cache_path)
            return cached
    interaction_log = preprocess(source.load(), **options)
    _write_cache(cache_path, interaction_log, key_text)
    return interaction_log


def _write_cache(path: Path, interaction_log: InteractionLog, key_text: str) -> None:
    """Events as parquet rows; item_ids, kcore_passes and stats as JSON in the file's metadata."""
    extra = {
        "item_ids": interaction_log.item_ids.tolist(),
        "kcore_passes": interaction_log.kcore_passes,
        "stats": interaction_log.stats,
        "key": key_text,
    }
    with atomic_writer(path) as temp_file:
        interaction_log.events.write_parquet(temp_file, metadata={"seqrec": json.dumps(extra)})
    log.info("cached the processed log at %s", path)


def _read_cache(path: Path, key_text: str) -> InteractionLog | None:
    """The cached log, or None (with a warning) when the file cannot be read back whole."""
    try:
        extra = json.loads(pl.read_parquet_metadata(path)["seqrec"])
        if extra["key"] != key_text:
            raise ValueError("it was written for other data or options")
        events = pl.read_parquet(path)
        if events.schema != pl.Schema({"user": pl.Int64, "item": pl.Int64, "timestamp": pl.Int64}):
            raise ValueError(f"unexpected columns {events.schema}")
        item_ids = np.asarray(extra["item_ids"], dtype=np.int64)
        return InteractionLog(events, item_ids, int(extra["kcore_passes"]), dict(extra["stats"]))
    except (pl.exceptions.PolarsError, OSError, ValueError, KeyError, TypeError) as error:
        log.warning("ignoring the unreadable cache file %s (%s); rebuilding it", path, error)
        return None


def _expand(path: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(str(path))))
