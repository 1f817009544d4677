"""What one run trains and evaluates on, prepared from its split before any model exists: the training
samples, the warnings about the data's sizes, the record that names the data, and the synthetic
generator's Bayes-optimal oracle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig, OmegaConf

from seqrec.data.batches import TrainTensors, pack_train_sequences
from seqrec.data.sources import OracleSource
from seqrec.data.target_samples import pack_target_samples
from seqrec.data.types import SplitData
from seqrec.evaluation import ScoreFn
from seqrec.fingerprints import run_fingerprints
from seqrec.intervals import dominant_user_warnings
from seqrec.losses.base import DataSizes
from seqrec.preflight import (
    RunParts,
    batch_positions,
    check_training_fits,
    effective_objective_settings,
    small_evaluation_warnings,
)


@dataclass(frozen=True)
class RunData:
    """split: the run's split, with `stats` (seqrec.data.splits.dataset_statistics of log and split);
    users: saved_model.user_blocks of the log, for the saved model's histories (the log is not kept);
    source_fingerprint: InteractionLog.source_fingerprint;
    sequences: the training sequences (the objectives' catalog statistics count their input events);
    train: the training samples a batch holds: `sequences`, or one sample per target event;
    effective_settings: the objective's settings as the data caps them; warnings: about the data's sizes;
    oracle: the Bayes-optimal score function of the split's catalog where the source knows one, else None.
    """

    split: SplitData
    stats: dict
    users: tuple[np.ndarray, np.ndarray]
    source_fingerprint: str | None
    sequences: TrainTensors
    train: TrainTensors
    effective_settings: dict
    warnings: list[str]
    oracle: ScoreFn | None


def training_samples(cfg: DictConfig, split: SplitData) -> tuple[TrainTensors, TrainTensors]:
    """The split's training sequences, and the samples a batch holds: the sequences themselves, or one
    sample per target event (cfg.batches.one_target_per_sample). Both stay on the CPU."""
    sequences = pack_train_sequences(split, cfg.model.max_seq_len)
    if not cfg.batches.one_target_per_sample:
        return sequences, sequences
    batches = cfg.batches
    samples = pack_target_samples(
        split, cfg.model.max_seq_len, batches.max_targets_per_user, batches.targets_drawn_from_last, cfg.seed
    )
    return sequences, samples


def build_run_data(
    cfg: DictConfig,
    parts: RunParts,
    split: SplitData,
    stats: dict,
    users: tuple[np.ndarray, np.ndarray],
    source_fingerprint: str | None,
) -> RunData:
    """The RunData of `split`; fails (ConfigError) before any training when a batch exceeds the samples."""
    sequences, train = training_samples(cfg, split)
    check_training_fits(cfg.trainer.batch_size, len(train), train.sample_name)
    positions = batch_positions(
        split, cfg.model.max_seq_len, cfg.trainer.batch_size, train.last_position_only
    )
    sizes = DataSizes(split.num_items, positions)
    effective_settings, capped = effective_objective_settings(parts.objective, sizes)
    warnings = small_evaluation_warnings(stats, cfg.min_eval_samples) + capped
    warnings += dominant_user_warnings(split.test.user.numpy(), min_samples=cfg.min_eval_samples)
    source = parts.source
    oracle = source.oracle(split.item_ids) if isinstance(source, OracleSource) else None
    return RunData(
        split, stats, users, source_fingerprint, sequences, train, effective_settings, warnings, oracle
    )


def data_record(cfg: DictConfig, data: RunData) -> dict:
    """run.json's entries about the data: statistics, warnings, fingerprints, the objective's settings."""
    split = data.split
    test_users, test_items = split.original_users(split.test.user), split.original_items(split.test.target)
    config = OmegaConf.to_container(cfg, resolve=True)
    return {
        "dataset_stats": data.stats,
        "warnings": data.warnings,
        "fingerprints": run_fingerprints(config, data.source_fingerprint, test_users, test_items),
        "effective_settings": data.effective_settings,
    }
