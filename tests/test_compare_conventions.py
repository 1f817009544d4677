"""`compare --exclude-seen true|false` on fabricated runs that recorded both conventions, and a real run
pair: both conventions in one evaluation pass equal two separate runs exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from compare_records import metrics_of_ranks, ranks_frame, sample_keys, write_run
from seqrec import compare


def _sweep(root: Path, with_other: bool = True) -> None:
    """bce and softmax x 3 seeds, primary convention exclude_seen=false; excluding seen items softmax
    gains 60 hits, bce none, so the convention changes the verdict."""
    rng = np.random.default_rng(2)
    users, items = sample_keys(600)
    for seed in range(3):
        base = np.where(rng.random(600) < 0.3, 1, 40)
        for objective in ("bce", "softmax"):
            other = base.copy()
            if objective == "softmax":
                other[rng.choice(np.flatnonzero(base == 40), size=60 + seed, replace=False)] = 1
            frame = ranks_frame(users, items, base)
            if with_other:
                frame = frame.with_columns(rank_other=pl.Series(other, dtype=pl.Int64))
            run_dir = write_run(
                root / f"{objective}{seed}",
                objective,
                seed,
                ranks=frame,
                test=metrics_of_ranks(base),
                config={"evaluation": {"exclude_seen": False}},
            )
            if with_other:
                record = json.loads((run_dir / "run.json").read_text())
                record["metrics"]["test_other"] = metrics_of_ranks(other)
                (run_dir / "run.json").write_text(json.dumps(record))


def test_exclude_seen_picks_the_other_convention_everywhere(tmp_path: Path):
    _sweep(tmp_path)
    scan = compare.scan_run_dirs(tmp_path)
    primary = compare.compare(scan, [str(tmp_path)], baseline="bce")
    assert primary.significance["difference"][0] == 0  # same ranks under the primary convention
    same = compare.compare(scan, [str(tmp_path)], baseline="bce", exclude_seen=False)
    assert same.significance["difference"][0] == 0
    other = compare.compare(scan, [str(tmp_path)], baseline="bce", exclude_seen=True)
    row = other.significance.row(0, named=True)
    assert row["method"] == "seeds+samples" and row["verdict"].startswith("softmax beats bce on dcg@10")
    softmax = other.table.filter(pl.col("objective") == "softmax")["dcg@10"][0]
    recorded = [json.loads((tmp_path / f"softmax{s}" / "run.json").read_text()) for s in range(3)]
    assert softmax == pytest.approx(np.mean([r["metrics"]["test_other"]["dcg@10"] for r in recorded]))


def test_runs_without_the_other_convention_say_so_in_one_line(tmp_path: Path, capsys):
    _sweep(tmp_path, with_other=False)
    assert compare.main([str(tmp_path), "--exclude-seen", "true"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "evaluated with evaluation.exclude_seen=false only" in error
    assert "re-run it with this seqrec" in error
    assert compare.main([str(tmp_path), "--exclude-seen", "maybe"]) == 1
    assert "--exclude-seen must be true or false" in capsys.readouterr().err


@pytest.mark.slow
def test_both_conventions_in_one_run_equal_two_separate_runs(tmp_path: Path):
    from helpers import SMOKE, run_in_process

    records = {
        value: run_in_process([*SMOKE, "loss=bce", f"evaluation.exclude_seen={value}"], tmp_path / value)
        for value in ("false", "true")
    }
    ranks = {value: pl.read_parquet(tmp_path / value / "test_ranks.parquet") for value in records}
    for value, other in (("false", "true"), ("true", "false")):
        assert records[value]["metrics"]["test_other"] == records[other]["metrics"]["test"]
        assert records[value]["metrics"]["best_valid_other"] == records[other]["metrics"]["best_valid"]
        assert ranks[value]["rank_other"].to_list() == ranks[other]["rank"].to_list()
    assert records["false"]["metrics"]["test"] != records["true"]["metrics"]["test"]
