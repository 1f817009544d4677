"""One tuning study per objective, in one storage: trial 0 is the default configuration, then seeded TPE;
the same number of trials and the same per-trial budget for every objective."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from seqrec.errors import UserError
from seqrec.files import write_text_atomic
from seqrec.tune.runner import read_record, read_status, run_job, trial_dir
from seqrec.tune.settings import TuneCommand
from seqrec.tune.space import Param, override

MANIFEST_FILE = "tune.json"
COUNTED_STATES = ("COMPLETE", "PRUNED", "FAIL")


@dataclass
class Objective:
    loss: str
    params: list[Param]
    defaults: dict  # the default configuration's value of each parameter (trial 0)
    select_metric: str


def check_manifest(command: TuneCommand) -> dict:
    """The study folder's manifest, new or matching this command; one-line error if it belongs to another
    sweep (other objectives, overrides or settings)."""
    manifest = {
        "objectives": command.objectives,
        "base_overrides": command.base_overrides,
        "seed": command.seed,
        "settings": command.settings.pinned(),
    }
    path = command.study_dir / MANIFEST_FILE
    if path.is_file():
        earlier = json.loads(path.read_text())
        differing = [key for key in manifest if earlier.get(key) != manifest[key]]
        if differing:
            key = differing[0]
            raise UserError(
                f"the study folder {command.study_dir} belongs to another tuning sweep ({key}: "
                f"{earlier.get(key)} there, {manifest[key]} here); resume it with the same command or pick a "
                "new tune.dir=DIR"
            )
    elif command.study_dir.exists() and any(command.study_dir.iterdir()):
        raise UserError(
            f"{command.study_dir} already holds files but no {MANIFEST_FILE}: it is not a tuning study; "
            "pick a new tune.dir=DIR"
        )
    return manifest


def write_manifest(command: TuneCommand, manifest: dict) -> None:
    path = command.study_dir / MANIFEST_FILE
    if not path.is_file():
        command.study_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(manifest, indent=2) + "\n")


def open_study(storage, loss: str, command: TuneCommand, objective: Objective):
    """The objective's study; a new one gets its default configuration enqueued as trial 0."""
    import optuna

    study = optuna.create_study(study_name=loss, storage=storage, direction="maximize", load_if_exists=True)
    study.set_user_attr("select_metric", objective.select_metric)
    return study


def ensure_default_trial(study, objective: Objective) -> None:
    """The default configuration is one of the study's trials: enqueued first, and again if its trial was
    abandoned (killed before it finished)."""
    kept = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("abandoned")]
    if not any(t.user_attrs.get("default") for t in kept):
        study.enqueue_trial(objective.defaults, user_attrs={"default": True})


def abandon_dead_trials(study, study_dir: Path, loss: str) -> None:
    """Trials left RUNNING by a killed process: FAIL, marked abandoned (they do not count as trials)."""
    import optuna

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        status = read_status(trial_dir(study_dir, loss, trial.number))
        if status in ("running",):  # its process is alive (this or another machine's job)
            continue
        study._storage.set_trial_user_attr(trial._trial_id, "abandoned", True)
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)


def counted_trials(study) -> int:
    """Trials that used budget: finished (completed, pruned, failed) and running, not abandoned ones."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if (t.state.name in COUNTED_STATES or t.state.name == "RUNNING") and not t.user_attrs.get("abandoned")
    )


def ask_trial(study, params: list[Param], sampler_seed: int, startup_trials: int):
    """The next trial and its parameter values. The sampler is reseeded from (sampler_seed, trials so far),
    so the same seed and the same earlier results give the same parameters, also after a resume."""
    import optuna

    number = counted_trials(study)
    study.sampler = optuna.samplers.TPESampler(
        seed=sampler_seed * 100_003 + number, n_startup_trials=startup_trials
    )
    trial = study.ask()
    return trial, {param.key: param.suggest(trial) for param in params}


def run_trials(study, storage_spec: str, command: TuneCommand, objective: Objective, say) -> None:
    """Trials of one objective, one after another, until the study holds tune.trials of them."""
    import optuna

    settings = command.settings
    while counted_trials(study) < settings.trials:
        trial, values = ask_trial(study, objective.params, settings.sampler_seed, settings.startup_trials)
        folder = trial_dir(command.study_dir, objective.loss, trial.number)
        arguments = [
            *command.base_overrides,
            f"loss={objective.loss}",
            f"seed={command.seed}",
            *(override(key, value) for key, value in values.items()),
            f"trial.storage={storage_spec}",
            f"trial.study={objective.loss}",
            f"trial.trial_id={trial._trial_id}",
            f"trial.pruner={settings.pruner}",
            f"trial.pruner_warmup_steps={settings.pruner_warmup_steps}",
            f"trial.pruner_startup_trials={settings.pruner_startup_trials}",
        ]
        started = time.perf_counter()
        returncode = run_job(arguments, folder)
        record = read_record(folder) or {}
        status = record.get("status") if returncode == 0 else "failed"
        value = ((record.get("metrics") or {}).get("best_valid") or {}).get(objective.select_metric)
        if status == "completed" and value is not None:
            study.tell(trial, float(value))
        elif status == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            reason = record.get("error") or f"exit status {returncode}, see {folder}.log"
            if trial.user_attrs.get("default"):
                raise UserError(
                    f"the default configuration of loss={objective.loss} failed ({reason}); fix it first"
                )
            say(f"{objective.loss} trial {trial.number}: failed ({reason})")
            continue
        best = study.best_value if any(t.state.name == "COMPLETE" for t in study.trials) else float("nan")
        shown = " ".join(f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in values.items())
        metric = f"{objective.select_metric}={value:.4f}" if value is not None else "no value"
        seconds = time.perf_counter() - started
        # Trial numbers also count abandoned (killed and rerun) trials; the budget counts only the others.
        progress = (
            f"{objective.loss} trial {trial.number} ({counted_trials(study)}/{settings.trials} of the budget)"
        )
        say(f"{progress}: {status} {metric} (best {best:.4f}) {shown} [{seconds:.0f} s]")


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
