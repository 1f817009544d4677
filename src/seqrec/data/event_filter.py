"""`preprocess.keep`: keep only the events whose columns hold chosen values, e.g. the purchases and
add-to-carts of a log with an event-type column: `'preprocess.keep={event_type: [purchase, add_to_cart]}'`.

Values are compared as text (an integer column's 3 matches "3"), surrounding spaces ignored; several
columns must all match. Weighting events by their type is out of scope: every kept event counts the same.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from seqrec.data.types import DataError

log = logging.getLogger(__name__)


def keep_values(keep: Mapping | None) -> dict[str, list[str]]:
    """{column: [value, ...]} as plain text; a single value counts as a list of one. ValueError naming
    preprocess.keep when a column's list is empty or the setting is not a mapping."""
    if not keep:
        return {}
    if not isinstance(keep, Mapping):
        raise ValueError(f"preprocess.keep must map columns to lists of values to keep, got {keep!r}")
    values = {}
    for column, chosen in keep.items():
        chosen = [chosen] if isinstance(chosen, str | int | float) else list(chosen)
        if not chosen:
            raise ValueError(f"preprocess.keep.{column} is empty: list the values to keep, or drop the key")
        values[str(column)] = [str(value).strip() for value in chosen]
    return values


def kept_rows(table: pl.DataFrame, keep: dict[str, list[str]], path: Path) -> pl.DataFrame:
    """The rows of `table` whose every `keep` column holds one of its values; DataError if none is left."""
    matches = [
        pl.col(column).cast(pl.String).str.strip_chars().is_in(values) for column, values in keep.items()
    ]
    kept = table.filter(pl.all_horizontal(matches))
    if kept.height == 0:
        column = next(iter(keep))
        seen = (
            table[column].cast(pl.String).str.strip_chars().value_counts(sort=True).head(8)[column].to_list()
        )
        raise DataError(
            f"preprocess.keep={keep} keeps none of the {table.height} events of {path}; {column} holds e.g. "
            f"{seen}: list some of those values"
        )
    log.info("preprocess.keep=%s kept %d of %d events", keep, kept.height, table.height)
    return kept
