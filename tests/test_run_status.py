"""A run killed by the OS keeps status "running" in its run.json; effective_status and the comparison call
it "died" once its process is gone (same host and boot; pid dead, a zombie, or reused)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ended_process
from seqrec.compare import scan_run_dirs
from seqrec.run_status import effective_status, process_identity

REPO = Path(__file__).resolve().parents[1]


def running_record(process: dict) -> dict:
    return {"status": "running", "error": None, "process": process}


def test_process_identity_names_this_process():
    identity = process_identity()
    assert identity["pid"] == os.getpid() and identity["host"] == socket.gethostname()
    if Path("/proc/self/stat").exists():
        assert isinstance(identity["start_ticks"], int) and identity["boot_id"]


def test_running_record_of_a_live_process_stays_running():
    assert effective_status(running_record(process_identity())) == "running"


def test_running_record_of_an_ended_process_died():
    assert effective_status(running_record(ended_process())) == "died"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times need /proc")
def test_a_reused_pid_is_told_apart_by_its_start_time():
    reused = process_identity() | {"start_ticks": process_identity()["start_ticks"] - 1}
    assert effective_status(running_record(reused)) == "died"
    rebooted = process_identity() | {"boot_id": "another-boot"}
    assert effective_status(running_record(rebooted)) == "died"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process states need /proc")
def test_a_zombie_process_died():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = process_identity(child.pid)
    stat = Path(f"/proc/{child.pid}/stat")
    deadline = time.time() + 30
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":  # exited, not yet reaped (no wait yet)
        assert time.time() < deadline
        time.sleep(0.05)
    assert effective_status(running_record(identity)) == "died"
    child.wait()


def test_other_hosts_and_final_statuses_are_left_alone():
    elsewhere = ended_process() | {"host": "another-machine"}
    assert effective_status(running_record(elsewhere)) == "running"  # cannot be checked from here
    assert effective_status({"status": "running"}) == "running"  # an old record without process info
    for status in ("completed", "failed", "interrupted"):
        assert effective_status({"status": status, "process": ended_process()}) == status


def test_the_comparison_reports_a_dead_run_as_died(tmp_path):
    for name, process in (("dead", ended_process()), ("alive", process_identity())):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(json.dumps(running_record(process)))
    reasons = {Path(skipped.location).name: skipped.reason for skipped in scan_run_dirs(tmp_path).skipped}
    assert reasons == {"dead": "status 'died'", "alive": "status 'running'"}


@pytest.mark.slow
def test_a_run_killed_with_sigkill_is_reported_died(tmp_path):
    run_dir = tmp_path / "run"
    overrides = [
        "debug=smoke", "dataset.num_users=150", "dataset.num_items=60", "dataset.mean_length=20",
        "dataset.max_length=60", "cache_dir=null", "trainer.max_steps=1000000", "trainer.epochs=100000",
        "trainer.eval_every_steps=1000000", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "disabled"}
    process = subprocess.Popen([sys.executable, str(REPO / "run.py"), *overrides], cwd=tmp_path, env=env)
    try:
        deadline = time.time() + 120
        while not (run_dir / "history.jsonl").exists():  # written right after run.json claims the folder
            assert process.poll() is None and time.time() < deadline, "the run did not start"
            time.sleep(0.2)
        record = json.loads((run_dir / "run.json").read_text())
        assert record["status"] == "running" and record["process"]["pid"] == process.pid
        assert effective_status(record) == "running"
        process.send_signal(signal.SIGKILL)  # what the OOM killer does: no handler runs
        process.wait()
    finally:
        process.kill()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "running" and effective_status(record) == "died"
    (skipped,) = scan_run_dirs(tmp_path).skipped
    assert skipped.reason == "status 'died'"
