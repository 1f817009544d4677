"""Sources: GroupLens native formats from a zip, a folder, the ratings file or a (local) download, and
InteractionFile CSV/TSV/parquet logs; malformed inputs give errors that name the file and the line."""

from __future__ import annotations

import errno
import hashlib
import http.server
import os
import shutil
import socket
import threading
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

import seqrec.data.sources
from seqrec.data.parsing import content_digest, require_text_file
from seqrec.data.sources import GROUPLENS_RELEASES, GroupLens, InteractionFile
from seqrec.data.types import RAW_SCHEMA, DataError

EVENTS = [(3, 20, 4.0, 978300760), (1, 10, 5.0, 978300100), (3, 7, 3.5, 978300760), (2, 10, 1.0, 978000000)]
"""(user, item, rating, timestamp) in file order; ratings with halves as in ml-10m and later."""


def expected_frame(events=EVENTS) -> pl.DataFrame:
    users, items, ratings, timestamps = zip(*events, strict=True)
    return pl.DataFrame(
        {"user": users, "item": items, "timestamp": timestamps, "rating": ratings}, schema=RAW_SCHEMA
    )


def u_data(events=EVENTS) -> str:
    return "".join(f"{u}\t{i}\t{r:g}\t{t}\n" for u, i, r, t in events)


def ratings_dat(events=EVENTS) -> str:
    return "".join(f"{u}::{i}::{r:g}::{t}\n" for u, i, r, t in events)


def ratings_csv(events=EVENTS) -> str:
    return "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r:g},{t}\n" for u, i, r, t in events)


# name -> (path of the ratings file inside the official zip, its text)
NATIVE = {
    "ml-100k": ("ml-100k/u.data", u_data),
    "ml-1m": ("ml-1m/ratings.dat", ratings_dat),
    "ml-10m": ("ml-10M100K/ratings.dat", ratings_dat),
    "ml-20m": ("ml-20m/ratings.csv", ratings_csv),
    "ml-25m": ("ml-25m/ratings.csv", ratings_csv),
    "ml-latest-small": ("ml-latest-small/ratings.csv", ratings_csv),
}


def write_release(folder: Path, name: str) -> tuple[Path, Path]:
    """A fake release of `name`: the zip (with a movies file beside the ratings) and its extracted folder."""
    member, render = NATIVE[name]
    extracted = folder / "extracted"
    (extracted / member).parent.mkdir(parents=True)
    (extracted / member).write_text(render())
    zip_path = folder / f"{name}.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr(member, render())
        archive.writestr(str(Path(member).parent / "movies.dat"), "1::Toy Story (1995)::Animation\n")
    return zip_path, extracted


@pytest.mark.parametrize("name", sorted(NATIVE))
def test_grouplens_reads_native_format_from_zip_folder_and_file(tmp_path, name):
    zip_path, extracted = write_release(tmp_path, name)
    ratings_file = extracted / NATIVE[name][0]
    paths = [zip_path, extracted, ratings_file.parent, ratings_file]  # folder: release root or one level up
    for path in paths:
        source = GroupLens(
            name, path=str(path), url="http://127.0.0.1:9/unused.zip", cache_dir=str(tmp_path / "c")
        )
        raw = source.load()
        assert raw.schema == pl.Schema(RAW_SCHEMA)
        assert raw.equals(expected_frame()), path


@pytest.fixture
def served_zip(tmp_path):
    """An ml-1m zip served by a local HTTP server; yields (url, zip bytes)."""
    (tmp_path / "release").mkdir()
    zip_path, _ = write_release(tmp_path / "release", "ml-1m")
    body = zip_path.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/ml-1m.zip", body
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/ml-1m.zip"


def test_grouplens_downloads_checks_and_extracts_into_cache(served_zip, tmp_path):
    url, body = served_zip
    checksum = "md5:" + hashlib.md5(body).hexdigest()
    cache = tmp_path / "cache"
    raw = GroupLens("ml-1m", url=url, checksum=checksum, cache_dir=str(cache)).load()
    assert raw.equals(expected_frame())
    assert (cache / "ml-1m.zip").read_bytes() == body
    assert (cache / "ml-1m" / "ratings.dat").read_text() == ratings_dat()
    # A second source with a dead URL reuses the verified zip: no network.
    again = GroupLens("ml-1m", url=closed_port_url(), checksum=checksum, cache_dir=str(cache)).load()
    assert again.equals(expected_frame())


def test_grouplens_download_with_wrong_checksum_fails(served_zip, tmp_path):
    url, _ = served_zip
    source = GroupLens("ml-1m", url=url, checksum="md5:" + "0" * 32, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataError, match="corrupted"):
        source.load()
    assert not (tmp_path / "cache" / "ml-1m.zip").exists()


def test_grouplens_cache_dir_expands_home_and_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SEQREC_TEST_DIR", "sub")
    source = GroupLens("ml-1m", cache_dir="~/$SEQREC_TEST_DIR/cache")
    assert source.cache_dir == tmp_path / "home" / "sub" / "cache"


def test_grouplens_defaults_to_official_url_and_published_md5():
    source = GroupLens("ml-1m")
    assert source.url == "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
    assert source.checksum == "md5:c4d9eecfca2ab87c1945afe126590906"
    assert GroupLens("ml-latest-small").checksum is None  # updated in place upstream
    assert GroupLens("ml-1m", url="http://mirror/ml-1m.zip").checksum is None  # a custom url has no default
    assert set(GROUPLENS_RELEASES) == set(NATIVE)


def test_grouplens_argument_errors(tmp_path):
    with pytest.raises(
        DataError, match="dataset.name must be one of ml-100k, ml-1m, .*ml-latest-small.*'ml-2m'"
    ):
        GroupLens("ml-2m")
    with pytest.raises(ValueError, match="dataset.checksum"):
        GroupLens("ml-1m", checksum="c4d9eecfca2ab87c1945afe126590906")
    with pytest.raises(DataError, match="dataset.path=.*does not exist"):
        GroupLens("ml-1m", path=str(tmp_path / "missing.zip"))
    with pytest.raises(DataError, match="folder without ratings.dat"):
        GroupLens("ml-1m", path=str(tmp_path)).load()


def test_constructor_does_not_read_data(tmp_path):
    garbage = tmp_path / "ratings.dat"
    garbage.write_text("this is not a ratings file\n")
    source = GroupLens("ml-1m", path=str(garbage))  # fine until load()
    with pytest.raises(DataError):
        source.load()


def load_ml1m(tmp_path: Path, text: str, name: str = "ml-1m", file_name: str = "ratings.dat") -> pl.DataFrame:
    path = tmp_path / file_name
    path.write_text(text)
    return GroupLens(name, path=str(path)).load()


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (
            "1::2::5::100\n3\t4\t5\t200\n",
            r"ratings.dat, line 2: '3\\t4\\t5\\t200' does not have 4 fields separated by '::'",
        ),
        ("1::2::5::100\n1::2::5\n", r"line 2: '1::2::5' does not have 4 fields"),
        ("1::2::5::100\n1::2::5::100::7\n", r"line 2: .* does not have 4 fields"),
        ("1::2::5::100\n\n1::abc::5::100\n", r"line 3: 'abc' is not a valid item id"),
        ("x1::2::5::100\n", r"line 1: 'x1' is not a valid user id"),
        ("1::2::5::100\n1::2::5::1e9\n", r"line 2: '1e9' is not a valid timestamp"),
        ("1::2::five::100\n", r"line 1: 'five' is not a valid rating"),
        ("1::2.5::5::100\n", r"line 1: '2.5' is not a valid item id"),
        ("1::::5::100\n", r"line 1: empty item id"),
    ],
)
def test_malformed_grouplens_lines_name_file_line_and_format(tmp_path, text, pattern):
    with pytest.raises(DataError, match=pattern) as error:
        load_ml1m(tmp_path, text)
    assert "user::item::rating::timestamp" in str(error.value)


def test_grouplens_csv_header_is_checked(tmp_path):
    with pytest.raises(DataError, match=r"ratings.csv, line 1: found '1,2,3.5,100' where the header"):
        load_ml1m(tmp_path, "1,2,3.5,100\n", name="ml-20m", file_name="ratings.csv")


def test_grouplens_empty_file(tmp_path):
    with pytest.raises(DataError, match="is empty"):
        load_ml1m(tmp_path, "")


def test_grouplens_skips_blank_lines_and_crlf(tmp_path):
    raw = load_ml1m(tmp_path, "1::10::5::978300100\r\n\r\n2::10::1::978000000\r\n")
    assert raw.equals(expected_frame([(1, 10, 5.0, 978300100), (2, 10, 1.0, 978000000)]))


def test_grouplens_fingerprint_tracks_the_content(tmp_path):
    zip_path, extracted = write_release(tmp_path, "ml-1m")
    source = GroupLens("ml-1m", path=str(zip_path))
    before = source.fingerprint()
    assert before == GroupLens("ml-1m", path=str(zip_path)).fingerprint()
    assert str(zip_path) not in before and content_digest(zip_path) in before
    ratings = extracted / "ml-1m" / "ratings.dat"
    folder_print = GroupLens("ml-1m", path=str(extracted)).fingerprint()
    assert content_digest(ratings) in folder_print
    os.utime(zip_path, ns=(0, 10**18))  # a new modification time alone changes nothing
    assert source.fingerprint() == before
    moved = tmp_path / "elsewhere.zip"
    shutil.copy(zip_path, moved)  # the same bytes elsewhere are the same data
    assert GroupLens("ml-1m", path=str(moved)).fingerprint() == before
    rewrite_keeping_size_and_mtime(ratings, ratings.read_bytes().replace(b"::5::", b"::4::", 1))
    assert GroupLens("ml-1m", path=str(extracted)).fingerprint() != folder_print
    downloaded = GroupLens("ml-1m", cache_dir=str(tmp_path)).fingerprint()
    assert "c4d9eecfca2ab87c1945afe126590906" in downloaded
    assert GroupLens("ml-100k").fingerprint() != downloaded


def rewrite_keeping_size_and_mtime(path: Path, content: bytes) -> None:
    """What `cp -p`, `rsync -a` or `tar x` do to a file: new bytes, the old size and modification time."""
    stat = path.stat()
    assert len(content) == stat.st_size
    path.write_bytes(content)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns


def write_log(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_interaction_file_csv_with_custom_columns(tmp_path):
    path = write_log(
        tmp_path / "log.csv", "uid,extra,iid,when,stars\n3,x,20,978300760,4\n1,y,10,978300100,5\n"
    )
    source = InteractionFile(path, user_column="uid", item_column="iid", timestamp_column="when")
    raw = source.load()
    assert raw.schema == pl.Schema(RAW_SCHEMA)
    assert raw["user"].to_list() == [3, 1] and raw["item"].to_list() == [20, 10]
    assert raw["timestamp"].to_list() == [978300760, 978300100]
    assert raw["rating"].null_count() == 2
    rated = InteractionFile(
        path, user_column="uid", item_column="iid", timestamp_column="when", rating_column="stars"
    )
    assert rated.load()["rating"].to_list() == [4.0, 5.0]


def test_interaction_file_tsv_without_header(tmp_path):
    path = write_log(tmp_path / "log.tsv", "1\t10\t100\n2\t20\t200\n")
    source = InteractionFile(
        path,
        user_column="column_1",
        item_column="column_2",
        timestamp_column="column_3",
        separator="\t",
        has_header=False,
    )
    assert source.load().select("user", "item", "timestamp").rows() == [(1, 10, 100), (2, 20, 200)]


def test_interaction_file_datetime_strings_become_unix_seconds(tmp_path):
    path = write_log(
        tmp_path / "log.csv", "user,item,timestamp\n1,2,2001-01-01 00:00:10\n1,3,2001-01-02 00:00:00\n"
    )
    expected = [int(datetime(2001, 1, 1, 0, 0, 10, tzinfo=UTC).timestamp()), 978393600]
    assert InteractionFile(path).load()["timestamp"].to_list() == expected


def test_interaction_file_parquet_with_datetimes_and_whole_floats(tmp_path):
    path = tmp_path / "log.parquet"
    pl.DataFrame(
        {
            "user": [1.0, 2.0],
            "item": pl.Series([10, 20], dtype=pl.UInt32),
            "timestamp": [datetime(1970, 1, 1, 0, 1), datetime(2001, 1, 1)],
            "score": [4.5, 3],
        }
    ).write_parquet(path)
    raw = InteractionFile(str(path), rating_column="score").load()
    assert raw.rows() == [(1, 10, 60, 4.5), (2, 20, 978307200, 3.0)]
    assert raw.schema == pl.Schema(RAW_SCHEMA)


def test_interaction_file_parquet_rejects_fractional_ids(tmp_path):
    path = tmp_path / "log.parquet"
    pl.DataFrame({"user": [1.0, 2.5], "item": [1, 2], "timestamp": [1, 2]}).write_parquet(path)
    with pytest.raises(DataError, match=r"row 2: 2.5 is not an integer user id"):
        InteractionFile(str(path)).load()


def test_interaction_file_missing_columns_lists_available_and_keys(tmp_path):
    path = write_log(tmp_path / "log.csv", "userId,movieId,timestamp\n1,2,3\n")
    with pytest.raises(DataError) as error:
        InteractionFile(path).load()
    message = str(error.value)
    assert "['userId', 'movieId', 'timestamp']" in message
    assert "dataset.user_column (now 'user')" in message and "dataset.item_column (now 'item')" in message
    tab_separated = write_log(tmp_path / "log.csv", "user\titem\ttimestamp\n1\t2\t3\n")
    with pytest.raises(DataError, match="Only one column was found: is dataset.separator=',' right") as error:
        InteractionFile(tab_separated).load()
    assert str(error.value).endswith("Its first line has 2 tab characters: try dataset.separator=tab.")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("user,item,timestamp\n1,2,3\n1,2.5,4\n", r"log.csv, line 3: '2.5' is not a valid item id"),
        ("user,item,timestamp\n1,2,3\n\n1,,4\n", r"line 4: empty item id"),
        (
            "user,item,timestamp\n1,2,3\n1,2,soon\n",
            r"line 3: 'soon' is not an integer; timestamps must be all integers \(unix seconds\) or",
        ),
        ("user,item,timestamp\n1,2,3\n4,5\n", r"line 3: empty timestamp"),
    ],
)
def test_interaction_file_malformed_values(tmp_path, text, pattern):
    with pytest.raises(DataError, match=pattern):
        InteractionFile(write_log(tmp_path / "log.csv", text)).load()


def test_interaction_file_skips_blank_lines(tmp_path):
    path = write_log(tmp_path / "log.csv", "user,item,timestamp\n1,2,3\n\n4,5,6\n")
    assert InteractionFile(path).load().select("user", "item", "timestamp").rows() == [(1, 2, 3), (4, 5, 6)]


def test_interaction_file_argument_errors(tmp_path):
    good = write_log(tmp_path / "log.csv", "user,item,timestamp\n1,2,3\n")
    with pytest.raises(DataError, match="dataset.path must be a delimited text file or a .parquet file"):
        InteractionFile(str(tmp_path))
    with pytest.raises(DataError, match="does not exist"):
        InteractionFile(str(tmp_path / "nope.csv"))
    with pytest.raises(ValueError, match=r"dataset.separator must be one character .*use dataset=ml-1m"):
        InteractionFile(good, separator="::")
    with pytest.raises(ValueError, match="dataset.separator must be one character or one of tab, "):
        InteractionFile(good, separator="tabs")
    with pytest.raises(ValueError, match="dataset.checksum"):
        InteractionFile(good, checksum="0" * 32)
    with pytest.raises(ValueError, match="must be distinct"):
        InteractionFile(good, item_column="user")


def test_interaction_file_fingerprint_includes_content_and_options(tmp_path):
    path = write_log(tmp_path / "log.csv", "user,item,timestamp\n1,2,3\n")
    base = InteractionFile(path).fingerprint()
    assert content_digest(Path(path)) in base and InteractionFile(path).fingerprint() == base
    assert InteractionFile(path, rating_column="r").fingerprint() != base
    write_log(tmp_path / "log.csv", "user,item,timestamp\n1,2,3\n4,5,6\n")
    assert InteractionFile(path).fingerprint() != base


def test_interaction_file_fingerprint_sees_a_rewrite_with_the_same_size_and_mtime(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user,item,timestamp\n1,2,3\n")
    before = InteractionFile(str(path)).fingerprint()
    rewrite_keeping_size_and_mtime(path, b"user,item,timestamp\n1,7,3\n")
    assert InteractionFile(str(path)).fingerprint() != before


@pytest.mark.parametrize(
    ("separator", "character"),
    [("\\t", "\t"), ("tab", "\t"), ("TAB", "\t"), ("\t", "\t"), (";", ";"), ("semicolon", ";"), ("|", "|")],
)
def test_separators_as_users_type_them(tmp_path, separator, character):
    """`\\t` is what `dataset.separator=\\t` or `dataset.separator="\\t"` gives on a command line."""
    path = write_log(
        tmp_path / "log.csv", f"user{character}item{character}timestamp\n1{character}2{character}3\n"
    )
    assert InteractionFile(path, separator=separator).load().select("user", "item", "timestamp").rows() == [
        (1, 2, 3)
    ]


@pytest.mark.parametrize("suffix", [".tsv", ".TSV"])
def test_tsv_suffix_implies_a_tab(tmp_path, suffix):
    path = write_log(tmp_path / f"log{suffix}", "user\titem\ttimestamp\n1\t2\t3\n")
    assert InteractionFile(path).separator == "\t" and InteractionFile(path).load()["item"].to_list() == [2]
    assert InteractionFile(path, separator=",").separator == ","  # an explicit separator wins


@pytest.mark.parametrize("name", ["u.data", "ratings.dat", "log.txt", "events.log", "no_suffix"])
def test_other_suffixes_are_read_as_delimited_text(tmp_path, name):
    path = write_log(tmp_path / name, "1\t10\t100\n2\t20\t200\n")
    source = InteractionFile(
        path,
        user_column="column_1",
        item_column="column_2",
        timestamp_column="column_3",
        separator="tab",
        has_header=False,
    )
    assert source.load().select("user", "item", "timestamp").rows() == [(1, 10, 100), (2, 20, 200)]


def test_binary_garbage_gets_a_plain_message(tmp_path):
    garbage = bytes(range(256)) * 40
    for name in ("log.csv", "log.data"):
        (tmp_path / name).write_bytes(garbage)
        with pytest.raises(
            DataError, match=r"is not a text file \(binary data: a zero byte at byte 0\); dataset.path must"
        ):
            InteractionFile(str(tmp_path / name)).load()
    (tmp_path / "u.data").write_bytes(garbage)
    with pytest.raises(DataError, match="not a text file.*must be the u.data of a MovieLens release"):
        GroupLens("ml-100k", path=str(tmp_path / "u.data")).load()
    (tmp_path / "latin.csv").write_bytes("user,item,timestamp\n1,2,3\n\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"is not UTF-8 text \(byte 26 is not UTF-8\).*iconv -f latin1"):
        InteractionFile(str(tmp_path / "latin.csv")).load()
    (tmp_path / "log.parquet").write_bytes(garbage)
    with pytest.raises(DataError, match="is not a parquet file") as error:
        InteractionFile(str(tmp_path / "log.parquet")).load()
    assert "polars" not in str(error.value).lower() or "write it with polars" in str(error.value)


def md5_of(path: Path) -> str:
    return "md5:" + hashlib.md5(path.read_bytes()).hexdigest()


def test_local_official_zip_is_checked_against_the_published_md5(tmp_path):
    zip_path, extracted = write_release(tmp_path, "ml-1m")  # not the real zip: its md5 differs
    source = GroupLens("ml-1m", path=str(zip_path), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataError) as error:
        source.load()
    message = str(error.value)
    assert (
        "does not match the official ml-1m.zip (GroupLens publishes md5:c4d9eecfca2ab87c1945afe126590906)"
        in message
    )
    assert message.endswith(f"if you trust this copy pass dataset.checksum={md5_of(zip_path)}")
    accepted = GroupLens(
        "ml-1m", path=str(zip_path), checksum=md5_of(zip_path), cache_dir=str(tmp_path / "cache")
    )
    assert accepted.load().equals(expected_frame())
    # The extracted ratings file has no published checksum: read as is.
    assert GroupLens("ml-1m", path=str(extracted)).load().equals(expected_frame())


def test_explicit_checksum_is_verified_for_a_local_path(tmp_path):
    _, extracted = write_release(tmp_path, "ml-1m")
    ratings = extracted / "ml-1m" / "ratings.dat"
    assert GroupLens("ml-1m", path=str(ratings), checksum=md5_of(ratings)).load().equals(expected_frame())
    with pytest.raises(
        DataError, match=f"does not match dataset.checksum=md5:0+: its md5 is {md5_of(ratings)[4:]}"
    ):
        GroupLens("ml-1m", path=str(ratings), checksum="md5:" + "0" * 32).load()
    with pytest.raises(
        DataError, match="dataset.checksum is the digest of one file, but dataset.path=.* folder"
    ):
        GroupLens("ml-1m", path=str(extracted), checksum=md5_of(ratings))
    log = Path(write_log(tmp_path / "log.csv", "user,item,timestamp\n1,2,3\n"))
    assert InteractionFile(str(log), checksum=md5_of(log)).load()["item"].to_list() == [2]
    sha = "sha256:" + "1" * 64
    with pytest.raises(
        DataError, match="Check that dataset.path is the right file; if it is, pass dataset.checksum=sha256:"
    ):
        InteractionFile(str(log), checksum=sha).load()
    assert InteractionFile(str(log), checksum=sha).fingerprint() != InteractionFile(str(log)).fingerprint()


def test_text_check_accepts_a_character_cut_by_the_first_chunk(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("u" + "é" * 40_000, encoding="utf-8")  # byte 65536 falls inside an "é"
    require_text_file(path, "text")  # no error
    path.write_bytes(b"u" + "é".encode() * 40_000 + b"\xff")
    require_text_file(path, "text")  # beyond the checked head: left to the parser


def test_grouplens_without_a_cache_folder_says_what_to_do(tmp_path):
    zip_path, extracted = write_release(tmp_path, "ml-1m")
    for path in (None, str(zip_path)):
        with pytest.raises(
            DataError, match="needs a folder for the zip and its ratings, but cache_dir is null"
        ):
            GroupLens("ml-1m", path=path, cache_dir=None)
    assert GroupLens("ml-1m", path=str(extracted), cache_dir=None).load().equals(expected_frame())


def test_a_full_disk_while_unpacking_names_the_cache_folder(tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    zip_path, _ = write_release(tmp_path, "ml-1m")
    monkeypatch.setattr(seqrec.data.sources, "extract_member", full_disk)
    source = GroupLens("ml-1m", path=str(zip_path), checksum=md5_of(zip_path), cache_dir=str(tmp_path / "c"))
    with pytest.raises(
        DataError, match=r"could not write into the cache folder \(cache_dir\) .*/c: No space left"
    ):
        source.load()
