"""Raw log -> InteractionLog: exact duplicate rows, rating filter, repeated pairs, k-core, dense user and
item ids, (user, time) order.

`load_log` adds a parquet cache of the result, keyed by the source's fingerprint and the arguments.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import numbers
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

from seqrec.data.event_filter import keep_values
from seqrec.data.sources import RawSource
from seqrec.data.types import ID_COLUMNS, RAW_SCHEMA, DataError, InteractionLog
from seqrec.files import atomic_path
from seqrec.folders import CACHE_FOLDER, describe_os_error, require_cache_folder

log = logging.getLogger(__name__)

CACHE_FORMAT = 3
"""Bump when the processing below changes, so old cache files are not reused (3: keys by content, and
sub-second timestamps)."""

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


KCORE_ORDERS = ("together", "items_first", "users_first")
"""preprocess.kcore_order: how one k-core pass applies the two thresholds."""


def kcore_filter(
    table: pl.DataFrame,
    user_core: int,
    item_core: int,
    max_passes: int | None = None,
    order: str = "together",
) -> tuple[pl.DataFrame, int, bool]:
    """Keep rows whose user has >= user_core rows and whose item has >= item_core rows.

    One pass applies both thresholds: "together" counts users and items on the same table;
    "items_first" drops the rare items, then counts users on what is left (Microsoft Recommenders'
    filter); "users_first" the other way round. Passes repeat until one removes nothing (a fixed point,
    the same k-core for every order) or `max_passes` have run (None: no limit).

    Returns the filtered table (row order kept), the number of passes run, counting a last pass that
    removed nothing (a table that is already a k-core takes 1 pass), and whether the result meets both
    thresholds (a single pass may leave items below item_core once users are dropped).
    """
    passes = 0
    while max_passes is None or passes < max_passes:
        passes += 1
        kept = _kcore_pass(table, user_core, item_core, order)
        if kept.height == table.height:
            return kept, passes, True
        table = kept
    return table, passes, _kcore_pass(table, user_core, item_core, "together").height == table.height


def _kcore_pass(table: pl.DataFrame, user_core: int, item_core: int, order: str) -> pl.DataFrame:
    enough_users = pl.len().over("user") >= user_core
    enough_items = pl.len().over("item") >= item_core
    if order == "items_first":
        return table.filter(enough_items).filter(enough_users)
    if order == "users_first":
        return table.filter(enough_users).filter(enough_items)
    return table.filter(enough_users & enough_items)


def preprocess(
    raw: pl.DataFrame,
    *,
    min_rating: float | None = None,
    drop_exact_duplicates: bool = True,
    duplicates: str = "keep",
    user_core: int = 5,
    item_core: int = 5,
    kcore_passes: int | None = None,
    kcore_order: str = "together",
) -> InteractionLog:
    """Filter and re-index a raw log (RAW_SCHEMA columns, file order; ids integers or strings).

    0. drop_exact_duplicates: keep only the first of rows with the same user, item and timestamp (a
    copied event would be its own test target and inflate every metric); 1. drop events with rating <
    min_rating (when given); 2. duplicates, repeated (user, item) pairs: "keep", "first" or "last";
    3. k-core (kcore_filter: until a fixed point, or kcore_passes passes in kcore_order); 4. dense user
    and item ids by rank of the original id (smallest -> 0), the originals kept in user_ids and
    item_ids; 5. stable sort by (user, timestamp), ties in file order.
    """
    _check_arguments(
        min_rating=min_rating,
        drop_exact_duplicates=drop_exact_duplicates,
        duplicates=duplicates,
        user_core=user_core,
        item_core=item_core,
        kcore_passes=kcore_passes,
        kcore_order=kcore_order,
    )
    table = _raw_table(raw).with_row_index(_ROW)
    if drop_exact_duplicates:
        table = table.filter(pl.struct("user", "item", "timestamp").is_first_distinct())  # in file order
    exact_duplicates_dropped = raw.height - table.height
    if min_rating is not None:
        if table["rating"].null_count() == table.height:
            raise DataError(
                f"preprocess.min_rating={min_rating} needs ratings, but this log has none "
                "(set dataset.rating_column, or preprocess.min_rating=null)."
            )
        table = table.filter(pl.col("rating") >= min_rating)
    table = DUPLICATE_POLICIES[duplicates](table)
    table, passes_run, is_kcore = kcore_filter(table, user_core, item_core, kcore_passes, kcore_order)
    if table.height == 0:
        raise DataError(
            f"no interactions left after filtering {raw.height} raw events with "
            f"preprocess.min_rating={min_rating}, preprocess.user_core={user_core}, "
            f"preprocess.item_core={item_core}: lower these thresholds."
        )

    user_ids, item_ids = (id_array(table[column].unique().sort()) for column in ("user", "item"))
    dense = [(pl.col(column).rank("dense") - 1).cast(pl.Int64) for column in ("user", "item")]
    # Dense ranks keep the order of the original ids, so this is the order by (original user, time).
    events = table.with_columns(dense).sort(["user", "timestamp", _ROW]).select("user", "item", "timestamp")
    stats = {
        "raw_events": raw.height,
        "exact_duplicates_dropped": exact_duplicates_dropped,
        "users": len(user_ids),
        "items": len(item_ids),
        "interactions": events.height,
        "kcore_passes": passes_run,
        "kcore_pass_limit": kcore_passes,
        "kcore_order": kcore_order,
        "kcore_converged": is_kcore,
        "user_core": user_core,
        "item_core": item_core,
        "min_rating": min_rating,
        "drop_exact_duplicates": drop_exact_duplicates,
        "duplicates": duplicates,
    }
    return InteractionLog(
        events=events, item_ids=item_ids, kcore_passes=passes_run, stats=stats, user_ids=user_ids
    )


def id_array(ids: pl.Series | list) -> np.ndarray:
    """Original ids as numpy: int64 when they are integers, else an object array of str."""
    values = ids.to_list() if isinstance(ids, pl.Series) else list(ids)
    if all(isinstance(value, int) and not isinstance(value, bool) for value in values):
        return np.asarray(values, dtype=np.int64)
    return np.asarray([str(value) for value in values], dtype=object)


def _raw_table(raw: pl.DataFrame) -> pl.DataFrame:
    """The RAW_SCHEMA columns of a source's output, typed, or DataError saying what is wrong."""
    missing = [column for column in RAW_SCHEMA if column not in raw.columns]
    if missing:
        raise DataError(f"the raw log lacks column(s) {missing}; sources must return {list(RAW_SCHEMA)}")
    if raw.height == 0:
        raise DataError("the raw log is empty: check dataset.path and the source's settings.")
    # Ids may also be strings (e.g. Amazon's reviewer ids and ASINs); they are kept verbatim.
    schema = RAW_SCHEMA | {column: pl.String for column in ID_COLUMNS if raw[column].dtype == pl.String}
    try:
        table = raw.select(pl.col(column).cast(dtype, strict=True) for column, dtype in schema.items())
    except pl.exceptions.PolarsError as error:
        raise DataError(f"the raw log does not fit {RAW_SCHEMA}: {error}") from error
    nulls = {column: count for column, count in table.null_count().row(0, named=True).items() if count}
    if set(nulls) - {"rating"}:
        raise DataError(f"the raw log has missing values (column: count) {nulls}; only rating may be null.")
    return table


def _check_arguments(
    *,
    min_rating: float | None,
    drop_exact_duplicates: bool,
    duplicates: str,
    user_core: int,
    item_core: int,
    kcore_passes: int | None,
    kcore_order: str,
) -> None:
    if not isinstance(drop_exact_duplicates, bool):
        raise ValueError(
            f"preprocess.drop_exact_duplicates must be true or false, got {drop_exact_duplicates!r}"
        )
    for key, core in (("user_core", user_core), ("item_core", item_core)):
        if isinstance(core, bool) or not isinstance(core, numbers.Integral) or core < 1:
            raise ValueError(f"preprocess.{key} must be an integer >= 1 (1 keeps everything), got {core!r}")
    if kcore_passes is not None and (
        isinstance(kcore_passes, bool) or not isinstance(kcore_passes, numbers.Integral) or kcore_passes < 1
    ):
        raise ValueError(f"preprocess.kcore_passes must be an integer >= 1 or null, got {kcore_passes!r}")
    if kcore_order not in KCORE_ORDERS:
        raise ValueError(f"preprocess.kcore_order must be one of {list(KCORE_ORDERS)}, got {kcore_order!r}")
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

    The cache key hashes `source.fingerprint()` (the raw data by content, so a file rewritten with the
    same size and modification time misses) and the preprocess arguments (defaults filled in). A hit
    never calls `source.load()`; a pinned dataset.checksum is part of the fingerprint, and an entry is
    written only after `load()` verified it, so a hit stands for verified content. Unreadable cache files
    are ignored and rewritten; `cache_dir=None` disables the cache. Dropped exact duplicate rows are
    reported in one warning line.
    """
    preprocess_kwargs = dict(preprocess_kwargs)
    keep = keep_values(preprocess_kwargs.pop("keep", None))
    if keep and "keep" not in inspect.signature(source.load).parameters:
        raise DataError(
            f"preprocess.keep filters by columns of the log file, which {type(source).__name__} does not "
            "read; use it with dataset=file"
        )
    try:
        arguments = inspect.signature(preprocess).bind(None, **preprocess_kwargs)
    except TypeError as error:
        valid = [name for name in inspect.signature(preprocess).parameters if name != "raw"]
        raise ValueError(
            f"unknown preprocess option in {sorted(preprocess_kwargs)}; valid: {[*valid, 'keep']}"
        ) from error
    arguments.apply_defaults()
    options = {name: value for name, value in arguments.arguments.items() if name != "raw"}
    _check_arguments(**options)
    interaction_log = _cached_log(source, cache_dir, options, keep)
    dropped = interaction_log.stats.get("exact_duplicates_dropped", 0)
    if dropped:
        log.warning(
            "dropped %d exact duplicate rows (same user, item and timestamp) of %d raw events; "
            "preprocess.drop_exact_duplicates=false keeps them",
            dropped,
            interaction_log.stats["raw_events"],
        )
    return interaction_log


def _cached_log(source: RawSource, cache_dir: str | None, options: dict, keep: dict) -> InteractionLog:
    def processed() -> InteractionLog:
        interaction_log = preprocess(source.load(keep=keep) if keep else source.load(), **options)
        if keep:
            interaction_log.stats["kept_values"] = keep  # raw_events then counts the kept events
        return interaction_log

    if cache_dir is None:
        return replace(processed(), source_fingerprint=source.fingerprint())
    folder = require_cache_folder(cache_dir)
    fingerprint = source.fingerprint()
    key_text = json.dumps(
        {
            "format": CACHE_FORMAT,
            "source": fingerprint,
            "preprocess": options | ({"keep": keep} if keep else {}),
        },
        sort_keys=True,
    )
    cache_path = folder / f"log-{hashlib.sha256(key_text.encode()).hexdigest()[:20]}.parquet"
    if cache_path.is_file():
        cached = _read_cache(cache_path, key_text)
        if cached is not None:
            log.info("using the cached processed log %s", cache_path)
            return replace(cached, source_fingerprint=fingerprint)
    interaction_log = processed()
    if source.fingerprint() != fingerprint:  # the data would not be what the key (and the record) names
        raise DataError(
            "the raw data changed while seqrec read it (is it still being written or copied?); run again "
            "once dataset.path is complete"
        )
    try:
        _write_cache(cache_path, interaction_log, key_text)
    except OSError as error:  # e.g. a full disk: the log is in memory, so the run goes on without the cache
        log.warning(
            "could not write the processed log into %s %s: %s; continuing without caching it. Free space "
            "there, or set cache_dir=null or cache_dir=DIR.",
            CACHE_FOLDER,
            folder,
            describe_os_error(error),
        )
    return replace(interaction_log, source_fingerprint=fingerprint)


def _write_cache(path: Path, interaction_log: InteractionLog, key_text: str) -> None:
    """Events as parquet rows; user_ids, item_ids, kcore_passes and stats as JSON in the file's metadata."""
    extra = {
        "user_ids": interaction_log.user_ids.tolist(),
        "item_ids": interaction_log.item_ids.tolist(),
        "kcore_passes": interaction_log.kcore_passes,
        "stats": interaction_log.stats,
        "key": key_text,
    }
    with atomic_path(path) as temp:
        interaction_log.events.write_parquet(temp, metadata={"seqrec": json.dumps(extra)})
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
        user_ids, item_ids = id_array(extra["user_ids"]), id_array(extra["item_ids"])
        return InteractionLog(events, item_ids, int(extra["kcore_passes"]), dict(extra["stats"]), user_ids)
    except (pl.exceptions.PolarsError, OSError, ValueError, KeyError, TypeError) as error:
        log.warning("ignoring the unreadable cache file %s (%s); rebuilding it", path, error)
        return None
