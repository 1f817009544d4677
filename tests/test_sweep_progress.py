"""The progress line a sweep prints per finished job, from the run records of a fabricated sweep folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

from seqrec.sweep_progress import job_counts, progress_line, swept_overrides


def _job(sweep: Path, name: str, status: str, **fields) -> Path:
    folder = sweep / name
    folder.mkdir(parents=True)
    record = {"status": status, "overrides": fields.pop("overrides", []), **fields}
    (folder / "run.json").write_text(json.dumps(record))
    return folder


def test_a_presets_sweeper_params_count_and_the_command_line_wins(tmp_path: Path):
    """experiment=quick sweeps through hydra.sweeper.params: the total is its 12 jobs, not 1."""
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  sweeper:\n    params:\n      loss: bce,softmax,inbatch,logq\n      seed: 0,1,2\n"
        "  overrides:\n    task:\n    - experiment=quick\n"
    )
    assert swept_overrides(tmp_path) == (["loss", "seed"], 12)
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  sweeper:\n    params:\n      loss: bce,softmax,inbatch,logq\n      seed: 0,1,2\n"
        "  overrides:\n    task:\n    - experiment=quick\n    - seed=5,6\n"
    )
    assert swept_overrides(tmp_path) == (["seed", "loss"], 8)


def test_one_line_per_finished_job_with_the_swept_values_and_counts(tmp_path: Path):
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task:\n"
        "    - loss=bce,softmax\n    - seed=0,1,2\n    - trainer.max_steps=30\n"
    )
    assert swept_overrides(tmp_path) == (["loss", "seed"], 6)
    done = _job(
        tmp_path,
        "a",
        "completed",
        overrides=["loss=bce", "seed=1", "trainer.max_steps=30"],
        config={"trainer": {"select_metric": "dcg@20"}},
        metrics={"best_valid": {"dcg@20": 0.07123}},
        best_step=30,
        wall_seconds=41.2,
    )
    _job(tmp_path, "b", "failed", overrides=["loss=softmax", "seed=0"], error="boom", wall_seconds=3.0)
    alive = {"host": os.uname().nodename, "pid": os.getpid()}
    _job(tmp_path, "c", "running", process=alive)
    assert job_counts(tmp_path)["completed"] == 1
    assert progress_line(done, tmp_path) == (
        "[seqrec sweep] loss=bce seed=1: best valid dcg@20 0.0712 at step 30, 41 s | 1 of 6 done, "
        f"{job_counts(tmp_path)['running']} running, 1 failed"
    )
    failed = progress_line(tmp_path / "b", tmp_path)
    assert failed.startswith("[seqrec sweep] loss=softmax seed=0: failed: boom, 3 s |")
    assert progress_line(tmp_path / "missing", tmp_path) is None
