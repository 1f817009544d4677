"""Run records: the source of truth for comparisons. Written atomically, never claiming success early.

A run directory holds run.json (status, config, stats, metrics, timings), history.jsonl (one line per
validation) and test_ranks.parquet (the 1-based rank of every test target).

A process killed by the OS (out of memory, SIGKILL) cannot write its final status, so run.json also
names the process (host, pid, start time); seqrec.run_status.effective_status reports such a run as "died".
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from seqrec.errors import UserError
from seqrec.files import atomic_path, write_text_atomic
from seqrec.folders import describe_os_error
from seqrec.record_files import CHECKPOINT_FILE, HISTORY_FILE, RANKS_FILE, RUN_FILE
from seqrec.run_status import process_identity

OTHER_RANK_COLUMN = "rank_other"  # the other seen-items convention (metrics.test_other)


class RunDirectoryInUse(UserError, RuntimeError):
    """The output directory already holds a run record; results are never overwritten."""


def write_json_atomic(path: Path, payload: dict) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, torch.device)):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def software_versions() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "polars": pl.__version__,
        "numpy": np.__version__,
        "hydra": _installed_version("hydra-core"),
        "wandb": _installed_version("wandb"),  # None without wandb (logger=wandb needs it)
        "cuda": torch.version.cuda,
        "device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_name(),
        "cpu_count": os.cpu_count(),
    }


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("-dirty" if dirty else "")


def _id_column(name: str, ids: np.ndarray) -> pl.Series:
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return pl.Series(name, ids, dtype=pl.Int64)
    return pl.Series(name, [str(value) for value in ids], dtype=pl.String)


class RunRecorder:
    """Owns one run directory. `start` claims it (status "running"); `finish` writes the final status."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.record: dict = {}
        self.started = 0.0

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_FILE

    def start(self, **fields: Any) -> None:
        check_new_run_dir(self.run_dir)
        self.started = time.time()
        self.record = {
            "status": "running",
            "error": None,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "finished_at": None,
            "run_dir": str(self.run_dir.resolve()),
            "process": process_identity(),
            "versions": software_versions(),
            "git_revision": git_revision(),
            **fields,
        }
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / HISTORY_FILE).touch()
            self._write()
        except OSError as error:
            raise UserError(
                f"cannot write the run record into the run folder {self.run_dir}: "
                f"{describe_os_error(error)}. Run from a writable folder or set hydra.run.dir=DIR "
                "(hydra.sweep.dir=DIR with -m)."
            ) from error

    def update(self, **fields: Any) -> None:
        self.record.update(fields)
        self._write()

    def log_validation(self, entry: dict) -> None:
        with open(self.run_dir / HISTORY_FILE, "a") as history:
            history.write(json.dumps(entry, default=_jsonable) + "\n")

    def write_test_ranks(
        self, users: np.ndarray, items: np.ndarray, ranks: torch.Tensor, extra: dict | None = None
    ) -> None:
        """users: [S] original user ids; items: [S] original target item ids (int64, or str for logs
        with string ids, written as they are so that ranks join back to the catalog); ranks: [S] 1-based;
        extra: more [S] int64 columns by name (the other convention's ranks, segment keys)."""
        columns = [
            _id_column("user", users),
            _id_column("item", items),
            pl.Series("rank", ranks.cpu().numpy()),
        ]
        for name, values in (extra or {}).items():
            values = values.cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
            columns.append(pl.Series(name, values, dtype=pl.Int64))
        frame = pl.DataFrame(columns).cast({"rank": pl.Int64})
        with atomic_path(self.run_dir / RANKS_FILE) as temp:
            frame.write_parquet(temp)

    def finish(self, status: str, error: str | None = None) -> None:
        self.record.update(
            status=status,
            error=error,
            finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            wall_seconds=round(time.time() - self.started, 3),
        )
        try:
            self._write()
        except OSError:
            # A full disk has no room for the temporary copy; rewriting run.json in place reuses its
            # own blocks, so the record does not stay "running" (not atomic, but it is the last write).
            (self.run_dir / RUN_FILE).write_text(json.dumps(self.record, indent=2, default=_jsonable))

    def _write(self) -> None:
        write_json_atomic(self.run_dir / RUN_FILE, self.record)


def check_new_run_dir(run_dir: Path) -> None:
    """RunDirectoryInUse if `run_dir` already holds a run record."""
    existing = Path(run_dir) / RUN_FILE
    if existing.exists():
        raise RunDirectoryInUse(
            f"{run_dir} already holds a run record ({existing}); seqrec never overwrites results. "
            "Pick a new output folder (hydra.run.dir=...) or move the old run away."
        )
