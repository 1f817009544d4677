"""Progress of a sweep a person can follow: one line per finished job (the swept values, the best validation
metric, seconds) with the count of done / running / failed jobs, read from the run records in the sweep
folder, so that it works wherever the jobs run (Hydra's basic launcher, joblib workers, submitit).

joblib's "A worker stopped while some jobs were given to the executor" comes from loky's memory-leak
check: a worker whose memory grew by more than 300 MB since its first job is replaced. seqrec keeps freed
memory in the process on purpose (seqrec.train.keep_freed_memory_in_process), so every training job looks
like a leak; `keep_loky_worker` raises that limit inside a worker, so it is reused instead of restarted.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path

from omegaconf import OmegaConf

from seqrec.record_files import RUN_FILE, SWEEP_FILE
from seqrec.run_status import effective_status


def swept_overrides(sweep_dir: Path) -> tuple[list[str], int | None]:
    """(keys swept over, number of jobs) from Hydra's multirun.yaml: the command line's sweeps and those of
    `hydra.sweeper.params` (a preset's, e.g. experiment=quick), the command line winning for a key as in
    Hydra's basic sweeper; ([], None) when it cannot be read."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        hydra = OmegaConf.load(sweep_dir / SWEEP_FILE).hydra
        task = list(hydra.overrides.task)
        keys = {override.partition("=")[0].lstrip("+~") for override in task}
        params = (hydra.get("sweeper") or {}).get("params") or {}
        task += [f"{key}={value}" for key, value in params.items() if key not in keys]
        overrides = OverridesParser.create().parse_overrides(task)
        swept = [override for override in overrides if override.is_sweep_override()]
        total = math.prod(len(list(override.sweep_string_iterator())) for override in swept)
    except Exception:  # a custom sweeper or an unreadable file: progress without the total
        return [], None
    return [override.get_key_element() for override in swept], total


def job_counts(sweep_dir: Path) -> Counter:
    """Run records below the sweep folder by effective status (completed, failed, running, died, ...)."""
    counts: Counter = Counter()
    for run_json in sweep_dir.rglob(RUN_FILE):
        try:
            counts[effective_status(json.loads(run_json.read_text()))] += 1
        except (OSError, ValueError):
            counts["unreadable"] += 1
    return counts


def progress_line(job_dir: Path, sweep_dir: Path) -> str | None:
    """`[seqrec sweep] loss=bce seed=1: best valid dcg@20 0.0712 at step 30, 41 s | 3 of 6 done, 2
    running, 0 failed` for the job in `job_dir`; None without its run record."""
    try:
        record = json.loads((job_dir / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    keys, total = swept_overrides(sweep_dir)
    values = {
        o.lstrip("+").partition("=")[0]: o.lstrip("+").partition("=")[2] for o in record.get("overrides", [])
    }
    label = " ".join(f"{key}={values[key]}" for key in keys if key in values) or record.get(
        "run_name", job_dir.name
    )
    seconds = record.get("wall_seconds")
    if record.get("status") == "completed":
        select = (record.get("config") or {}).get("trainer", {}).get("select_metric", "")
        best = (record.get("metrics") or {}).get("best_valid", {}).get(select)
        outcome = (
            f"best valid {select} {best:.4f} at step {record.get('best_step')}"
            if best is not None
            else "done"
        )
    else:
        outcome = f"{record.get('status')}: {record.get('error') or 'no error recorded'}"
    counts = job_counts(sweep_dir)
    done = counts["completed"]
    failed = sum(n for status, n in counts.items() if status not in ("completed", "running"))
    of_total = f" of {total}" if total else ""
    timing = f", {seconds:.0f} s" if seconds is not None else ""
    return (
        f"[seqrec sweep] {label}: {outcome}{timing} | {done}{of_total} done, {counts['running']} running, "
        f"{failed} failed"
    )


def print_progress(job_dir: Path, sweep_dir: Path) -> None:
    line = progress_line(job_dir, sweep_dir)
    if line is not None:
        print(line, file=sys.stderr, flush=True)


def keep_loky_worker() -> None:
    """Inside a joblib (loky) worker: raise its memory-leak limit so that the worker is reused for the next
    job instead of being replaced with the warning "A worker stopped while some jobs were given to the
    executor". Does nothing elsewhere."""
    loky = sys.modules.get("joblib.externals.loky.process_executor")
    import multiprocessing

    if loky is not None and multiprocessing.parent_process() is not None:
        loky._MAX_MEMORY_LEAK_SIZE = 2**62
