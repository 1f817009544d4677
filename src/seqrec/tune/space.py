"""Search spaces: conf/search/shared.yaml (keys every objective tunes) + conf/search/<loss>.yaml (its own).

A parameter is a config key with a range: {type: float|int, low, high, log} or {choices: [...]}. Every
space is checked before any trial starts: ranges non-empty and in order, keys that the objective's
composed config has, no key that changes the per-trial budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from seqrec.errors import ConfigError

SHARED_FILE = "shared.yaml"
# Keys that set the budget: equal for every objective, so never tuned.
BUDGET_KEYS = (
    "trainer.epochs",
    "trainer.max_steps",
    "trainer.batch_size",
    "trainer.eval_every_steps",
    "trainer.eval_every_epochs",
    "trainer.patience",
    "evaluation.valid_max_samples",
    "seed",
)


@dataclass(frozen=True)
class Param:
    key: str
    kind: str  # float | int | categorical
    low: Any = None
    high: Any = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), log=self.log)

    def ends(self) -> list[Any]:
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]


def load_space(search_dir: Path, loss: str) -> list[Param]:
    """The shared parameters and the objective's own; one-line ConfigError for a missing or bad space."""
    own = search_dir / f"{loss}.yaml"
    if not own.is_file():
        available = sorted(p.stem for p in search_dir.glob("*.yaml") if p.name != SHARED_FILE)
        raise ConfigError(
            f"loss={loss} has no search space ({own} is missing); write one (format: "
            f"{search_dir / SHARED_FILE}) or tune one of: {', '.join(available) or 'none'}"
        )
    params: dict[str, Param] = {}
    for path in (search_dir / SHARED_FILE, own):
        if path.is_file():
            for key, spec in _read(path).items():
                params[key] = _param(path, key, spec)
    return list(params.values())


def _read(path: Path) -> dict:
    try:
        content = OmegaConf.to_container(OmegaConf.load(path)) or {}
    except Exception as error:  # noqa: BLE001  (YAML syntax errors of any kind)
        raise ConfigError(f"{path} is not a readable YAML search space ({error}); fix its syntax") from error
    if not isinstance(content, dict):
        raise ConfigError(f"{path} must map config keys to ranges, got {type(content).__name__}")
    return content


def _param(path: Path, key: str, spec: Any) -> Param:
    where = f"{path.name}: {key}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be {{type, low, high}} or {{choices: [...]}}, got {spec!r}")
    if key in BUDGET_KEYS:
        raise ConfigError(
            f"{where} sets the per-trial budget, which must be the same for every objective; "
            "remove it and give it once on the command line"
        )
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where} has an empty choices list; give at least one value")
        return Param(key, "categorical", choices=tuple(choices))
    kind = spec.get("type")
    if kind not in ("float", "int"):
        raise ConfigError(f"{where}: type must be float or int (or give choices), got {kind!r}")
    low, high, log = spec.get("low"), spec.get("high"), bool(spec.get("log", False))
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)):
        raise ConfigError(f"{where} needs numbers low and high, got low={low!r}, high={high!r}")
    if low >= high:
        raise ConfigError(f"{where} has an empty or inverted range [{low}, {high}]; give low < high")
    if log and low <= 0:
        raise ConfigError(f"{where} is log-scaled, so low must be > 0, got {low}")
    if kind == "int" and (int(low) != low or int(high) != high):
        raise ConfigError(f"{where} is an int range, got low={low}, high={high}")
    return Param(key, kind, low, high, log)


def check_keys_exist(params: list[Param], cfg: DictConfig, loss: str) -> None:
    """Each parameter must be a key of the objective's composed config (e.g. bce has no temperature)."""
    for param in params:
        section, _, name = param.key.rpartition(".")
        node = OmegaConf.select(cfg, section) if section else cfg
        if not isinstance(node, DictConfig) or name not in node:
            keys = (
                ", ".join(str(k) for k in node.keys() if not str(k).startswith("_"))
                if isinstance(node, DictConfig)
                else "none"
            )
            raise ConfigError(
                f"the search space of loss={loss} tunes {param.key}, which loss={loss} does not have "
                f"({section or 'the config'} keys: {keys}); remove it from conf/search/{loss}.yaml"
            )


def default_values(params: list[Param], cfg: DictConfig) -> dict[str, Any]:
    """The composed config's value of each parameter: trial 0 of a study is the default configuration."""
    return {param.key: OmegaConf.select(cfg, param.key) for param in params}


def override(key: str, value: Any) -> str:
    """`key=value` as Hydra parses it back to the same value."""
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    if isinstance(value, float):
        return f"{key}={value!r}"
    if value is None:
        return f"{key}=null"
    return f"{key}={value}"
