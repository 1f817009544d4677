"""`python -m seqrec.tune loss=bce,softmax tune.trials=12 tune.final_seeds=5 [run overrides]`.

Tunes each objective with the same trials and per-trial budget (Optuna, seeded TPE, the default
configuration first, again if killed; selection on validation only), freezes each one's best configuration
as an experiment preset beside the study, and retrains it over the same final seeds, testing each once.
Killed, it resumes with the same command. `python -m seqrec.compare STUDY_DIR` then shows the tuned verdicts
and the tuning view.
"""

from __future__ import annotations

import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor

from seqrec.errors import UserError
from seqrec.tune.presets import check_run, freeze, preset_name, preset_path
from seqrec.tune.runner import final_dir, read_status, run_job
from seqrec.tune.settings import TuneCommand, parse_command
from seqrec.tune.space import check_keys_exist, default_values, load_space
from seqrec.tune.storage import JOURNAL_FILE, journal_spec, open_storage
from seqrec.tune.study import (
    Objective,
    abandon_dead_trials,
    check_manifest,
    ensure_default_trial,
    open_study,
    run_trials,
    write_manifest,
)

_print_lock = threading.Lock()


def say(line: str) -> None:
    with _print_lock:
        print(line, flush=True)


def prepare(command: TuneCommand) -> list[Objective]:
    """Every check that needs no data, for every objective, before anything is written."""
    objectives = []
    for loss in command.objectives:
        params = load_space(command.settings.search_path, loss)
        cfg = check_run([*command.base_overrides, f"loss={loss}", f"seed={command.seed}"])
        check_keys_exist(params, cfg, loss)
        for end in (0, -1):  # both ends of every range must be valid settings of the objective
            ends = [
                f"{p.key}={p.ends()[end]!r}"
                if isinstance(p.ends()[end], float)
                else f"{p.key}={p.ends()[end]}"
                for p in params
            ]
            check_run([*command.base_overrides, f"loss={loss}", *ends])
        objectives.append(
            Objective(loss, params, default_values(params, cfg), str(cfg.trainer.select_metric))
        )
    return objectives


def tune(arguments: list[str]) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    command = parse_command(arguments)
    objectives = prepare(command)
    study_dir = command.study_dir
    spec = command.settings.storage or journal_spec(study_dir.resolve() / JOURNAL_FILE)
    manifest = check_manifest(command)
    if command.settings.storage is not None:
        storage = open_storage(spec)  # a shared database: must open before anything is written
        write_manifest(command, manifest)
    else:
        write_manifest(command, manifest)
        storage = open_storage(spec)
    say(
        f"tuning {', '.join(command.objectives)} in {study_dir}: {command.settings.trials} trials each, "
        f"then {command.settings.final_seeds} final seeds"
    )

    def tune_one(objective: Objective) -> None:
        study = open_study(storage, objective.loss, command, objective)
        abandon_dead_trials(study, study_dir, objective.loss)
        ensure_default_trial(study, objective)
        run_trials(study, spec, command, objective, say)
        best = study.best_trial
        freeze(
            check_run(
                [
                    *command.base_overrides,
                    f"loss={objective.loss}",
                    *(f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items()),
                ]
            ),
            preset_path(study_dir, objective.loss),
            [
                f"Tuned by seqrec.tune: study {objective.loss}, best of {command.settings.trials} trials: "
                f"trial {best.number}, validation {objective.select_metric} = {best.value:.6f} "
                f"(seed {command.seed}). Run it (STUDY_DIR: the folder of tune.json):",
                f"python run.py --config-dir STUDY_DIR/presets experiment={preset_name(objective.loss)} "
                "seed=N [dataset.path=PATH]",
            ],
        )

    def final_run(loss: str, seed: int) -> None:
        folder = final_dir(study_dir, loss, seed)
        if read_status(folder) == "completed":
            return
        arguments = [
            f"--config-dir={(study_dir / 'presets').resolve()}",
            f"experiment={preset_name(loss)}",
            f"seed={seed}",
            *(o for o in command.base_overrides if o.startswith("dataset.path=")),
        ]
        returncode = run_job(arguments, folder)
        say(f"{loss} final seed {seed}: {read_status(folder) if returncode == 0 else 'failed'} ({folder})")

    seeds = [command.seed + i for i in range(command.settings.final_seeds)]

    def tune_and_retrain(objective: Objective) -> None:  # an objective is finished before the next starts
        tune_one(objective)
        for seed in seeds:
            final_run(objective.loss, seed)

    _in_parallel(tune_and_retrain, [(o,) for o in objectives], command.settings.jobs)
    say(f"done: python -m seqrec.compare {study_dir} --plots  (tuned verdicts, budget flags, tuning view)")


def _in_parallel(function, argument_lists: list[tuple], jobs: int) -> None:
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(function, *arguments) for arguments in argument_lists]:
            future.result()


def main(arguments: list[str] | None = None) -> int:
    try:
        tune(sys.argv[1:] if arguments is None else arguments)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
