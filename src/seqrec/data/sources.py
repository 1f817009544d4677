"""Raw interaction logs. Each source is a Hydra `_target_`: its constructor only checks its arguments,
`load()` reads the log into RAW_SCHEMA columns in file order, and `fingerprint()` names the raw data (by
content: a hash of the file's bytes, never its path or modification time) and the parsing options, for the
processed-log cache and the run's record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import polars as pl

from seqrec.data.download import extract_member, fetch, parse_checksum, verify_file
from seqrec.data.event_filter import kept_rows
from seqrec.data.parsing import (
    Origin,
    existing_path,
    file_content,
    require_parquet_file,
    require_text_file,
    to_floats,
    to_integers,
    to_strings,
    to_timestamps,
)
from seqrec.data.types import RAW_SCHEMA, DataError
from seqrec.folders import CACHE_FOLDER, describe_os_error, expand, require_cache_folder

if TYPE_CHECKING:
    import numpy as np
    import torch

# Reads every line whole: a separator byte that never occurs in text, and no quoting.
_LINE_SEPARATOR = "\x1f"


class RawSource(Protocol):
    """What the pipeline needs from a source (GroupLens, InteractionFile, or your own class)."""

    def load(self) -> pl.DataFrame:
        """The raw log: RAW_SCHEMA columns, in file order."""
        ...

    def fingerprint(self) -> str:
        """A stable string that changes whenever the raw data's content or the parsing options do."""
        ...


@runtime_checkable
class OracleSource(Protocol):
    """A source that knows the true next-item distribution of its log (seqrec.data.synthetic): runs record
    the test metrics of its Bayes-optimal ranking (`oracle_test`), the ceiling for any objective."""

    def oracle(self, item_ids: np.ndarray) -> Callable[..., torch.Tensor]:
        """A seqrec.evaluation score function of the filtered catalog whose dense ids have the original ids
        `item_ids` (SplitData.item_ids), built once per split."""
        ...


@dataclass(frozen=True)
class RatingsFormat:
    """How a GroupLens release stores ratings: one `user item rating timestamp` event per line."""

    file_name: str
    separator: str
    header: str | None = None

    @property
    def description(self) -> str:
        fields = self.separator.join(["user", "item", "rating", "timestamp"])
        header = f"a header line {self.header!r}, then " if self.header else "no header, "
        return f"{header}lines {fields!r} (separator {self.separator!r}, integer ids and unix timestamps)"


@dataclass(frozen=True)
class GroupLensRelease:
    ratings: RatingsFormat
    md5: str | None
    """Published MD5 of the official zip; None where GroupLens updates the zip in place."""


U_DATA = RatingsFormat("u.data", "\t")
RATINGS_DAT = RatingsFormat("ratings.dat", "::")
RATINGS_CSV = RatingsFormat("ratings.csv", ",", header="userId,movieId,rating,timestamp")

GROUPLENS_RELEASES = {
    "ml-100k": GroupLensRelease(U_DATA, "0e33842e24a9c977be4e0107933c0723"),
    "ml-1m": GroupLensRelease(RATINGS_DAT, "c4d9eecfca2ab87c1945afe126590906"),
    "ml-10m": GroupLensRelease(RATINGS_DAT, "ce571fd55effeba0271552578f2648bd"),
    "ml-20m": GroupLensRelease(RATINGS_CSV, "cd245b17a1ae2cc31bb14903e1204af3"),
    "ml-25m": GroupLensRelease(RATINGS_CSV, "6b51fb2759a8657d3bfcbfc42b592ada"),
    "ml-latest-small": GroupLensRelease(RATINGS_CSV, None),
}
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/{name}.zip"

ID_TYPES = ("integer", "string")
"""dataset.id_type of InteractionFile: how user and item ids are read."""
SEPARATOR_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "space": " ", "pipe": "|"}
"""Names accepted for dataset.separator besides the character itself (a shell passes `\t` for a tab)."""


class GroupLens:
    """A MovieLens release in its native format (`u.data`, `ratings.dat` or `ratings.csv`).

    With `path` (the official zip, its extracted folder, or the ratings file itself) nothing is
    downloaded. Without it the official zip is fetched into `cache_dir` and checked against the
    published MD5 (or `checksum`, "md5:<hex>" / "sha256:<hex>"; a custom `url` has no default checksum).
    A local zip is checked against the published MD5 too, and a local file against `checksum` when given;
    a repackaged copy you trust is accepted by passing its own digest as `checksum`.
    """

    def __init__(
        self,
        name: str,
        path: str | None = None,
        url: str | None = None,
        checksum: str | None = None,
        cache_dir: str | None = "~/.cache/seqrec",
    ) -> None:
        if name not in GROUPLENS_RELEASES:
            raise DataError(f"dataset.name must be one of {', '.join(GROUPLENS_RELEASES)}; got {name!r}")
        release = GROUPLENS_RELEASES[name]
        self.published_checksum = f"md5:{release.md5}" if url is None and release.md5 is not None else None
        if checksum is not None:
            _check_checksum(checksum)
        self.name = name
        self.ratings_format = release.ratings
        self.path = existing_path(path) if path is not None else None
        if checksum is not None and self.path is not None and self.path.is_dir():
            raise DataError(
                f"dataset.checksum is the digest of one file, but dataset.path={self.path} is a folder; "
                "point dataset.path at the zip or the ratings file, or set dataset.checksum=null."
            )
        self.url = url or GROUPLENS_URL.format(name=name)
        self.checksum_given = checksum is not None
        self.checksum = checksum if checksum is not None else self.published_checksum
        self.cache_dir = expand(cache_dir).absolute() if cache_dir is not None else None
        if self.cache_dir is None and (self.path is None or self.path.suffix.lower() == ".zip"):
            raise DataError(
                f"dataset={name} needs a folder for the zip and its ratings, but cache_dir is null; set "
                "cache_dir=DIR, or pass the extracted folder or ratings file as dataset.path."
            )

    def load(self) -> pl.DataFrame:
        """The ratings in RAW_SCHEMA columns, in file order."""
        return read_grouplens_ratings(self._ratings_file(), self.ratings_format)

    def fingerprint(self) -> str:
        """The release and its content: the checksum that every downloaded zip is verified against, else
        a hash of the local file (downloading the zip first when it has no checksum)."""
        if self.path is None and self.checksum is not None:
            return f"GroupLens {self.name} checksum={self.checksum}"
        if self.path is None:
            return f"GroupLens {self.name} {file_content(self._ratings_file())} checksum=None"
        local = self._ratings_file() if self.path.is_dir() else self.path
        return f"GroupLens {self.name} {file_content(local)} checksum={self._local_checksum()}"

    def _local_checksum(self) -> str | None:
        """What the local file must match: `checksum` if given, else the published one for an official zip."""
        if self.path is None or self.path.is_dir():
            return None
        if self.checksum_given:
            return self.checksum
        return self.published_checksum if self.path.suffix.lower() == ".zip" else None  # only zips have one

    def _verify_local_copy(self) -> None:
        expected = self._local_checksum()
        if expected is None:
            return
        if not self.checksum_given:
            what = f"the official {self.name}.zip (GroupLens publishes {expected})"
            fix = "It is damaged or repackaged: download it again, or if you trust this copy pass"
        else:
            what = f"dataset.checksum={expected}"
            fix = "Check that dataset.path is the right file; if it is, pass"
        verify_file(self.path, expected, what, fix)

    def _ratings_file(self) -> Path:
        """The ratings file to parse, fetching and extracting the zip where needed."""
        file_name = self.ratings_format.file_name
        if self.path is None:
            return self._from_zip(file_name)
        if self.path.is_dir():
            candidates = [self.path / file_name, *sorted(self.path.glob(f"*/{file_name}"))]
            found = [candidate for candidate in candidates if candidate.is_file()]
            if not found:
                raise DataError(
                    f"dataset.path={self.path} is a folder without {file_name} (directly or one folder "
                    f"down). Point dataset.path at the {self.name} zip, its extracted folder or {file_name}."
                )
            return found[0]
        self._verify_local_copy()
        return self._from_zip(file_name) if self.path.suffix.lower() == ".zip" else self.path

    def _from_zip(self, file_name: str) -> Path:
        """Download and verify the zip unless there is a local one; extract the ratings into cache_dir."""
        fix = "Set cache_dir=DIR (a writable folder with space) or pass the extracted folder as dataset.path."
        require_cache_folder(self.cache_dir, fix)
        try:
            zip_path = self.path or fetch(self.url, self.cache_dir / f"{self.name}.zip", self.checksum)
            return extract_member(zip_path, file_name, self.cache_dir)
        except OSError as error:  # e.g. the disk filled up while writing
            raise DataError(
                f"could not write into {CACHE_FOLDER} {self.cache_dir}: {describe_os_error(error)}. {fix}"
            ) from error


class InteractionFile:
    """Any interaction log in a parquet file (`.parquet`) or a delimited text file (any other suffix).

    Ids are integers, or with id_type="string" any text kept verbatim (e.g. "0000031852" stays as it
    is); timestamps integers (unix seconds) or datetimes (converted to unix time, naive ones read as
    UTC, keeping any milli-, micro- or nanoseconds the file has: parsing.to_timestamps). Without a
    header (has_header=False) the columns are column_1, column_2, ...
    separator: one character or a name in SEPARATOR_NAMES; None means a tab for `.tsv`, else a comma.
    checksum: "md5:<hex>" or "sha256:<hex>" of the file, verified before it is read (None: not checked).
    """

    def __init__(
        self,
        path: str,
        user_column: str = "user",
        item_column: str = "item",
        timestamp_column: str = "timestamp",
        rating_column: str | None = None,
        separator: str | None = None,
        has_header: bool = True,
        id_type: str = "integer",
        checksum: str | None = None,
    ) -> None:
        if id_type not in ID_TYPES:
            raise ValueError(f"dataset.id_type must be one of {ID_TYPES}, got {id_type!r}")
        self.id_type = id_type
        self.path = existing_path(path)
        if self.path.is_dir():
            raise DataError(
                f"dataset.path must be a delimited text file or a .parquet file, not the folder {self.path}. "
                "For a MovieLens release use dataset=ml-100k (or ml-1m, ...)."
            )
        if checksum is not None:
            _check_checksum(checksum)
        self.checksum = checksum
        self.separator = parse_separator(separator, self.path)
        self.columns = {
            "user": user_column,
            "item": item_column,
            "timestamp": timestamp_column,
            "rating": rating_column,
        }
        named = [column for column in self.columns.values() if column is not None]
        if len(set(named)) != len(named) or not all(named):
            raise ValueError(
                "dataset.user_column, item_column, timestamp_column and rating_column must be distinct, "
                f"non-empty column names; got {self.columns}"
            )
        self.has_header = has_header

    @property
    def is_text(self) -> bool:
        return self.path.suffix.lower() != ".parquet"

    def load(self, keep: dict[str, list[str]] | None = None) -> pl.DataFrame:
        """The log in RAW_SCHEMA columns, in file order; blank lines are skipped. keep: {column: values}
        keeps only the rows whose `column` holds one of `values` (compared as text), for every column."""
        keep = keep or {}
        if self.checksum is not None:
            verify_file(self.path, self.checksum, f"dataset.checksum={self.checksum}", _RIGHT_FILE)
        if self.is_text:
            require_text_file(self.path, "a delimited text file (CSV/TSV) or a .parquet file")
        else:
            require_parquet_file(self.path)
        wanted = {role: column for role, column in self.columns.items() if column is not None}
        try:
            lazy = (
                pl.scan_csv(
                    self.path, separator=self.separator, has_header=self.has_header, infer_schema=False
                )
                if self.is_text
                else pl.scan_parquet(self.path)
            )
            available = lazy.collect_schema().names()
            if self.is_text and not self.has_header:
                numbered = [f"column_{number}" for number in range(1, len(available) + 1)]
                lazy, available = lazy.rename(dict(zip(available, numbered, strict=True))), numbered
            missing = {role: column for role, column in wanted.items() if column not in available}
            if missing:
                raise DataError(self._missing_columns_message(missing, available))
            absent = [column for column in keep if column not in available]
            if absent:
                raise DataError(
                    f"preprocess.keep filters by {absent}, which {self.path} lacks; its columns: {available}"
                )
            table = lazy.select(list(dict.fromkeys([*wanted.values(), *keep]))).collect()
        except pl.exceptions.PolarsError as error:
            raise DataError(f"could not read {self.path}: {error}") from error

        if self.is_text:
            origin = Origin(self.path, self._description(), first_line=2 if self.has_header else 1)
            table = table.with_row_index("row").filter(~pl.all_horizontal(pl.exclude("row").is_null()))
            rows = table["row"]
        else:
            origin, rows = Origin(self.path, self._description(), first_line=None), None
        if keep:
            table = kept_rows(table, keep, self.path)
            rows = table["row"] if self.is_text else None
        return pl.DataFrame(
            {
                "user": self._ids(table[wanted["user"]], "user id", origin, rows),
                "item": self._ids(table[wanted["item"]], "item id", origin, rows),
                "timestamp": to_timestamps(table[wanted["timestamp"]], origin, rows),
                "rating": (
                    self._ratings(table[wanted["rating"]], origin, rows)
                    if "rating" in wanted
                    else pl.Series([None] * table.height, dtype=pl.Float64)
                ),
            },
            schema=RAW_SCHEMA | ({"user": pl.String, "item": pl.String} if self.id_type == "string" else {}),
        )

    def _ratings(self, values: pl.Series, origin: Origin, rows: pl.Series | None) -> pl.Series:
        try:
            return to_floats(values, "rating", origin, rows)
        except DataError as error:
            if values.dtype != pl.String:
                raise
            column = self.columns["rating"]
            raise DataError(
                f"{error} dataset.rating_column={column} holds text, such as event types: to train on some "
                f"of them only, leave rating_column=null and set 'preprocess.keep={{{column}: [purchase, "
                "add_to_cart]}' (the values to keep)"
            ) from None

    def timestamps_are_datetimes(self) -> bool:
        """Whether the timestamp column holds datetimes (or dates) rather than unix seconds (first row)."""
        column = self.columns["timestamp"]
        try:
            if not self.is_text:
                dtype = pl.read_parquet_schema(self.path).get(column)
                if dtype is None or dtype != pl.String:
                    return dtype == pl.Date or isinstance(dtype, pl.Datetime)
            lazy = (
                pl.scan_csv(
                    self.path, separator=self.separator, has_header=self.has_header, infer_schema=False
                )
                if self.is_text
                else pl.scan_parquet(self.path)
            )
            if self.is_text and not self.has_header:
                column = lazy.collect_schema().names()[int(column.removeprefix("column_")) - 1]
            first = lazy.select(pl.col(column).drop_nulls().first()).collect().item()
        except (pl.exceptions.PolarsError, OSError, ValueError, IndexError):
            return False
        return first is not None and not str(first).strip().lstrip("-").isdigit()

    def _ids(self, values: pl.Series, what: str, origin: Origin, rows: pl.Series | None) -> pl.Series:
        if self.id_type == "string":
            return to_strings(values, what, origin, rows)
        return to_integers(values, what, origin, rows)

    def fingerprint(self) -> str:
        options = f"columns={self.columns} separator={self.separator!r} has_header={self.has_header}"
        options += f" id_type={self.id_type}"
        return f"InteractionFile {file_content(self.path)} {options} checksum={self.checksum}"

    def _description(self) -> str:
        ids = "integer ids" if self.id_type == "integer" else "ids"
        hint = " (text ids: set dataset.id_type=string)" if self.id_type == "integer" else ""
        return (
            f"{ids} in columns {self.columns['user']!r}/{self.columns['item']!r}{hint} and integer or "
            f"datetime timestamps in {self.columns['timestamp']!r}"
        )

    def _missing_columns_message(self, missing: dict[str, str], available: list[str]) -> str:
        settings = ", ".join(f"dataset.{role}_column (now {column!r})" for role, column in missing.items())
        message = f"{self.path} has no column(s) {list(missing.values())}; its columns are {available}. "
        message += f"Set {settings}."
        if self.is_text and len(available) == 1:
            message += f" Only one column was found: is dataset.separator={self.separator!r} right?"
            message += _separator_hint(self.path, self.separator)
        if self.is_text and not self.has_header:
            message += " Without a header (dataset.has_header=false) the columns are column_1, column_2, ..."
        return message


_RIGHT_FILE = "Check that dataset.path is the right file; if it is, pass"


def parse_separator(separator: str | None, path: Path) -> str:
    """The one-byte field separator that dataset.separator names (see SEPARATOR_NAMES)."""
    if separator is None:
        return "\t" if path.suffix.lower() == ".tsv" else ","
    value = SEPARATOR_NAMES.get(separator.lower() if len(separator) > 1 else separator, separator)
    if len(value.encode()) != 1:
        hint = " (MovieLens ratings.dat: use dataset=ml-1m or ml-10m)" if separator == "::" else ""
        raise ValueError(
            f"dataset.separator must be one character or one of {', '.join(SEPARATOR_NAMES)}; "
            f"got {separator!r}{hint}"
        )
    return value


def _separator_hint(path: Path, separator: str) -> str:
    """' It contains tabs: try dataset.separator=tab.' when the first line has another common separator."""
    with open(path, encoding="utf-8", errors="replace") as file:
        first_line = file.readline()
    counts = {}
    for name, value in SEPARATOR_NAMES.items():
        if value != separator and value not in counts.values():
            counts[name] = first_line.count(value)
    name = max(counts, key=counts.get)
    if counts[name] == 0:
        return ""
    return f" Its first line has {counts[name]} {name} characters: try dataset.separator={name}."


def read_grouplens_ratings(path: Path, ratings_format: RatingsFormat) -> pl.DataFrame:
    """Parse a GroupLens ratings file (`ratings_format`) into RAW_SCHEMA columns, in file order."""
    origin = Origin(path, f"{ratings_format.description} (does dataset.name match this file?)", first_line=1)
    require_text_file(path, f"the {ratings_format.file_name} of a MovieLens release")
    try:
        lines = pl.read_csv(
            path, has_header=False, separator=_LINE_SEPARATOR, quote_char=None, schema={"line": pl.String}
        )["line"]
    except pl.exceptions.NoDataError as error:
        raise DataError(f"{path} is empty. Expected {ratings_format.description}.") from error
    except pl.exceptions.PolarsError as error:
        raise DataError(f"could not read {path} as text lines: {error}") from error
    if len(lines) == 0:
        raise DataError(f"{path} is empty. Expected {ratings_format.description}.")
    data_start = 0
    if ratings_format.header is not None:
        if lines[0] != ratings_format.header:
            raise origin.error(0, f"found {lines[0]!r} where the header was expected")
        data_start = 1
    rows = pl.int_range(data_start, len(lines), eager=True, dtype=pl.Int64).filter(
        lines.slice(data_start).is_not_null()  # blank lines
    )
    fields = lines.gather(rows).str.split(ratings_format.separator)
    wrong_count = (fields.list.len() != 4).arg_true()
    if len(wrong_count):
        row = rows[wrong_count[0]]
        raise origin.error(
            row, f"{lines[row]!r} does not have 4 fields separated by {ratings_format.separator!r}"
        )
    return pl.DataFrame(
        {
            "user": to_integers(fields.list.get(0), "user id", origin, rows),
            "item": to_integers(fields.list.get(1), "item id", origin, rows),
            "timestamp": to_integers(fields.list.get(3), "timestamp", origin, rows),
            "rating": to_floats(fields.list.get(2), "rating", origin, rows),
        },
        schema=RAW_SCHEMA,
    )


def _check_checksum(checksum: str) -> None:
    try:
        parse_checksum(checksum)
    except ValueError as error:
        raise ValueError(f"dataset.checksum: {error}") from error
