"""The tuned-sweep view: what tuning bought each objective, how sensitive it is, and what it cost.

Read from a study folder of `python -m seqrec.tune` (tune.json, trials/<loss>/trial-NNN/run.json), never
from the Optuna storage, so it shows exactly the recorded runs. Per objective: the default configuration's
validation metric (trial 0) next to the best trial's, the spread of the validation metric over trials,
the cost (trials, training and validation seconds) and the chosen hyperparameters; a figure of the best
validation metric so far against trials and against training seconds, all objectives on one plot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqrec.compare.table import table_style
from seqrec.record_files import HISTORY_FILE
from seqrec.run_status import effective_status

MANIFEST_FILE = "tune.json"


@dataclass(frozen=True)
class Trial:
    number: int
    status: str
    value: float | None  # best validation metric (a pruned trial: the best before it stopped)
    params: dict
    train_seconds: float
    eval_seconds: float
    default: bool = False  # the default configuration (records of seqrec before it was marked: trial 0)


@dataclass
class ObjectiveTuning:
    objective: str
    metric: str
    trials: list[Trial] = field(default_factory=list)

    @property
    def scored(self) -> list[Trial]:
        return [t for t in self.trials if t.status == "completed" and t.value is not None]

    @property
    def default(self) -> Trial | None:
        marked = [t for t in self.trials if t.default]
        return marked[-1] if marked else next((t for t in self.trials if t.number == 0), None)

    @property
    def best(self) -> Trial | None:
        return max(self.scored, key=lambda t: t.value, default=None)

    def count(self, status: str) -> int:
        return sum(t.status == status for t in self.trials)

    def curve(self) -> tuple[list[int], list[float], list[float]]:
        """Trials done, cumulative training seconds, best validation metric so far (completed trials)."""
        numbers, seconds, best = [], [], []
        spent, so_far, finished = 0.0, -np.inf, 0
        for trial in sorted(self.trials, key=lambda t: t.number):
            if trial.status not in ("completed", "pruned", "failed"):  # running, or killed and rerun
                continue
            spent += trial.train_seconds
            if trial.status == "completed" and trial.value is not None:
                so_far = max(so_far, trial.value)
            finished += 1
            if np.isfinite(so_far):
                numbers.append(finished)
                seconds.append(spent)
                best.append(so_far)
        return numbers, seconds, best


@dataclass
class StudyView:
    folder: Path
    manifest: dict
    objectives: list[ObjectiveTuning]


def study_folders(sources: Sequence[str | Path]) -> list[Path]:
    """Study folders among the sources: a source holding tune.json, or one inside such a folder."""
    found = []
    for source in sources:
        path = Path(source)
        for candidate in (path, *path.parents[:2]):
            if (candidate / MANIFEST_FILE).is_file():
                if candidate.resolve() not in [f.resolve() for f in found]:
                    found.append(candidate)
                break
    return found


def study_views(sources: Sequence[str | Path]) -> list[StudyView]:
    return [read_study(folder) for folder in study_folders(sources)]


def read_study(folder: Path) -> StudyView:
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    objectives = []
    for loss in manifest["objectives"]:
        tuning = ObjectiveTuning(loss, "")
        for run_json in sorted((folder / "trials" / loss).glob("trial-*/run.json")):
            trial, metric = _read_trial(run_json)
            if trial is not None:
                tuning.trials.append(trial)
                tuning.metric = tuning.metric or metric
        objectives.append(tuning)
    return StudyView(folder, manifest, objectives)


def _read_trial(run_json: Path) -> tuple[Trial | None, str]:
    try:
        record = json.loads(run_json.read_text())
    except (OSError, ValueError):
        return None, ""
    info = record.get("tune") or {}
    metric = ((record.get("config") or {}).get("trainer") or {}).get("select_metric", "dcg@20")
    status = effective_status(record) or "unknown"
    history = _history(run_json.parent / HISTORY_FILE, metric)
    value = ((record.get("metrics") or {}).get("best_valid") or {}).get(metric)
    if value is None and history:
        value = max(history)
    timings = record.get("timings") or {}
    return (
        Trial(
            number=int(info.get("number", run_json.parent.name.rpartition("-")[2] or 0)),
            status=status,
            value=value,
            params=dict(info.get("params") or {}),
            train_seconds=float(timings.get("train_seconds") or 0.0),
            eval_seconds=float(timings.get("eval_seconds") or 0.0),
            default=bool(info.get("default")) and status == "completed",
        ),
        metric,
    )


def _history(path: Path, metric: str) -> list[float]:
    values = []
    try:
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if metric in (entry.get("valid") or {}):
                values.append(float(entry["valid"][metric]))
    except (OSError, ValueError):
        pass
    return values


def _params_text(params: dict) -> str:
    return ", ".join(
        f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in params.items()
    )


def format_study(view: StudyView, style: str) -> str:
    """The tuned-sweep section: one row per objective."""
    drawing = table_style(style)
    settings = view.manifest.get("settings", {})
    budget = " ".join(
        o for o in view.manifest.get("base_overrides", []) if o.startswith(("trainer.", "evaluation."))
    )
    title = (
        f"{drawing.heading}Tuning ({view.folder}): {settings.get('trials')} trials per objective "
        f"(one of them the default configuration), TPE seed {settings.get('sampler_seed')}, pruner "
        f"{settings.get('pruner')}; per-trial budget: {budget or 'the config defaults'}. Validation only."
    )
    header = [
        "objective",
        "trials (done/pruned/failed)",
        "default",
        "tuned",
        "gain",
        "spread over trials (min / median / max)",
        "train s",
        "valid s",
        "chosen hyperparameters (best trial)",
    ]
    rows = []
    for tuning in view.objectives:
        default, best, scored = tuning.default, tuning.best, [t.value for t in tuning.scored]
        completed, pruned, running = (
            tuning.count("completed"),
            tuning.count("pruned"),
            tuning.count("running"),
        )
        done = f"{completed}/{pruned}/{len(tuning.trials) - completed - pruned - running}"
        done += f" (+{running} running)" if running else ""
        default_text = f"{default.value:.4f}" if default and default.value is not None else "-"
        gain = (
            f"{best.value - default.value:+.4f} ({(best.value / default.value - 1):+.0%})"
            if best and default and default.value
            else "-"
        )
        spread = f"{min(scored):.4f} / {np.median(scored):.4f} / {max(scored):.4f}" if scored else "-"
        rows.append(
            [
                f"{tuning.objective} ({tuning.metric})",
                done,
                default_text,
                f"{best.value:.4f} (trial {best.number})" if best else "-",
                gain,
                spread,
                f"{sum(t.train_seconds for t in tuning.trials):.0f}",
                f"{sum(t.eval_seconds for t in tuning.trials):.0f}",
                _params_text(best.params) if best else "-",
            ]
        )
    return f"{title}\n\n{drawing.render(header, rows)}"


def study_json(view: StudyView) -> dict:
    return {
        "folder": str(view.folder),
        "manifest": view.manifest,
        "objectives": [
            {
                "objective": t.objective,
                "metric": t.metric,
                "trials": len(t.trials),
                "completed": t.count("completed"),
                "pruned": t.count("pruned"),
                "running": t.count("running"),
                "default_value": t.default.value if t.default else None,
                "best_value": t.best.value if t.best else None,
                "best_trial": t.best.number if t.best else None,
                "best_params": t.best.params if t.best else None,
                "values": [tr.value for tr in sorted(t.trials, key=lambda tr: tr.number)],
                "train_seconds": sum(tr.train_seconds for tr in t.trials),
                "eval_seconds": sum(tr.eval_seconds for tr in t.trials),
            }
            for t in view.objectives
        ],
    }


def plot_tuning_curves(views: Sequence[StudyView], folder: str | Path) -> Path:
    """Best validation metric so far against trials (left) and training seconds (right), every objective
    of every study on one figure; written as PNG and PDF, returns the PNG path."""
    from matplotlib.figure import Figure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(10, 4.2), layout="constrained")
    by_trials, by_seconds = figure.subplots(1, 2, sharey=True)
    metric = ""
    for view in views:
        for tuning in view.objectives:
            numbers, seconds, best = tuning.curve()
            if not numbers:
                continue
            metric = tuning.metric
            label = tuning.objective if len(views) == 1 else f"{view.folder.name}: {tuning.objective}"
            style = {"marker": "o", "markersize": 3, "drawstyle": "steps-post", "label": label}
            line = by_trials.plot(numbers, best, **style)[0]
            by_seconds.plot(seconds, best, color=line.get_color(), **style)
    by_trials.set_xlabel("finished trials")
    by_trials.set_ylabel(f"best validation {metric} so far")
    by_seconds.set_xlabel("training seconds (cumulative over trials)")
    for ax in (by_trials, by_seconds):
        ax.grid(alpha=0.3)
    by_trials.xaxis.get_major_locator().set_params(integer=True)
    by_seconds.legend(fontsize=8, loc="best")
    figure.suptitle(
        "Tuning curves (finished trials; each objective's default configuration is one of them)", fontsize=10
    )
    for suffix in ("png", "pdf"):
        figure.savefig(folder / f"tuning-curves.{suffix}", dpi=150)
    return folder / "tuning-curves.png"
