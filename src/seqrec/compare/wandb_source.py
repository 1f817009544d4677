"""Runs of a Weights & Biases project: metrics and validation history, no test ranks.

Without ranks the seed-aware test uses each run's recorded test metric (see `significance`); the
sample-level test is unavailable. Reading a project needs credentials; without them this says so in one
line instead of letting wandb prompt for a login.
"""

from __future__ import annotations

import logging
from typing import Any

import polars as pl

from seqrec.compare.errors import RecordError
from seqrec.compare.runs import RunRecord, RunScan, SkippedRun, flatten, history_frame, label_variants
from seqrec.loggers import has_wandb_credentials

logger = logging.getLogger(__name__)


def _metrics_from_summary(summary: dict) -> dict[str, dict[str, float]]:
    """{"test/dcg@10": 0.04, ...} (flat or nested) -> {"test": {"dcg@10": 0.04}}; non-numbers are dropped."""
    metrics: dict[str, dict[str, float]] = {}
    for key, value in flatten(summary, separator="/").items():
        split, _, metric = key.rpartition("/")
        if split and "@" in metric and isinstance(value, int | float) and not isinstance(value, bool):
            metrics.setdefault(split, {})[metric] = float(value)
    return metrics


def _wandb_history(run: Any) -> pl.DataFrame:
    """History rows with `valid/<metric>` keys -> the same frame as history.jsonl gives."""
    rows = []
    for row in run.scan_history():
        valid = {key.removeprefix("valid/"): value for key, value in row.items() if key.startswith("valid/")}
        if valid:
            step = row.get("step", row.get("_step"))
            loss = row.get("train_loss", row.get("train/loss"))
            rows.append({**row, "step": step, "train_loss": loss, "valid": valid})
    return history_frame(rows)


def wandb_api() -> Any:
    """wandb.Api(), or a one-line RecordError when there are no credentials (wandb would prompt or fail)."""
    if not has_wandb_credentials():
        raise RecordError(
            "--wandb needs W&B credentials and none were found (WANDB_API_KEY, ~/.netrc): run `wandb login` "
            "or export WANDB_API_KEY; runs logged offline are in their run folders: compare those instead."
        )
    import wandb

    try:
        return wandb.Api()
    except Exception as error:  # wandb raises its own error types and network errors alike
        raise RecordError(f"could not connect to W&B ({type(error).__name__}: {error})") from None


def scan_wandb_runs(project: str, group: str | None = None, api: Any = None) -> RunScan:
    """Runs of a W&B project ("entity/project"), optionally one group. Test ranks are not available.

    Needs the trainer to log the resolved config (with `choices` and `seed`), test metrics in the summary
    as "test/<metric>" and validation metrics in the history as "valid/<metric>".
    """
    api = api if api is not None else wandb_api()
    filters = {"group": group} if group else None
    runs, skipped = [], []
    try:
        listed = list(api.runs(path=project, filters=filters))
    except Exception as error:  # unknown project, no network, revoked key: one line, not a traceback
        raise RecordError(f"could not list the runs of W&B project {project!r} ({error})") from None
    for wandb_run in listed:
        location = f"wandb:{project}/{wandb_run.id}"
        if wandb_run.state != "finished":
            skipped.append(SkippedRun(location, f"state {wandb_run.state!r}"))
            continue
        config = dict(wandb_run.config)
        try:
            objective, seed = config["choices"]["loss"], int(config["seed"])
        except (KeyError, TypeError, ValueError) as error:
            skipped.append(SkippedRun(location, f"config lacks choices.loss or seed ({error!r})"))
            continue
        runs.append(
            RunRecord(
                location=location,
                objective=str(objective),
                seed=seed,
                metrics=_metrics_from_summary(dict(wandb_run.summary_metrics)),
                choices=dict(config["choices"]),
                config=config,
                best_step=wandb_run.summary_metrics.get("best_step"),
                history_loader=lambda wandb_run=wandb_run: _wandb_history(wandb_run),
            )
        )
    return RunScan(label_variants(runs), skipped)


def load_wandb_runs(project: str, group: str | None = None, api: Any = None) -> list[RunRecord]:
    """Finished runs of a W&B project; the others are logged as skipped."""
    scan = scan_wandb_runs(project, group, api=api)
    if scan.skipped:
        logger.warning(scan.note())
    return scan.runs
