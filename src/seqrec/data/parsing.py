"""Raw files into typed columns: file checks and value conversions whose errors name the file, the line
and what was expected, so that a malformed log fails in one line before any work is done."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import xxhash

from seqrec.data.types import DataError
from seqrec.folders import expand

TEXT_CHECK_BYTES = 1 << 16  # bytes read to tell text from binary data
HASH_CHUNK_BYTES = 1 << 20
CONTENT_HASH = "xxh3_128"
"""The hash that names a data file's content in fingerprints (the processed-log cache key): the fastest
measured, 7x sha256 (benchmarks/content_hash.py); not a security checksum (dataset.checksum is)."""


@dataclass(frozen=True)
class Origin:
    """Where values came from, so that errors can point at the offending line.

    first_line: the file line of data row 0 (1, or 2 after a header); None for files without lines.
    """

    path: Path
    expected: str
    first_line: int | None

    def error(self, row: int, problem: str) -> DataError:
        where = f"line {self.first_line + row}" if self.first_line is not None else f"row {row + 1}"
        return DataError(f"{self.path}, {where}: {problem}. Expected {self.expected}.")


def require_text_file(path: Path, expected: str) -> None:
    """DataError unless the file's first bytes are UTF-8 text (binary data would reach the parser)."""
    with open(path, "rb") as file:
        head = file.read(TEXT_CHECK_BYTES)
    if b"\0" in head:
        raise DataError(
            f"{path} is not a text file (binary data: a zero byte at byte {head.index(0)}); dataset.path "
            f"must be {expected}: point it at the interaction log itself."
        )
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.reason != "unexpected end of data" or len(head) < TEXT_CHECK_BYTES:  # not just cut off
            raise DataError(
                f"{path} is not UTF-8 text (byte {error.start} is not UTF-8); dataset.path must be "
                f"{expected}: convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)."
            ) from error


def require_parquet_file(path: Path) -> None:
    """DataError unless the file starts and ends with the parquet magic bytes."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(4)
        file.seek(max(size - 4, 0))
        tail = file.read(4)
    if size < 8 or head != b"PAR1" or tail != b"PAR1":
        raise DataError(
            f"{path} is not a parquet file (it does not begin and end with PAR1); write it with polars, "
            "pandas or pyarrow, or give a delimited text file with another suffix."
        )


def to_integers(values: pl.Series, what: str, origin: Origin, rows: pl.Series | None = None) -> pl.Series:
    """values [N] (strings or numbers) as Int64; DataError at the first value that is not an integer.

    rows: [N] the data row of each value (to report lines), or None when value n is row n.
    """
    _reject_nulls(values, what, origin, rows)
    if values.dtype == pl.String:
        values = values.str.strip_chars()
    elif values.dtype.is_float():
        # A strict float -> int cast truncates silently, so check for whole numbers first.
        _raise_at_first(
            values.is_nan() | (values != values.floor()), values, f"is not an integer {what}", origin, rows
        )
    elif not values.dtype.is_integer():
        raise DataError(
            f"{origin.path}: the {what} column has type {values.dtype}; {what}s must be integers."
        )
    return _cast_strict(values, pl.Int64, what, origin, rows)


def to_strings(values: pl.Series, what: str, origin: Origin, rows: pl.Series | None = None) -> pl.Series:
    """values [N] as String ids, surrounding whitespace stripped; DataError at the first empty one."""
    _reject_nulls(values, what, origin, rows)
    return values.cast(pl.String).str.strip_chars()


def to_floats(values: pl.Series, what: str, origin: Origin, rows: pl.Series | None = None) -> pl.Series:
    """values [N] (strings or numbers) as Float64; DataError at the first value that is not a number."""
    _reject_nulls(values, what, origin, rows)
    if values.dtype == pl.String:
        values = values.str.strip_chars()
    elif not values.dtype.is_numeric():
        raise DataError(f"{origin.path}: the {what} column has type {values.dtype}; {what}s must be numbers.")
    return _cast_strict(values, pl.Float64, what, origin, rows)


def to_timestamps(values: pl.Series, origin: Origin, rows: pl.Series | None = None) -> pl.Series:
    """Timestamps [N] as Int64: integers as they are (unix seconds, or any unit that orders time), dates
    and datetimes (or datetime strings) as unix time in the coarsest of seconds, milli-, micro- and
    nanoseconds that keeps every value exact (seconds unless the data has fractions of a second), so
    events within one second keep their order in time."""
    _reject_nulls(values, "timestamp", origin, rows)
    if values.dtype == pl.Date:
        values = values.cast(pl.Datetime("us"))
    if isinstance(values.dtype, pl.Datetime):
        return integer_time(values)
    if values.dtype != pl.String:
        return to_integers(values, "timestamp", origin, rows)
    values = values.str.strip_chars()
    is_integer = values.cast(pl.Int64, strict=False).is_not_null()
    if is_integer.all():
        return to_integers(values, "timestamp", origin, rows)
    try:
        datetimes = values.str.to_datetime(strict=True, time_unit="us")
    except pl.exceptions.PolarsError:
        problem = (
            "is not an integer; timestamps must be all integers (unix seconds) or all datetimes of one format"
        )
        _raise_at_first(~is_integer, values, problem, origin, rows)
        raise
    if values.str.contains(r"\.\d{7}").any():  # finer than microseconds; ns reach only 1677..2262
        nanoseconds = values.str.to_datetime(strict=True, time_unit="ns")
        if (nanoseconds.dt.epoch("us") == datetimes.dt.epoch("us")).all():
            datetimes = nanoseconds
    return integer_time(datetimes)


_NANOSECONDS_PER = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def integer_time(datetimes: pl.Series) -> pl.Series:
    """Datetimes [N] as Int64 unix time in the coarsest of s, ms, us and ns that represents them all."""
    unit = datetimes.dtype.time_unit
    ticks = datetimes.dt.epoch(unit).cast(pl.Int64)
    for name, nanoseconds in _NANOSECONDS_PER.items():
        ticks_per_step = nanoseconds // _NANOSECONDS_PER[unit]
        if name == unit or (ticks % ticks_per_step == 0).all():
            return ticks // ticks_per_step
    raise AssertionError(f"unknown time unit {unit}")


def _cast_strict(
    values: pl.Series, dtype: pl.DataType, what: str, origin: Origin, rows: pl.Series | None
) -> pl.Series:
    """Strict cast; on failure, DataError naming the first value that does not convert and its line."""
    try:
        return values.cast(dtype, strict=True)
    except pl.exceptions.PolarsError:
        failed = values.cast(dtype, strict=False).is_null()
        _raise_at_first(failed, values, f"is not a valid {what} ({dtype})", origin, rows)
        raise


def _reject_nulls(values: pl.Series, what: str, origin: Origin, rows: pl.Series | None) -> None:
    """DataError at the first missing or blank value."""
    blank = values.is_null()
    if values.dtype == pl.String:
        blank = blank | (values.str.strip_chars() == "")
    positions = blank.arg_true()
    if len(positions):
        raise origin.error(_row(int(positions[0]), rows), f"empty {what}")


def _raise_at_first(
    bad: pl.Series, values: pl.Series, problem: str, origin: Origin, rows: pl.Series | None
) -> None:
    positions = bad.arg_true()
    if len(positions):
        position = int(positions[0])
        raise origin.error(_row(position, rows), f"{values[position]!r} {problem}")


def _row(position: int, rows: pl.Series | None) -> int:
    return int(rows[position]) if rows is not None else position


def existing_path(path: str) -> Path:
    resolved = expand(path).absolute()
    if not resolved.exists():
        raise DataError(f"dataset.path={path} does not exist (looked at {resolved}).")
    return resolved


def file_content(path: Path) -> str:
    """The file's size and a hash of its bytes: changes whenever its content does, whatever its path or
    modification time (`cp -p`, `rsync -a` and `tar x` keep those while changing the bytes)."""
    return f"size={path.stat().st_size} {CONTENT_HASH}={content_digest(path)}"


def content_digest(path: Path) -> str:
    """Hex xxh3_128 digest of the file's bytes (about 0.1 s per GB from the page cache: see
    benchmarks/README.md)."""
    hasher = xxhash.xxh3_128()
    with open(path, "rb") as file:
        while chunk := file.read(HASH_CHUNK_BYTES):
            hasher.update(chunk)
    return hasher.hexdigest()
