"""The tuning command's settings (`tune.KEY=VALUE`) and how its command line splits into objectives,
settings and the overrides every trial shares."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser

from seqrec.config import quote_bare_characters
from seqrec.errors import ConfigError
from seqrec.tune.trial import PRUNERS

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"


@dataclass
class TuneSettings:
    trials: int = (
        20  # trials per objective (trial 0: the default configuration), the same for every objective
    )
    final_seeds: int = 5  # seeds the best configuration of each objective is retrained and tested with
    sampler_seed: int = 0  # seed of the TPE sampler (the same for every objective)
    startup_trials: int = 5  # trials sampled at random before TPE models the results (trial 0 included)
    pruner: str = "none"  # none | median | halving: stop unpromising trials on their validation history
    pruner_warmup_steps: int = 0  # never prune before this training step
    pruner_startup_trials: int = 3  # median pruner: completed trials before it prunes
    storage: str | None = (
        None  # Optuna database URL shared by many jobs; null: a journal file in the study folder
    )
    dir: str | None = None  # study folder (default: multirun/DATE/TIME-tune)
    search_dir: str | None = None  # search spaces (default: conf/search)
    jobs: int = 1  # trials or final runs at once in this process (objectives run in parallel)

    @property
    def search_path(self) -> Path:
        return Path(self.search_dir) if self.search_dir else CONF_DIR / "search"

    def pinned(self) -> dict:
        """The settings a resumed study must keep (all but `jobs` and `dir`)."""
        return {k: v for k, v in asdict(self).items() if k not in ("jobs", "dir")}


@dataclass
class TuneCommand:
    objectives: list[str]
    settings: TuneSettings
    base_overrides: list[str]  # every trial's and final run's overrides, besides loss, params and seed
    seed: int  # the trials' seed; the final seeds are seed, seed + 1, ...

    @property
    def study_dir(self) -> Path:
        return Path(self.settings.dir)


def parse_command(arguments: list[str]) -> TuneCommand:
    """`loss=a,b tune.trials=12 key=value ...` -> TuneCommand; one-line ConfigError for bad settings."""
    settings, objectives, base, seed = TuneSettings(), [], [], 0
    known = {f.name: f for f in fields(TuneSettings)}
    for argument in quote_bare_characters(arguments):
        key, equals, value = argument.partition("=")
        if not equals:
            raise ConfigError(f"{argument!r} is not key=value; write e.g. loss=bce,softmax tune.trials=12")
        if key.startswith("tune."):
            name = key[len("tune.") :]
            if name not in known:
                raise ConfigError(f"unknown setting {key}; valid: {', '.join('tune.' + k for k in known)}")
            setattr(settings, name, _typed(key, value, known[name].type))
        elif key == "loss":
            objectives = [name.strip() for name in value.split(",") if name.strip()]
        elif key.startswith("hydra.") or key.startswith("trial."):
            raise ConfigError(
                f"{key} is set by seqrec.tune for each trial; remove it (study folder: tune.dir=DIR)"
            )
        else:
            parsed = OverridesParser.create().parse_overrides([argument])[0]
            if parsed.is_sweep_override():
                raise ConfigError(
                    f"{argument} sweeps several values; only loss=a,b may (search spaces tune the rest)"
                )
            if key == "seed":
                seed = int(value)
            else:
                base.append(argument)
    _check(settings, objectives)
    if settings.dir is None:
        settings.dir = time.strftime("multirun/%Y-%m-%d/%H-%M-%S-tune")
    return TuneCommand(objectives, settings, base, seed)


def _typed(key: str, value: str, kind) -> object:
    if value in ("null", "None", "~"):
        return None
    if kind in (int, "int"):
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{key} must be an integer, got {value!r}") from None
    return value


def _check(settings: TuneSettings, objectives: list[str]) -> None:
    if not objectives:
        raise ConfigError("name the objectives to tune: loss=bce,softmax,...")
    if len(set(objectives)) < len(objectives):
        raise ConfigError(f"loss={','.join(objectives)} names an objective twice; name each once")
    for key in ("trials", "final_seeds", "jobs", "startup_trials", "pruner_startup_trials"):
        low = 0 if key == "final_seeds" else 1
        if getattr(settings, key) is None or getattr(settings, key) < low:
            raise ConfigError(f"tune.{key} must be >= {low}, got {getattr(settings, key)}")
    if settings.pruner_warmup_steps is None or settings.pruner_warmup_steps < 0:
        raise ConfigError(f"tune.pruner_warmup_steps must be >= 0, got {settings.pruner_warmup_steps}")
    if settings.pruner not in PRUNERS:
        raise ConfigError(f"tune.pruner must be one of {', '.join(PRUNERS)}, got {settings.pruner!r}")
