"""Hydra callbacks (registered in conf/config.yaml under hydra.callbacks).

RunChecks checks the composed config and the output folder before Hydra creates or writes anything
(a bad key, value or folder costs nothing and changes no earlier run), prints one progress line per
finished sweep job (seqrec.sweep_progress), and at the end of a sweep with failed jobs lists every one of
them with its reason: Hydra itself shows only the first.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

import seqrec.run_names  # noqa: F401  (registers the run-folder name resolver of conf/config.yaml)
from seqrec.errors import UserError, one_line
from seqrec.preflight import build_run_parts, check_run_folder, check_sweep_folder
from seqrec.records import RUN_FILE
from seqrec.run_status import effective_status
from seqrec.sweep_progress import keep_loky_worker, print_progress


class RunChecks(Callback):
    def __init__(self) -> None:
        self.sweep_dir: Path | None = None
        # Jobs that ran in this process (Hydra's basic launcher): their folders, and (folder, reason) of
        # each failed one. Two jobs may share a folder (a key left out of the folder names).
        self.job_dirs: list[Path] = []
        self.job_failures: list[tuple[Path, str]] = []

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        with exit_on_user_error():
            HydraConfig.instance().set_config(config)  # the run folder's name may use ${hydra:...}
            build_run_parts(config)
            check_run_folder(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        with exit_on_user_error():
            HydraConfig.instance().set_config(config)
            build_run_parts(config)  # the settings all jobs share; each job checks its own overrides too
            check_sweep_folder(config.hydra.sweep.dir)
        self.sweep_dir = Path(config.hydra.sweep.dir)
        atexit.register(self.report_failed_jobs)  # Hydra raises the first failure before on_multirun_end

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        keep_loky_worker()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        job_dir = Path(config.hydra.runtime.output_dir).resolve()
        self.job_dirs.append(job_dir)
        if job_return.status == JobStatus.FAILED:
            self.job_failures.append((job_dir, failure_reason(job_return._return_value)))
        if config.hydra.mode == RunMode.MULTIRUN:  # in the job's own process, wherever the launcher ran it
            print_progress(job_dir, Path(config.hydra.sweep.dir))

    def report_failed_jobs(self) -> None:
        """One line per failed job, at the end of the output: `FOLDER: reason`."""
        if self.sweep_dir is None:
            return
        ran_here = set(self.job_dirs)
        failures = sorted(self.job_failures + recorded_failures(self.sweep_dir, skip=ran_here))
        if not failures:
            return
        ran_elsewhere = {path.parent.resolve() for path in self.sweep_dir.rglob(RUN_FILE)} - ran_here
        jobs = len(self.job_dirs) + len(ran_elsewhere)
        lines = [f"{len(failures)} of {jobs} jobs of the sweep {self.sweep_dir} failed:"]
        lines += [f"  {_relative(job, self.sweep_dir)}: {reason}" for job, reason in failures]
        print("\n".join(lines), file=sys.stderr, flush=True)


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Hydra turns a callback's exception into a warning and goes on, so bad input found here ends the
    program: its one line (as Hydra prints a failed run's) and exit status 1, before Hydra creates or
    writes anything. HYDRA_FULL_ERROR=1 adds the traceback."""
    try:
        yield
    except UserError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            traceback.print_exc()
        print(
            f"{error}\n\nSet the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.",
            file=sys.stderr,
        )
        sys.exit(1)


def failure_reason(error: BaseException) -> str:
    """One line: a UserError's message, or the exception's type and message."""
    if isinstance(error, UserError):
        return str(error)
    return one_line(f"{type(error).__name__}: {error}")


def recorded_failures(sweep_dir: Path, skip: set[Path]) -> list[tuple[Path, str]]:
    """(folder, reason) of every run.json below `sweep_dir` that is not completed (failed, interrupted,
    died), except in the resolved folders `skip`: how jobs of a parallel launcher, which run in other
    processes, are found."""
    failures = []
    for run_json in sorted(sweep_dir.rglob(RUN_FILE)):
        job_dir = run_json.parent.resolve()
        if job_dir in skip:
            continue
        try:
            record = json.loads(run_json.read_text())
        except (OSError, ValueError) as error:
            failures.append((job_dir, f"unreadable {RUN_FILE} ({error})"))
            continue
        status = effective_status(record)
        if status != "completed":
            failures.append((job_dir, one_line(f"{status}: {record.get('error') or 'no error recorded'}")))
    return failures


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.resolve()))
    except ValueError:
        return str(path)
