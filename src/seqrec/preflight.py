"""Checks before work: the config (unknown keys, values, every group's constructor) and the output folders
before a run starts, and the data against the evaluation settings right after loading, before training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from seqrec.config import check_config
from seqrec.data.types import SplitData
from seqrec.errors import ConfigError, UserError, one_line
from seqrec.folders import require_cache_folder, require_writable_folder
from seqrec.losses.base import DataSizes
from seqrec.record_files import RUN_FILE, SWEEP_FILE
from seqrec.records import check_new_run_dir
from seqrec.users import model_sizes


@dataclass(frozen=True)
class RunParts:
    """The instantiated config groups of one run (the model is built once the catalog is known)."""

    source: Any
    split_rule: Any
    objective: Any
    evaluation: Any
    logger: Any


def build_run_parts(cfg: DictConfig) -> RunParts:
    """Check the config, instantiate its groups and check the cache folder; bad input raises a one-line
    UserError (ConfigError for a bad key or value)."""
    check_config(cfg)
    parts = RunParts(
        source=instantiate_group(cfg, "dataset"),
        split_rule=instantiate_group(cfg, "split"),
        objective=instantiate_group(cfg, "loss"),
        evaluation=instantiate_group(cfg, "evaluation"),
        logger=instantiate_group(cfg, "logger"),
    )
    model = instantiate_group(cfg, "model", **model_sizes(cfg.model, 1, 1))  # checks its hyperparameters
    if getattr(parts.objective, "detach_item_table", False) and model.item_projection is not None:
        raise ConfigError(
            "loss.detach_item_table=true sends no gradient into model.item_projection, which only the "
            "output side uses, so it would never train; set loss.detach_item_table=false or "
            "model.item_projection=false"
        )
    if cfg.cache_dir is not None:
        require_cache_folder(cfg.cache_dir)
    return parts


def instantiate_group(cfg: DictConfig, group: str, **kwargs: Any) -> Any:
    """instantiate(cfg[group]); a constructor's complaint becomes a one-line error naming the group."""
    try:
        return instantiate(cfg[group], **kwargs)
    except InstantiationException as error:
        cause = error.__cause__ if error.__cause__ is not None else error
        if isinstance(cause, UserError):
            raise cause from error
        message = one_line(str(cause))
        if f"{group}." not in message:
            message = f"{group}={cfg[group].get('_target_')}: {message}"
        raise ConfigError(message) from error


def check_run_folder(run_dir: str | Path) -> None:
    """A single run's folder: never one that holds a run record; writable (created if needed)."""
    check_new_run_dir(Path(run_dir))
    require_writable_folder(run_dir, "the run folder", "Set hydra.run.dir=DIR to a writable folder.")


def check_sweep_folder(sweep_dir: str | Path) -> None:
    """A sweep's folder: never one that holds an earlier sweep or run (Hydra would rewrite its multirun.yaml
    and the jobs' files); writable (created if needed)."""
    sweep_dir = Path(sweep_dir)
    earlier = [sweep_dir / SWEEP_FILE] if (sweep_dir / SWEEP_FILE).exists() else []
    earlier += [] if earlier or not sweep_dir.is_dir() else list(sweep_dir.rglob(RUN_FILE))[:1]
    if earlier:
        raise UserError(
            f"{sweep_dir} already holds an earlier sweep ({earlier[0]}); seqrec never changes earlier runs. "
            "Pick a new hydra.sweep.dir=DIR or move the old sweep away."
        )
    require_writable_folder(sweep_dir, "the sweep folder", "Set hydra.sweep.dir=DIR to a writable folder.")


def check_evaluation_fits(evaluation: Any, num_items: int) -> None:
    """After preprocessing: the evaluation's cut-offs (and sampled candidates) must fit the catalog."""
    ks = list(evaluation.ks)
    if max(ks) > num_items:
        raise ConfigError(
            f"evaluation.ks={ks} has a cut-off above the {num_items} items left after preprocessing; lower "
            "evaluation.ks, or keep more items (preprocess.user_core / item_core, a larger dataset)"
        )
    negatives = getattr(evaluation, "num_negatives", None)
    if negatives is not None and negatives >= num_items and not getattr(evaluation, "replacement", False):
        raise ConfigError(
            f"evaluation.num_negatives={negatives} needs more than the {num_items} items left after "
            "preprocessing; lower evaluation.num_negatives or use evaluation=full"
        )


def check_training_fits(batch_size: int, train_samples: int, what: str = "training sequences") -> None:
    """After the split: one batch needs trainer.batch_size training samples (`what` they are; the last
    partial batch is dropped)."""
    if batch_size > train_samples:
        raise ConfigError(
            f"trainer.batch_size={batch_size} exceeds the {train_samples} {what}; lower "
            "trainer.batch_size or use more data"
        )


def small_evaluation_warnings(stats: dict, min_eval_samples: int) -> list[str]:
    """One warning per evaluation set with fewer than `min_eval_samples` samples."""
    warnings = []
    for key, name in (("valid_samples", "validation"), ("test_samples", "test")):
        count = stats.get(key)
        if count is not None and count < min_eval_samples:
            warnings.append(
                f"only {count} {name} samples (fewer than min_eval_samples={min_eval_samples}): its metrics "
                "vary a lot by chance (see test_ci in run.json); use more data or a split that evaluates "
                "more events (e.g. a lower split.valid_quantile / split.test_quantile, or split=loo)"
            )
    return warnings


def check_sampled_candidates(evaluation: Any, split: SplitData, item_seq: torch.Tensor) -> None:
    """Sampled evaluation: draw (and cache) every validation and test sample's candidates now, so that a
    user with fewer unseen items than evaluation.num_negatives fails before training, not at the first
    validation. The protocol caches the draws by item_seq, the tensor evaluation will use."""
    if hasattr(evaluation, "candidates"):
        for samples in (split.valid, split.test):
            evaluation.candidates(samples, item_seq, split.num_items)


def batch_positions(
    split: SplitData, max_seq_len: int, batch_size: int, one_target_per_sample: bool = False
) -> tuple[int, int]:
    """(fewest, most) supervised positions one training batch of `batch_size` sequences can hold: each
    sequence gives min(events - 1, max_seq_len) positions (one, with batches.one_target_per_sample)."""
    if one_target_per_sample:
        return batch_size, batch_size
    positions = torch.clamp(split.train_end - split.train_start - 1, max=max_seq_len).sort().values
    return int(positions[:batch_size].sum()), int(positions[-batch_size:].sum())


def effective_objective_settings(objective: Any, sizes: DataSizes) -> tuple[dict, list[str]]:
    """The loss settings the data caps ({"loss.key": [fewest, most]}, for run.json) and one warning each;
    raises ConfigError (from the objective) for a value the data makes meaningless."""
    effective = objective.effective_settings(sizes) if hasattr(objective, "effective_settings") else {}
    warnings = []
    for key, (fewest, most) in effective.items():
        requested = getattr(objective, key)
        every = "every" if requested >= sizes.batch_positions[1] else "some"
        used = f"{fewest}" if fewest == most else f"{fewest} to {most}"
        warnings.append(
            f"loss.{key}={requested} exceeds the in-batch pool of {every} training batch "
            f"({sizes.batch_positions[0]} to {sizes.batch_positions[1]} positions): batches use {used} "
            "(run.json: effective_settings); lower it, or raise trainer.batch_size"
        )
    return {f"loss.{key}": value for key, value in effective.items()}, warnings
