"""Hydra callbacks (registered in conf/config.yaml under hydra.callbacks).

RunChecks checks the composed config and the output folder before Hydra creates or writes anything
(a bad key, value or folder costs nothing and changes no earlier run), and at the end of a sweep with
failed jobs lists every one of them with its reason: Hydra itself shows only the first.
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
from omegaconf import DictConfig

from seqrec.errors import UserError, one_line
from seqrec.preflight import build_run_parts, check_run_folder, check_sweep_folder
from seqrec.records import RUN_FILE
from seqrec.run_status import effective_status


class RunChecks(Callback):
    def __init__(self) -> None:
        self.sweep_dir: Path | None = None
        self.job_failures: dict[Path, str] = {}  # job folder -> reason, for jobs run in this process
        self.jobs_seen: set[Path] = set()

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

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        job_dir = Path(config.hydra.runtime.output_dir).resolve()
        self.jobs_seen.add(job_dir)
        if job_return.status == JobStatus.FAILED:
            self.job_failures[job_dir] = failure_reason(job_return._return_value)

    def report_failed_jobs(self) -> None:
        if self.sweep_dir is None:
            return
        failures = sweep_failures(self.sweep_dir, self.job_failures)
        if failures:
            recorded = {path.parent.resolve() for path in self.sweep_dir.rglob(RUN_FILE)}
            jobs = len(self.jobs_seen | recorded | set(failures))
            lines = [f"{len(failures)} of {jobs} jobs of the sweep {self.sweep_dir} failed:"]
            lines += [f"  {_relative(job, self.sweep_dir)}: {reason}" for job, reason in failures.items()]
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


def sweep_failures(sweep_dir: Path, job_failures: dict[Path, str]) -> dict[Path, str]:
    """The failed jobs of a sweep, sorted by folder: those that ran in this process (job_failures, keyed
    by resolved folder) and those whose run.json says failed, interrupted or died (parallel launchers)."""
    failures = dict(job_failures)
    for run_json in sweep_dir.rglob(RUN_FILE):
        job_dir = run_json.parent.resolve()
        try:
            record = json.loads(run_json.read_text())
        except (OSError, ValueError) as error:
            failures.setdefault(job_dir, f"unreadable {RUN_FILE} ({error})")
            continue
        status = effective_status(record)
        if status != "completed":
            failures.setdefault(job_dir, one_line(f"{status}: {record.get('error') or 'no error recorded'}"))
    return dict(sorted(failures.items()))


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.resolve()))
    except ValueError:
        return str(path)
