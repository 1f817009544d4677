"""Files written whole or not at all (seqrec.files.atomic_path): a failed write leaves the old file and no
temporary one; a folder replaces a folder; two writers of one file never share a temporary file."""

from __future__ import annotations

import pytest

from seqrec.files import atomic_path, write_text_atomic


def test_a_finished_write_replaces_the_file_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "run.json"
    target.write_text("old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_half_written_one(tmp_path):
    target = tmp_path / "best.pt"
    target.write_bytes(b"old weights")
    with pytest.raises(OSError, match="disk full"), atomic_path(target) as temp:
        temp.write_bytes(b"half of the new")
        raise OSError("disk full")
    assert target.read_bytes() == b"old weights"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["best.pt"]


def test_a_failed_first_write_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "log.parquet") as temp:
        temp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_folder_replaces_a_folder_whole(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.json").write_text("from an earlier save")
    with atomic_path(target) as temp:
        temp.mkdir()
        (temp / "model.json").write_text("{}")
    assert sorted(path.name for path in target.iterdir()) == ["model.json"]
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.mkdir()
        (temp / "half.json").write_text("")
        raise RuntimeError("the weights could not be copied")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model"]
    assert sorted(path.name for path in target.iterdir()) == ["model.json"]


def test_two_writers_of_one_file_get_temporary_files_of_their_own(tmp_path):
    target = tmp_path / "log.parquet"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second and first.parent == second.parent == tmp_path
        assert first.name.startswith(".log.parquet.") and first.name.endswith(".tmp")
        first.write_text("first")
        second.write_text("second")
    assert target.read_text() in ("first", "second")
    assert [path.name for path in tmp_path.iterdir()] == ["log.parquet"]
