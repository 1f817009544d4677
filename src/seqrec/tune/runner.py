"""Running the trials and final runs of a tuning study as `python run.py` processes, and reading them back.

Every trial is an ordinary run folder: STUDY_DIR/trials/<loss>/trial-NNN (validation only, status
`completed`, `pruned` or `failed`); every final run: STUDY_DIR/final/<loss>/seed-N (tested once).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from seqrec.records import RUN_FILE
from seqrec.run_status import effective_status
from seqrec.tune.settings import CONF_DIR

RUN_PY = CONF_DIR.parent / "run.py"
TRIALS_DIR = "trials"
FINAL_DIR = "final"


def trial_dir(study_dir: Path, loss: str, number: int) -> Path:
    return study_dir / TRIALS_DIR / loss / f"trial-{number:03d}"


def final_dir(study_dir: Path, loss: str, seed: int) -> Path:
    """seed-N, or seed-N-rK when an earlier attempt left a record that did not complete."""
    folder = study_dir / FINAL_DIR / loss / f"seed-{seed}"
    retry = 1
    while (folder / RUN_FILE).exists() and read_status(folder) != "completed":
        folder = study_dir / FINAL_DIR / loss / f"seed-{seed}-r{retry}"
        retry += 1
    return folder


def read_record(folder: Path) -> dict | None:
    try:
        return json.loads((folder / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None


def read_status(folder: Path) -> str | None:
    record = read_record(folder)
    return effective_status(record) if record is not None else None


def run_job(arguments: list[str], folder: Path) -> int:
    """`python run.py ARGUMENTS hydra.run.dir=FOLDER`; its output goes to FOLDER/../<name>.log."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    quiet = [] if any(a.startswith("trainer.progress=") for a in arguments) else ["trainer.progress=false"]
    command = [sys.executable, str(RUN_PY), *arguments, *quiet, f"hydra.run.dir={folder}"]
    env = os.environ | {"HYDRA_FULL_ERROR": os.environ.get("HYDRA_FULL_ERROR", "0")}
    with open(folder.parent / f"{folder.name}.log", "w") as log:
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
