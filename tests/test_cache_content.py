"""The processed-log cache is keyed by the raw file's content: a file rewritten with the same size and
modification time (`cp -p`, `rsync -a`, `tar x`) is read again, and a pinned dataset.checksum is checked
against the new bytes instead of being skipped on a cache hit."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

import seqrec.data.sources
from seqrec.data.preprocess import load_log
from seqrec.data.sources import GroupLens, InteractionFile
from seqrec.data.types import DataError

OLD = "user,item,timestamp\n" + "".join(f"{u},{i},{10 * u + i}\n" for u in range(1, 5) for i in range(1, 5))
NEW = OLD.replace("4,4,44", "4,3,44").replace("4,3,43", "4,4,43")  # two items of user 4 swapped: same size


def rewrite_like_cp_p(path: Path, text: str) -> None:
    """New bytes under the old size and modification time, as `cp -p`, `rsync -a` or `tar x` leave them."""
    stat = path.stat()
    path.write_text(text)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def user_4_items(log) -> list:
    users = log.user_ids[log.events["user"].to_numpy()]
    return log.item_ids[log.events["item"].to_numpy()[users == 4]].tolist()


def test_a_rewrite_with_the_same_size_and_mtime_is_not_served_from_the_cache(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(OLD)
    cache = str(tmp_path / "cache")
    first = load_log(InteractionFile(str(path)), cache_dir=cache, user_core=1, item_core=1)
    assert user_4_items(first) == [1, 2, 3, 4]
    rewrite_like_cp_p(path, NEW)
    second = load_log(InteractionFile(str(path)), cache_dir=cache, user_core=1, item_core=1)
    assert user_4_items(second) == [1, 2, 4, 3]  # main served [1, 2, 3, 4] from the old cache


def test_the_same_bytes_elsewhere_hit_the_cache(tmp_path, monkeypatch):
    path = tmp_path / "log.csv"
    path.write_text(OLD)
    cache = str(tmp_path / "cache")
    load_log(InteractionFile(str(path)), cache_dir=cache, user_core=1, item_core=1)
    copy = tmp_path / "copy.csv"
    shutil.copy(path, copy)
    monkeypatch.setattr(InteractionFile, "load", lambda self: pytest.fail("a cache hit must not load"))
    load_log(InteractionFile(str(copy)), cache_dir=cache, user_core=1, item_core=1)


def md5(path: Path) -> str:
    return "md5:" + hashlib.md5(path.read_bytes()).hexdigest()


def test_a_pinned_checksum_is_checked_against_a_rewritten_file(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(OLD)
    cache, pinned = str(tmp_path / "cache"), md5(path)
    load_log(InteractionFile(str(path), checksum=pinned), cache_dir=cache, user_core=1, item_core=1)
    rewrite_like_cp_p(path, NEW)
    with pytest.raises(DataError, match=f"does not match dataset.checksum={pinned}: its md5 is"):
        load_log(InteractionFile(str(path), checksum=pinned), cache_dir=cache, user_core=1, item_core=1)


def test_a_pinned_checksum_of_a_grouplens_file_is_checked_after_a_rewrite(tmp_path):
    ratings = tmp_path / "u.data"
    ratings.write_text("".join(f"{u}\t{i}\t5\t{10 * u + i}\n" for u in range(1, 5) for i in range(1, 5)))
    cache, pinned = str(tmp_path / "cache"), md5(ratings)
    source = GroupLens("ml-100k", path=str(ratings), checksum=pinned, cache_dir=cache)
    load_log(source, cache_dir=cache, user_core=1, item_core=1)
    rewrite_like_cp_p(ratings, ratings.read_text().replace("4\t4\t5", "4\t4\t1"))
    with pytest.raises(DataError, match="does not match dataset.checksum"):
        load_log(
            GroupLens("ml-100k", path=str(ratings), checksum=pinned, cache_dir=cache),
            cache_dir=cache,
            user_core=1,
            item_core=1,
        )


def test_a_file_that_changes_while_it_is_read_is_refused_and_not_cached(tmp_path, monkeypatch):
    path = tmp_path / "log.csv"
    path.write_text(OLD)
    read = InteractionFile.load

    def read_then_change(self):
        table = read(self)
        path.write_text(NEW)  # e.g. a copy still in progress
        return table

    monkeypatch.setattr(InteractionFile, "load", read_then_change)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="the raw data changed while seqrec read it"):
        load_log(InteractionFile(str(path)), cache_dir=str(cache), user_core=1, item_core=1)
    assert not list(cache.glob("*.parquet"))


def test_a_download_without_checksum_is_named_by_its_content(tmp_path, monkeypatch):
    """ml-latest-small has no published checksum: its fingerprint hashes the downloaded ratings."""
    ratings = "userId,movieId,rating,timestamp\n1,2,5,100\n"
    extracted = tmp_path / "ml-latest-small" / "ratings.csv"

    def fake_from_zip(self, file_name):
        extracted.parent.mkdir(exist_ok=True)
        extracted.write_text(ratings)
        return extracted

    monkeypatch.setattr(seqrec.data.sources.GroupLens, "_from_zip", fake_from_zip)
    before = GroupLens("ml-latest-small", cache_dir=str(tmp_path)).fingerprint()
    ratings = ratings.replace("1,2,5", "1,3,5")
    assert GroupLens("ml-latest-small", cache_dir=str(tmp_path)).fingerprint() != before
