"""Sweep run folders are named by the swept keys only, shortened with a hash below the file-name limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqrec.fingerprints import BOOKKEEPING_KEYS
from seqrec.run_names import MAX_NAME_CHARS, run_dirname, swept_keys

REPO = Path(__file__).resolve().parents[1]


def test_only_swept_keys_name_the_folder():
    swept = swept_keys(["loss=bce,softmax", "seed=0,1", "trainer.lr=0.001", "evaluation.ks=[5,10,20]"])
    assert swept == {"loss", "seed"}
    job = ["loss=softmax", "seed=1", "trainer.lr=0.001", "evaluation.ks=[5,10,20]"]
    assert run_dirname(job, swept, exclude=set(), job_num=3) == "loss=softmax,seed=1"
    assert swept_keys(["trainer.lr=0.001"], {"loss": "bce,logq"}) == {
        "loss"
    }  # a preset's hydra.sweeper.params
    assert run_dirname(["trainer.lr=0.001"], set(), exclude=set(), job_num=2) == "job2"


@pytest.mark.parametrize("key", [*BOOKKEEPING_KEYS, "logger.mode", "hydra.verbose", "model.dropout"])
def test_bookkeeping_and_excluded_keys_never_name_a_folder_and_names_stay_unique(key):
    """Two jobs that differ only in a left-out key (`trainer.device=cpu,cuda`) get folders of their own."""
    exclude = {"model.dropout"}  # hydra.job.config.override_dirname.exclude_keys
    jobs = [["loss=bce", f"{key}={value}"] for value in ("a", "b")]
    names = [run_dirname(job, {"loss", key}, exclude, job_num) for job_num, job in enumerate(jobs)]
    assert names[0] != names[1] and all(name.startswith("loss=bce-h") and key not in name for name in names)
    assert [run_dirname([f"{key}={value}"], {key}, exclude, num) for num, value in enumerate("ab")] == [
        "job0",
        "job1",
    ]
    assert run_dirname(["loss=bce", f"{key}=a"], {"loss"}, exclude, 0) == "loss=bce"  # not swept: no hash


def test_long_names_are_shortened_and_stay_unique():
    swept = {f"model.key{i}" for i in range(14)}
    jobs = [
        [f"model.key{i}={'x' * 20}" for i in range(13)] + [f"model.key13={value}"] for value in ("a", "b")
    ]
    names = [run_dirname(job, swept, exclude=set(), job_num=0) for job in jobs]
    assert all(len(name) <= MAX_NAME_CHARS for name in names)
    assert names[0] != names[1] and names[0][:-11] == names[1][:-11]  # same start, different hash
    assert run_dirname(["+extra.tag=a/b"], {"extra.tag"}, set(), 0) == "extra.tag=a_b"


@pytest.mark.slow
def test_the_sweep_with_fourteen_overrides_runs(tmp_path):
    overrides = [
        "loss=bce,softmax", "seed=0", "dataset.num_users=300", "dataset.num_items=200", "trainer.max_steps=8",
        "trainer.eval_every_steps=4", "trainer.batch_size=32", "model.dropout=0.1", "trainer.lr=0.001",
        "trainer.weight_decay=0.0", "model.embedding_dim=32", "model.ffn_dim=64", "model.num_heads=2",
        "evaluation.ks=[5,10,20]", "logger=none",
    ]  # fmt: skip
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "-m", *overrides, f"hydra.sweep.dir={sweep}",
         "trainer.progress=false"],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    folders = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert folders == ["loss=bce", "loss=softmax"]
    record = json.loads((sweep / "loss=bce" / "run.json").read_text())
    assert record["status"] == "completed" and "trainer.weight_decay=0.0" in record["overrides"]
