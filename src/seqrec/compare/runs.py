"""Run records on disk: find the completed runs of one or several sweep folders, name their variants.

A run folder holds `run.json` (status, seed, Hydra choices and overrides, metrics), `history.jsonl` (one
line per validation) and `test_ranks.parquet` (the 1-based rank of every test target). A Hydra multirun
sweep holds run folders at any depth.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from seqrec.compare.errors import RecordError
from seqrec.compare.record_checks import ranks_mismatch, ranks_test_set
from seqrec.fingerprints import BOOKKEEPING_KEYS, PROTOCOL_KEYS, PROTOCOL_SECTIONS, is_under
from seqrec.record_files import HISTORY_FILE, RANKS_FILE, RUN_FILE, SWEEP_FILE
from seqrec.run_status import effective_status

logger = logging.getLogger(__name__)

# Overrides that never name a variant: bookkeeping, and the seed (the unit of replication).
NOT_VARIANT_KEYS = (*BOOKKEEPING_KEYS, "seed")
# Overrides of the protocol (data, preprocessing, split, evaluation, input length, budget): runs that differ
# there are told apart by their protocol fingerprint (seqrec.compare.protocols), not by variant labels.
PROTOCOL_OVERRIDES = (*PROTOCOL_SECTIONS, *PROTOCOL_KEYS)


@dataclass(frozen=True)
class RunRecord:
    """One completed run. `metrics[split][metric]`, e.g. `metrics["test"]["dcg@10"]`.

    `objective` is the variant label the comparison groups by: the `loss` choice, plus the overrides that
    tell runs of that loss apart (e.g. "softmax[detach_item_table=false]"); see `label_variants`."""

    location: str  # run directory or wandb path: where to look when something is wrong
    objective: str
    seed: int
    metrics: dict[str, dict[str, float]]
    choices: dict[str, str] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()
    config: dict = field(default_factory=dict, repr=False, compare=False)
    best_step: int | None = None
    test_samples: int | None = None
    dir: Path | None = None
    # run.json's `fingerprints` (protocol, protocol_settings, test_set, test_samples), or {} for older
    # records; `seqrec.compare.protocols.fingerprints_of` fills what is missing from the config and ranks
    fingerprints: dict = field(default_factory=dict, repr=False, compare=False)
    history_loader: Callable[[], pl.DataFrame] | None = field(default=None, repr=False, compare=False)
    ranks_loader: Callable[[], pl.DataFrame] | None = field(default=None, repr=False, compare=False)

    @property
    def loss(self) -> str:
        return str(self.choices.get("loss", self.objective))

    @property
    def has_ranks(self) -> bool:
        return self.ranks_loader is not None

    def history(self) -> pl.DataFrame:
        """One row per validation: step, epoch, train_loss, elapsed_seconds, one column per valid metric."""
        return self.history_loader() if self.history_loader is not None else history_frame([])

    def ranks(self) -> pl.DataFrame:
        """Test ranks: user, item (original ids) and 1-based rank of the target, [S] Int64 each."""
        if self.ranks_loader is None:
            raise RecordError(f"{self.location} has no test ranks ({RANKS_FILE}); paired tests need them.")
        return self.ranks_loader()

    def seconds_to_best(self) -> float | None:
        """Wall-clock seconds from the start of training to the best validation (validation included)."""
        history = self.history()
        if self.best_step is None or "elapsed_seconds" not in history.columns:
            return None
        at_best = history.filter(pl.col("step") == self.best_step)["elapsed_seconds"]
        return float(at_best[0]) if at_best.len() and at_best[0] is not None else None


@dataclass(frozen=True)
class SkippedRun:
    location: str
    reason: str


@dataclass(frozen=True)
class RunScan:
    """Completed runs found under a source, and the runs left out with the reason for each."""

    runs: list[RunRecord]
    skipped: list[SkippedRun]

    def note(self) -> str:
        if not self.skipped:
            return f"{len(self.runs)} completed runs, none skipped."
        lines = [f"{len(self.runs)} completed runs; skipped {len(self.skipped)}:"]
        reasons = Counter(skipped.reason for skipped in self.skipped)
        for reason in reasons:  # many runs skipped for one reason (e.g. tuning trials): one line
            where = [skipped.location for skipped in self.skipped if skipped.reason == reason]
            shown = where if len(where) <= 3 else [f"{len(where)} runs: {where[0]}, ..., {where[-1]}"]
            lines += [f"- {location}: {reason}" for location in shown]
        return "\n".join(lines)


# history.jsonl numbers besides step and the validation metrics (train_events, train_cpu_seconds: cumulative)
HISTORY_NUMBERS = ("epoch", "train_loss", "elapsed_seconds", "train_events", "train_cpu_seconds")


def history_frame(rows: Iterable[dict]) -> pl.DataFrame:
    """Flatten validation entries {"step", "epoch", "train_loss", "elapsed_seconds", "valid": {...}}."""
    flat = [
        {
            "step": int(row["step"]),
            **{key: _float_or_none(row.get(key)) for key in HISTORY_NUMBERS},
            **{metric: float(value) for metric, value in row.get("valid", {}).items()},
        }
        for row in rows
    ]
    if not flat:
        return pl.DataFrame({"step": []}, schema={"step": pl.Int64})
    return pl.from_dicts(flat, infer_schema_length=None)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _read_history_file(path: Path) -> pl.DataFrame:
    if not path.exists():
        return history_frame([])
    rows = []
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise RecordError(
                f"{path}:{line_number} is not valid JSON ({error}); fix or delete that line."
            ) from None
    return history_frame(rows)


def _read_ranks_file(path: Path) -> pl.DataFrame:
    try:  # through a file handle: polars reads a path with [ ] (a swept evaluation.ks=[5,10]) as a glob
        with open(path, "rb") as handle:
            ranks = pl.read_parquet(handle, columns=["user", "item", "rank"])
    except (OSError, pl.exceptions.PolarsError) as error:
        raise RecordError(
            f"{path} is not a readable ranks file with user, item, rank columns ({error})"
        ) from None
    if ranks["rank"].null_count() or (ranks.height and ranks["rank"].min() < 1):
        raise RecordError(f"{path}: rank must be a 1-based integer for every row; the file is damaged.")
    return ranks.with_columns(pl.col("rank").cast(pl.Int64))  # ids stay as written: integers or strings


def _run_from_json(run_json: Path) -> RunRecord | SkippedRun:
    location = str(run_json.parent)
    try:
        record = json.loads(run_json.read_text())
    except (OSError, json.JSONDecodeError) as error:
        return SkippedRun(location, f"unreadable {RUN_FILE} ({error})")
    if not isinstance(record, dict):
        return SkippedRun(location, f"{RUN_FILE} is not a JSON object")
    status = effective_status(record)  # "died" for a "running" run whose process is gone
    if status != "completed":  # failed, interrupted, running, died, or any status a newer seqrec writes
        error = record.get("error")
        return SkippedRun(location, f"status {status!r}" + (f": {error}" if error else ""))
    if record.get("refit_of"):  # python -m seqrec.refit: trained on the validation events too
        return SkippedRun(location, f"a refit for serving of {record['refit_of']}, not compared")
    if record.get("tune"):  # a trial of `python -m seqrec.tune`: validation only, read by compare.tuning
        return SkippedRun(location, "tuning trial (validation only, no test metrics)")
    try:
        loss, seed, metrics = record["choices"]["loss"], int(record["seed"]), record["metrics"]
    except (KeyError, TypeError, ValueError) as error:
        return SkippedRun(location, f"{RUN_FILE} lacks choices.loss, seed or metrics ({error!r})")
    run_dir = run_json.parent
    ranks_path = run_dir / RANKS_FILE
    test_samples = (record.get("dataset_stats") or {}).get("test_samples")
    fingerprints = dict(record.get("fingerprints") or {})
    if ranks_path.exists():
        problem = _ranks_problem(ranks_path, metrics.get("test") or {}, fingerprints)
        if problem:
            return SkippedRun(location, problem)
    return RunRecord(
        location=location,
        objective=str(loss),
        seed=seed,
        metrics={split: dict(values) for split, values in metrics.items() if isinstance(values, dict)},
        choices=dict(record["choices"]),
        overrides=tuple(str(override) for override in record.get("overrides") or ()),
        config=record.get("config") or {},
        best_step=record.get("best_step"),
        test_samples=int(test_samples) if test_samples is not None else None,
        dir=run_dir,
        fingerprints=fingerprints,
        history_loader=lambda: _read_history_file(run_dir / HISTORY_FILE),
        ranks_loader=(lambda: _read_ranks_file(ranks_path)) if ranks_path.exists() else None,
    )


def _ranks_problem(path: Path, recorded: dict, fingerprints: dict) -> str | None:
    """Why a run's ranks file cannot be trusted (None: it can). Fills `fingerprints["test_set"]` from the
    ranks where run.json has none (records older than fingerprints)."""
    try:
        ranks = _read_ranks_file(path)
    except RecordError as error:
        return str(error)
    mismatch = ranks_mismatch(ranks, recorded)
    if mismatch:
        return (
            f"{RANKS_FILE} does not reproduce the recorded test metrics ({mismatch}): it belongs to "
            "another run or is damaged; rerun this run, or restore its own ranks file"
        )
    from_ranks = ranks_test_set(ranks)
    if fingerprints.get("test_set") is None:
        fingerprints.update(test_set=from_ranks, test_samples=ranks.height, test_set_from="ranks")
    elif fingerprints["test_set"] != from_ranks:
        return (
            f"{RANKS_FILE} holds other test samples than the run recorded (test-set fingerprint "
            f"{from_ranks[:12]} vs {str(fingerprints['test_set'])[:12]}): it belongs to another run; "
            "rerun this run, or restore its own ranks file"
        )
    return None


def scan_run_dirs(*paths: str | Path) -> RunScan:
    """Every run.json below each folder in `paths` (any depth, sorted by path): the completed runs, with
    variant labels over all of them, and the others skipped."""
    if not paths:
        raise ValueError("give at least one folder of run directories")
    runs, skipped = [], []
    for path in paths:
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is not a directory; pass a run or sweep output folder.")
        for run_json in sorted(root.rglob(RUN_FILE)):
            loaded = _run_from_json(run_json)
            (runs if isinstance(loaded, RunRecord) else skipped).append(loaded)
    return RunScan(label_variants(runs), skipped)


def load_runs(*paths: str | Path) -> list[RunRecord]:
    """Completed runs below `paths`; skipped ones (failed, interrupted, running, corrupt) are logged."""
    scan = scan_run_dirs(*paths)
    if scan.skipped:
        logger.warning(scan.note())
    return scan.runs


def _override_values(overrides: Sequence[str]) -> dict[str, str]:
    """["loss=softmax", "+loss.x=1", "seed=0"] -> {"loss.x": "1"}: the overrides that change the result,
    except the `loss` choice itself (the label's stem)."""
    values = {}
    for override in overrides:
        key, assigned, value = override.lstrip("+").partition("=")
        if assigned and key != "loss" and not is_under(key, (*NOT_VARIANT_KEYS, *PROTOCOL_OVERRIDES)):
            values[key] = value
    return values


def flatten(mapping: dict, separator: str = ".") -> dict[str, Any]:
    """{"loss": {"temperature": 0.5}} -> {"loss.temperature": 0.5}: nested mappings as one level of joined
    keys, the values as they are."""
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update({f"{key}{separator}{inner}": v for inner, v in flatten(value, separator).items()})
        else:
            flat[str(key)] = value
    return flat


def _config_value(config: dict, key: str) -> str | None:
    """The value of `key` ("loss.temperature") in a resolved config, written as in an override ("0.5",
    "false"); None where the config lacks it or it is a group (a dict) rather than a value."""
    value: Any = config
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, dict | list):
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def label_variants(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """Name each run by its loss choice plus the overrides that tell runs of that loss apart: two softmax
    sweeps, one with `loss.detach_item_table=false`, give the rows "softmax" and
    "softmax[detach_item_table=false]". A key counts when its value (resolved config, else the config
    group's choice, else the override's text) differs between runs of one loss; seeds and bookkeeping
    overrides (paths, logging) never count, nor do protocol settings (the protocol fingerprint tells runs
    of other data, split or evaluation apart: seqrec.compare.protocols)."""
    by_loss: dict[str, list[int]] = {}
    for index, run in enumerate(runs):
        by_loss.setdefault(run.loss, []).append(index)
    labelled = list(runs)
    for loss, indices in by_loss.items():
        overridden = [_override_values(runs[i].overrides) for i in indices]
        keys = sorted({key for values in overridden for key in values})
        values = [
            {
                key: _config_value(runs[i].config, key) or runs[i].choices.get(key) or own.get(key)
                for key in keys
            }
            for i, own in zip(indices, overridden, strict=True)
        ]
        varying = [key for key in keys if len({run_values[key] for run_values in values}) > 1]
        for i, own, run_values in zip(indices, overridden, values, strict=True):
            parts = [f"{key.removeprefix('loss.')}={run_values[key]}" for key in varying if key in own]
            labelled[i] = replace(runs[i], objective=f"{loss}[{','.join(parts)}]" if parts else loss)
    return labelled


def newest_sweep_dir(start: str | Path = ".") -> Path | None:
    """Newest Hydra sweep (folder of the latest multirun.yaml) in the nearest `multirun/` folder found in
    `start` or one of its parents; None if there is no such folder or it holds no sweep."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / "multirun").is_dir():
            sweeps = sorted((folder / "multirun").rglob(SWEEP_FILE), key=lambda path: path.stat().st_mtime)
            return sweeps[-1].parent if sweeps else None
    return None
