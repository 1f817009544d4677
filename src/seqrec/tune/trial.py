"""The run side of a tuning trial: report each validation to the Optuna study, stop when it prunes.

A trial is an ordinary run (run.json, history.jsonl, wandb) with `trial.*` set by `python -m seqrec.tune`;
seqrec.app then skips the test set entirely and records status `completed` or `pruned`.
"""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig

from seqrec.errors import ConfigError

PRUNERS = ("none", "median", "halving")


class TrialPruned(Exception):
    """The study's pruner stopped this trial after a validation (not an error: status `pruned`)."""

    def __init__(self, step: int, value: float):
        super().__init__(f"pruned at step {step} ({value:.4f})")
        self.step, self.value = step, value


def make_pruner(name: str, warmup_steps: int = 0, startup_trials: int = 3):
    """none | median (Optuna's MedianPruner) | halving (successive halving); one-line error otherwise."""
    import optuna

    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_steps)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(warmup_steps, 1))
    raise ConfigError(f"tune.pruner must be one of {', '.join(PRUNERS)}, got {name!r}")


class TrialReporter:
    """Wraps a run's metric logger: each validation's `valid/<select_metric>` goes to the trial."""

    def __init__(self, settings: DictConfig, select_metric: str):
        import optuna

        from seqrec.tune.storage import open_storage

        pruner = make_pruner(settings.pruner, settings.pruner_warmup_steps, settings.pruner_startup_trials)
        study = optuna.load_study(
            study_name=settings.study, storage=open_storage(settings.storage), pruner=pruner
        )
        self.trial = optuna.Trial(study, int(settings.trial_id))
        self.key = f"valid/{select_metric}"
        default = bool(study._storage.get_trial(self.trial._trial_id).user_attrs.get("default"))
        self.info = {"study": settings.study, "number": self.trial.number, "params": dict(self.trial.params)}
        self.info["default"] = default  # the objective's default configuration (trial 0 unless it was rerun)

    def wrap(self, log: Callable[[dict, int], None]) -> Callable[[dict, int], None]:
        def log_and_report(values: dict, step: int) -> None:
            log(values, step)
            if self.key in values:
                self.trial.report(float(values[self.key]), step)
                if self.trial.should_prune():
                    raise TrialPruned(step, float(values[self.key]))

        return log_and_report


def open_trial(cfg: DictConfig) -> TrialReporter | None:
    """The run's trial, or None for an ordinary run."""
    settings = cfg.get("trial")
    if settings is None or settings.storage is None:
        return None
    return TrialReporter(settings, str(cfg.trainer.select_metric))
