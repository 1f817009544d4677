"""dataset=amazon (JSON lines, plain or .gz) and dataset.id_type=string for files: ids kept verbatim,
one-line errors that name the line."""

from __future__ import annotations

import json

import polars as pl
import pytest

from helpers import write_lines
from seqrec.data.amazon import AmazonReviews
from seqrec.data.sources import InteractionFile
from seqrec.data.types import DataError

REVIEWS = [
    {
        "reviewerID": "A2SUAM1J3GNN3B",
        "asin": "0000013714",
        "overall": 5.0,
        "unixReviewTime": 1355616000,
        "reviewText": "long text",
        "helpful": [2, 3],
        "style": {"Format:": " Hardcover"},
    },
    {"reviewerID": "A18C9SNLZWVBIE", "asin": "B00004Y2UT", "overall": 3.0, "unixReviewTime": 1212883200},
    {
        "reviewerID": "A2SUAM1J3GNN3B",
        "asin": "B00004Y2UT",
        "overall": 4,
        "unixReviewTime": 1212883200,
        "vote": "2",
    },
]


@pytest.mark.parametrize("name", ["reviews.json", "reviews.json.gz", "Electronics_5.json.gz"])
def test_reads_the_four_fields_in_file_order_and_ignores_the_rest(tmp_path, name):
    lines = [json.dumps(REVIEWS[0]), "", json.dumps(REVIEWS[1]), json.dumps(REVIEWS[2])]  # a blank line
    raw = AmazonReviews(str(write_lines(tmp_path / name, lines))).load()
    assert raw.columns == ["user", "item", "timestamp", "rating"]
    assert raw.schema["user"] == raw.schema["item"] == pl.String
    assert raw.rows() == [
        ("A2SUAM1J3GNN3B", "0000013714", 1355616000, 5.0),
        ("A18C9SNLZWVBIE", "B00004Y2UT", 1212883200, 3.0),
        ("A2SUAM1J3GNN3B", "B00004Y2UT", 1212883200, 4.0),
    ]


def test_fingerprint_follows_the_file(tmp_path):
    path = write_lines(tmp_path / "reviews.json", [json.dumps(REVIEWS[0])])
    before = AmazonReviews(str(path)).fingerprint()
    write_lines(path, [json.dumps(REVIEWS[0]), json.dumps(REVIEWS[1])])
    assert AmazonReviews(str(path)).fingerprint() != before


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"asin": "B1", "overall": 5.0, "unixReviewTime": 3}', "line 3: no reviewerID"),
        (
            '{"reviewerID": "A", "asin": "B1", "overall": 5.0, "unixReviewTime": "3"}',
            "line 3: unixReviewTime is '3'",
        ),
        ('{"reviewerID": "A", "asin": "", "overall": 5.0, "unixReviewTime": 3}', "line 3: asin is ''"),
        ("{'reviewerID': 'A', 'asin': 'B'}", "line 3: not valid JSON.*Python dict literal"),
        ("user,item,timestamp", "line 3: not valid JSON"),
        ("[1, 2]", "line 3: a JSON list, not an object"),
    ],
)
@pytest.mark.parametrize("suffix", [".json", ".json.gz"])
def test_bad_lines_are_named(tmp_path, bad_line, message, suffix):
    path = write_lines(
        tmp_path / f"reviews{suffix}", [json.dumps(REVIEWS[0]), json.dumps(REVIEWS[1]), bad_line]
    )
    with pytest.raises(DataError, match=message) as error:
        AmazonReviews(str(path)).load()
    assert "\n" not in str(error.value) and "Expected one JSON object per line" in str(error.value)


def test_paths_that_cannot_be_review_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        AmazonReviews(str(tmp_path / "missing.json"))
    with pytest.raises(DataError, match="is a folder"):
        AmazonReviews(str(tmp_path))
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.json"):
        AmazonReviews(str(empty)).load()
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage\x00")
    with pytest.raises(DataError, match="binary.json"):
        AmazonReviews(str(binary)).load()


def test_file_source_reads_string_ids_verbatim(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user,item,timestamp\nu-1,007,5\n u-2 ,B00X,6\n42,7,7\n")
    raw = InteractionFile(str(path), id_type="string").load()
    assert raw.schema["user"] == raw.schema["item"] == pl.String
    assert raw.select("user", "item").rows() == [("u-1", "007"), ("u-2", "B00X"), ("42", "7")]
    with pytest.raises(DataError, match=r"'u-1' is not a valid user id.*dataset\.id_type=string"):
        InteractionFile(str(path)).load()
    assert (
        InteractionFile(str(path)).fingerprint() != InteractionFile(str(path), id_type="string").fingerprint()
    )
    with pytest.raises(ValueError, match="dataset.id_type"):
        InteractionFile(str(path), id_type="text")


def test_file_source_string_ids_from_parquet(tmp_path):
    path = tmp_path / "log.parquet"
    pl.DataFrame({"user": [1, 2], "item": ["007", "B1"], "timestamp": [1, 2]}).write_parquet(path)
    raw = InteractionFile(str(path), id_type="string").load()
    assert raw.select("user", "item").rows() == [("1", "007"), ("2", "B1")]
