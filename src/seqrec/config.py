"""Config schema (Hydra ConfigStore) and the checks that run before any data is read.

Groups whose options name a `_target_` (dataset, split, model, loss, evaluation, logger) are checked by
their classes' constructors, their keys against the constructors' parameters and their plain values
against the parameters' annotations; the plain sections (trainer, preprocess) are typed here. Hydra's
`+key=value` adds keys that no schema knows, so every key of the composed config is checked here too.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from hydra.core.config_store import ConfigStore
from hydra.utils import get_object
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from seqrec.data.event_filter import keep_values
from seqrec.data.preprocess import DUPLICATE_POLICIES, KCORE_ORDERS
from seqrec.errors import ConfigError
from seqrec.models.legacy import is_old_model_config, old_config_message


@dataclass
class PreprocessConfig:
    min_rating: float | None = None
    drop_exact_duplicates: bool = True
    duplicates: str = "keep"
    user_core: int = 5
    item_core: int = 5
    kcore_passes: int | None = None
    kcore_order: str = "together"
    keep: Any = None  # {column: [values]} (typed Any: OmegaConf cannot merge a dict into a typed empty one)


@dataclass
class TrainerConfig:
    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-8
    grad_clip_norm: float | None = None
    eval_every_steps: int | None = 64
    eval_every_epochs: int | None = None
    select_metric: str = "dcg@20"
    patience: int | None = None
    max_steps: int | None = None
    validate_at_end: bool = True
    device: str = "auto"
    bf16: bool = True
    compile: bool = False
    progress: bool = True


@dataclass
class BatchesConfig:
    one_target_per_sample: bool = False
    max_targets_per_user: int | None = None
    targets_drawn_from_last: int | None = None


@dataclass
class TrialConfig:
    """Set by `python -m seqrec.tune` when a run is one trial of an Optuna study (never by hand): the run
    validates only, never evaluates the test set, and reports each validation to the study for pruning."""

    storage: str | None = None  # the study's storage (seqrec.tune.storage.open_storage spells it)
    study: str | None = None
    trial_id: int | None = None
    pruner: str = "none"
    pruner_warmup_steps: int = 0
    pruner_startup_trials: int = 3


@dataclass
class SeqrecConfig:
    dataset: Any = MISSING
    split: Any = MISSING
    model: Any = MISSING
    loss: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    evaluation: Any = MISSING
    logger: Any = MISSING
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    batches: BatchesConfig = field(default_factory=BatchesConfig)
    seed: int = 0
    cache_dir: str | None = "~/.cache/seqrec"
    name: str = "run"
    min_eval_samples: int = 100
    trial: TrialConfig = field(default_factory=TrialConfig)


ConfigStore.instance().store(name="seqrec_schema", node=SeqrecConfig)

DEVICES = ("auto", "cpu", "cuda")
METRIC_NAMES = ("dcg", "hitrate", "coverage")
"""The metrics seqrec.metrics.RankingMetrics computes at every cut-off k of evaluation.ks."""
TARGET_GROUPS = ("dataset", "split", "model", "loss", "evaluation", "logger")
_HYDRA_INSTANTIATE_KEYS = {"_target_", "_recursive_", "_convert_", "_partial_", "_args_"}


def check_config(cfg: DictConfig) -> None:
    """Reject unknown keys and impossible values, naming the key and what to do (one ConfigError line)."""
    problems = unknown_keys(cfg)
    if problems:  # the value checks below could trip over a misplaced key
        raise ConfigError("; ".join(problems))
    problems = _value_problems(cfg) + _metric_problems(cfg) + target_value_problems(cfg)
    if problems:
        raise ConfigError("invalid config: " + "; ".join(problems))


def unknown_keys(cfg: DictConfig) -> list[str]:
    """One message per key that nothing reads: not in the schema of its section, not a parameter of its
    section's `_target_`. The `hydra` section is Hydra's own and is left to it."""
    problems = []
    top_level = {f.name for f in fields(SeqrecConfig)}
    problems += _unknown([key for key in cfg.keys() if key != "hydra"], top_level, "")
    for section, schema in (
        ("trainer", TrainerConfig),
        ("preprocess", PreprocessConfig),
        ("trial", TrialConfig),
        ("batches", BatchesConfig),
    ):
        if isinstance(cfg.get(section), DictConfig):
            problems += _unknown(list(cfg[section].keys()), {f.name for f in fields(schema)}, f"{section}.")
    for group in TARGET_GROUPS:
        node = cfg.get(group)
        if group == "model" and isinstance(node, DictConfig) and is_old_model_config(node):
            problems.append(old_config_message(OmegaConf.to_container(node)))  # a preset frozen before
        elif isinstance(node, DictConfig):
            problems += _unknown_target_keys(node, f"{group}.")
    return problems


def _unknown(keys: list[str], valid: set[str], prefix: str) -> list[str]:
    return [unknown_key_message(key, valid, prefix) for key in keys if key not in valid]


def unknown_key_message(key: str, valid: set[str], prefix: str) -> str:
    """'unknown config key PREFIXKEY (did you mean ...?); fix or remove it' (or the valid keys)."""
    close = difflib.get_close_matches(str(key), sorted(valid), n=1, cutoff=0.5)
    listed = sorted(v for v in valid if not v.startswith("_"))  # not Hydra's own _target_ etc.
    hint = f"did you mean {prefix}{close[0]}?" if close else f"valid keys: {', '.join(listed)}"
    return f"unknown config key {prefix}{key} ({hint}); fix or remove it"


def _unknown_target_keys(node: DictConfig, prefix: str) -> list[str]:
    """Keys of a `_target_` node that its class does not take (none if it takes **kwargs)."""
    if "_target_" not in node:
        return []
    try:
        parameters = inspect.signature(get_object(str(node._target_))).parameters
    except (ImportError, ValueError, TypeError) as error:
        return [f"{prefix}_target_={node._target_} cannot be loaded ({error}); check the name"]
    problems = []
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        problems += _unknown(list(node.keys()), set(parameters) | _HYDRA_INSTANTIATE_KEYS, prefix)
    for key in node.keys():
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            problems += _unknown_target_keys(child, f"{prefix}{key}.")
    return problems


def target_value_problems(cfg: DictConfig) -> list[str]:
    """One message per value of a `_target_` group whose type its constructor's annotation rules out."""
    problems = []
    for group in TARGET_GROUPS:
        node = cfg.get(group)
        if isinstance(node, DictConfig):
            problems += _target_type_problems(node, f"{group}.")
    return problems


_PLAIN_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "None": (type(None),)}


def _target_type_problems(node: DictConfig, prefix: str) -> list[str]:
    """Values of plain int/float/bool/str (or None where optional) parameters, checked against the
    annotations (strings under `from __future__ import annotations`); other annotations are not checked."""
    if "_target_" not in node:
        return []
    try:
        parameters = inspect.signature(get_object(str(node._target_))).parameters
    except (ImportError, ValueError, TypeError):
        return []  # unknown_keys says so
    problems = []
    for key, parameter in parameters.items():
        child = node._get_node(key) if key in node else None
        if child is None or child._is_missing() or child._is_interpolation():
            continue
        annotation = parameter.annotation
        names = [part.strip() for part in str(getattr(annotation, "__name__", annotation)).split("|")]
        if not names or not all(name in _PLAIN_TYPES for name in names):
            continue
        value = node[key]
        allowed = tuple(t for name in names for t in _PLAIN_TYPES[name])
        if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
            problems.append(f"{prefix}{key}={value!r} must be {' or '.join(names)}; fix the value")
    return problems


def _metric_problems(cfg: DictConfig) -> list[str]:
    """evaluation.ks must be a list of cut-offs, and trainer.select_metric one of the metrics they give."""
    ks = cfg.evaluation.get("ks") if isinstance(cfg.get("evaluation"), DictConfig) else None
    if ks is None:
        return []
    if not isinstance(ks, ListConfig):
        return [f"evaluation.ks must be a list of cut-offs, got {ks!r}: write evaluation.ks=[{ks}] or [5,10]"]
    select_metric = str(cfg.trainer.select_metric)
    valid = [f"{name}@{k}" for name in METRIC_NAMES for k in ks]
    if select_metric in valid:
        return []
    name, _, k = select_metric.partition("@")
    fix = f"add {k} to evaluation.ks or pick one of {', '.join(valid)}"
    if name not in METRIC_NAMES or not k.isdigit():
        fix = f"metrics are {'/'.join(METRIC_NAMES)}@k, k in evaluation.ks: pick one of {', '.join(valid)}"
    return [f"trainer.select_metric={select_metric} is not computed with evaluation.ks={list(ks)}; {fix}"]


def _value_problems(cfg: DictConfig) -> list[str]:
    """Impossible values of the typed sections."""
    trainer, preprocess = cfg.trainer, cfg.preprocess
    problems = []

    def at_least(section: str, key: str, value: Any, low: float, optional: bool = False) -> None:
        if value is None and optional:
            return
        if value is None or value < low:
            problems.append(f"{section}.{key} must be >= {low}, got {value}")

    for key in ("epochs", "batch_size"):
        at_least("trainer", key, trainer[key], 1)
    for key in ("eval_every_steps", "eval_every_epochs", "patience", "max_steps"):
        at_least("trainer", key, trainer[key], 1, optional=True)
    if trainer.lr <= 0:
        problems.append(f"trainer.lr must be > 0, got {trainer.lr}")
    at_least("trainer", "weight_decay", trainer.weight_decay, 0)
    betas = list(trainer.adam_betas)
    if len(betas) != 2 or not all(0.0 <= beta < 1.0 for beta in betas):
        problems.append(f"trainer.adam_betas must be two numbers in [0, 1), got {betas}")
    if trainer.adam_eps <= 0:
        problems.append(f"trainer.adam_eps must be > 0, got {trainer.adam_eps}")
    if trainer.grad_clip_norm is not None and trainer.grad_clip_norm <= 0:
        problems.append(f"trainer.grad_clip_norm must be > 0 or null, got {trainer.grad_clip_norm}")
    if trainer.device not in DEVICES:
        problems.append(f"trainer.device must be one of {DEVICES}, got {trainer.device!r}")
    if trainer.device == "cuda" and not torch.cuda.is_available():
        problems.append("trainer.device=cuda but no CUDA device is visible; use trainer.device=auto or cpu")
    if preprocess.duplicates not in DUPLICATE_POLICIES:
        problems.append(
            f"preprocess.duplicates must be one of {DUPLICATE_POLICIES}, got {preprocess.duplicates!r}"
        )
    for key in ("user_core", "item_core"):
        at_least("preprocess", key, preprocess[key], 1)
    at_least("preprocess", "kcore_passes", preprocess.kcore_passes, 1, optional=True)
    if preprocess.kcore_order not in KCORE_ORDERS:
        order = preprocess.kcore_order
        problems.append(f"preprocess.kcore_order must be one of {KCORE_ORDERS}, got {order!r}")
    if not 0 <= cfg.seed < 2**32:  # numpy's global seed takes no other value
        problems.append(f"seed must be an integer in [0, 2**32 - 1], got {cfg.seed}")
    problems += _batches_problems(cfg.batches)
    try:
        keep_values(OmegaConf.to_container(preprocess.keep) if preprocess.keep else None)
    except ValueError as error:
        problems.append(str(error))
    if cfg.min_eval_samples < 0:
        problems.append(f"min_eval_samples must be >= 0 (0 never warns), got {cfg.min_eval_samples}")
    return problems


def _batches_problems(batches: DictConfig) -> list[str]:
    most, pool = batches.max_targets_per_user, batches.targets_drawn_from_last
    problems = []
    if most is not None and most < 1:
        problems.append(f"batches.max_targets_per_user must be >= 1 or null, got {most}")
    if pool is not None and most is None:
        problems.append("batches.targets_drawn_from_last needs batches.max_targets_per_user (how many)")
    elif pool is not None and pool < most:
        problems.append(
            f"batches.targets_drawn_from_last={pool} must be >= batches.max_targets_per_user={most}"
        )
    if most is not None and not batches.one_target_per_sample:
        problems.append(
            "batches.max_targets_per_user needs batches.one_target_per_sample=true (a sample per target)"
        )
    return problems


def quote_bare_characters(arguments: list[str]) -> list[str]:
    """Command-line overrides with a one-character value that Hydra's grammar rejects or strips (`;`, `,`,
    a space or a tab, as a shell passes `dataset.separator=';'`) quoted, so that they mean that character."""
    quoted = []
    for argument in arguments:
        key, equals, value = argument.partition("=")
        bare_character = len(value) == 1 and not value.isalnum() and value not in "'\""
        if equals and bare_character and not key.startswith("-"):
            argument = f"{key}='{value}'" if value != "\\" else f"{key}='\\\\'"
        quoted.append(argument)
    return quoted


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
