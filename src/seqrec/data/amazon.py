"""Amazon product reviews (McAuley et al.): one JSON object per line, plain or gzip-compressed.

Both public releases (2014: `reviews_Electronics_5.json.gz`; 2018: `Electronics_5.json.gz`) give each
review as a line with `reviewerID`, `asin`, `overall` (the star rating) and `unixReviewTime` (a whole
day, in unix seconds); every other field is ignored. Nothing is downloaded: point dataset.path at the
file. Ids are strings and stay as they are (ASINs such as "0000031852" keep their leading zeros).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl

from seqrec.data.parsing import existing_path, file_content
from seqrec.data.types import RAW_SCHEMA, DataError

FIELDS = {"user": "reviewerID", "item": "asin", "rating": "overall", "timestamp": "unixReviewTime"}
"""RAW_SCHEMA column -> the review field it is read from."""
FIELD_TYPES = {"reviewerID": pl.String, "asin": pl.String, "overall": pl.Float64, "unixReviewTime": pl.Int64}
EXPECTED = (
    "one JSON object per line with reviewerID and asin (strings), overall (a number) and unixReviewTime "
    "(an integer), as in the Amazon review files"
)
_GZIP_MAGIC = b"\x1f\x8b"


class AmazonReviews:
    """An Amazon review file (JSON lines, plain or .gz) as a raw log with string user and item ids."""

    def __init__(self, path: str) -> None:
        self.path = existing_path(path)
        if self.path.is_dir():
            raise DataError(
                f"dataset.path={self.path} is a folder; point it at the review file itself "
                "(e.g. reviews_Electronics_5.json.gz)."
            )

    def load(self) -> pl.DataFrame:
        """The reviews in RAW_SCHEMA columns (user and item as String), in file order."""
        try:
            table = pl.read_ndjson(self.path, schema=FIELD_TYPES)
        except pl.exceptions.PolarsError as error:
            raise self._first_bad_line() or DataError(f"could not read {self.path}: {error}") from error
        if table.height == 0:
            raise DataError(f"{self.path} holds no reviews. Expected {EXPECTED}.")
        missing = pl.any_horizontal(pl.all().is_null()) | pl.any_horizontal(
            pl.col(pl.String).str.strip_chars() == ""
        )
        if table.select(missing.any()).item():
            raise self._first_bad_line() or DataError(
                f"{self.path}: some reviews lack a field. Expected {EXPECTED}."
            )
        return table.select(pl.col(field).alias(column) for column, field in FIELDS.items()).select(
            RAW_SCHEMA.keys()
        )

    def fingerprint(self) -> str:
        return f"AmazonReviews {file_content(self.path)}"

    def _first_bad_line(self) -> DataError | None:
        """The first line that is not a review with the four fields (blank lines are skipped), read with
        Python's json module; None when every line is fine."""
        with _open_text(self.path) as lines:
            try:
                for number, line in enumerate(lines, start=1):
                    if line.strip():
                        problem = _review_problem(line)
                        if problem:
                            return DataError(f"{self.path}, line {number}: {problem}. Expected {EXPECTED}.")
            except (UnicodeDecodeError, OSError, EOFError) as error:
                return DataError(
                    f"{self.path} is not a text file of JSON lines ({error}). Expected {EXPECTED}."
                )
        return None


def _review_problem(line: str) -> str | None:
    try:
        review = json.loads(line)
    except json.JSONDecodeError as error:
        hint = (
            " (a Python dict literal? convert the file to JSON lines first)"
            if line.lstrip()[:2] == "{'"
            else ""
        )
        return f"not valid JSON: {error}{hint}"
    if not isinstance(review, dict):
        return f"a JSON {type(review).__name__}, not an object"
    for field, dtype in FIELD_TYPES.items():
        value = review.get(field)
        if value is None:
            return f"no {field}"
        valid = {
            pl.String: isinstance(value, str) and value.strip() != "",
            pl.Float64: isinstance(value, int | float) and not isinstance(value, bool),
            pl.Int64: isinstance(value, int) and not isinstance(value, bool),
        }[dtype]
        if not valid:
            return f"{field} is {value!r}"
    return None


def _open_text(path: Path):
    with open(path, "rb") as file:
        compressed = file.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rt", encoding="utf-8") if compressed else open(path, encoding="utf-8")
