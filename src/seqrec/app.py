"""One run, end to end: config -> data -> split -> model + objective -> fit -> test -> run record."""

from __future__ import annotations

import logging
import random
import signal
import time
from pathlib import Path

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import seqrec.run_names  # noqa: F401  (registers the run-folder name resolver of conf/config.yaml)
from seqrec.config import resolve_device
from seqrec.data.batches import train_item_counts
from seqrec.data.preprocess import load_log
from seqrec.data.splits import dataset_statistics
from seqrec.data.types import EvalSamples, InteractionLog, SplitData
from seqrec.losses.base import CatalogStats
from seqrec.preflight import RunParts, build_run_parts, check_evaluation_fits, check_sampled_candidates
from seqrec.records import RunRecorder
from seqrec.run_data import RunData, build_run_data, data_record
from seqrec.run_results import evaluate_best_weights, format_metrics, record_fit
from seqrec.saved_model import save_model, user_blocks
from seqrec.train import TrainingParts, autocast_for, fit, inference_scores, load_checkpoint, prepare_device
from seqrec.tune.trial import TrialPruned, open_trial
from seqrec.users import model_sizes
from seqrec.valid_subset import SUBSET_SEED, validation_subset
from seqrec.validation import Validation

log = logging.getLogger(__name__)


class RunInterrupted(KeyboardInterrupt):
    """SIGTERM (e.g. from a scheduler) or Ctrl-C stopped the run."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def prepare_data(cfg: DictConfig, source=None, split_rule=None) -> tuple[InteractionLog, SplitData, dict]:
    """Raw log -> filtered, re-indexed log -> split, with the dataset statistics of both."""
    source = source if source is not None else instantiate(cfg.dataset)
    split_rule = split_rule if split_rule is not None else instantiate(cfg.split)
    log = load_log(source, cache_dir=cfg.cache_dir, **cfg.preprocess)
    split = split_rule.apply(log)
    return log, split, dataset_statistics(log, split)


def run(cfg: DictConfig) -> dict:
    """Train and test one configuration; returns the test metrics. Writes the run record into Hydra's
    output directory whatever happens."""
    # Everything that can be checked without data is checked first, so a bad config wastes nothing.
    parts = build_run_parts(cfg)
    logger = parts.logger

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra/")}
    resolved = OmegaConf.to_container(cfg, resolve=True)
    sweep_group = Path(hydra_cfg.sweep.dir).name if hydra_cfg.mode == RunMode.MULTIRUN else cfg.name
    recorder = RunRecorder(run_dir)
    recorder.start(
        run_name=cfg.name,
        seed=cfg.seed,
        choices=choices,
        overrides=list(hydra_cfg.overrides.task),
        config=resolved,
    )
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupted)
    logger_started = False
    try:
        save_hydra_files(run_dir, cfg)
        wandb_info = logger.start(
            config=resolved | {"choices": choices},
            name=cfg.name,
            group=sweep_group,
            tags=[choices.get("loss", "")],
            run_dir=run_dir,
        )
        logger_started = True
        recorder.update(wandb=wandb_info)
        metrics = _train_and_test(cfg, parts, recorder)
        recorder.finish("completed")
        logger.finish(exit_code=0)
        return metrics
    except TrialPruned as pruned:  # a tuning trial its study stopped: not an error
        recorder.update(pruned_at_step=pruned.step)
        recorder.finish("pruned")
        logger.finish(exit_code=0)
        return {}
    except KeyboardInterrupt as interrupt:
        recorder.finish("interrupted", error=f"{type(interrupt).__name__}: {interrupt}".rstrip(": "))
        if logger_started:
            logger.finish(exit_code=130)
        raise
    except BaseException as error:
        try:
            recorder.finish("failed", error=f"{type(error).__name__}: {error}")
        except OSError as record_error:  # the run's own error is the one to report
            log.error("could not record the failure in %s: %s", recorder.run_dir, record_error)
        if logger_started:
            logger.finish(exit_code=1)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)


def _raise_interrupted(signum, frame) -> None:
    raise RunInterrupted(f"received signal {signal.Signals(signum).name}")


def save_hydra_files(run_dir: Path, cfg: DictConfig) -> None:
    """Hydra's .hydra/ folder (config.yaml, hydra.yaml, overrides.yaml), written only once this run owns
    its folder: conf/config.yaml turns Hydra's own copy off, which it would write before any check."""
    hydra_cfg = HydraConfig.instance().cfg
    folder = run_dir / ".hydra"
    folder.mkdir(exist_ok=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    OmegaConf.save(hydra_cfg, folder / "hydra.yaml")
    OmegaConf.save(hydra_cfg.hydra.overrides.task, folder / "overrides.yaml")


def _train_and_test(cfg, parts: RunParts, recorder: RunRecorder) -> dict:
    trial = open_trial(cfg)  # a tuning trial: validation only, each validation reported to the study
    log_metrics = parts.logger.log if trial is None else trial.wrap(parts.logger.log)
    if trial is not None:
        recorder.update(tune=trial.info)
    data_started = time.perf_counter()
    data = _prepare_run_data(cfg, parts)
    for warning in data.warnings:
        log.warning(warning)
    recorder.update(**data_record(cfg, data))
    model, training, train, item_seq = _build_training(cfg, parts, data)
    data_seconds = time.perf_counter() - data_started
    split, evaluation = data.split, parts.evaluation
    max_seq_len, device = cfg.model.max_seq_len, training.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    autocast = autocast_for(device, cfg.trainer.bf16)

    valid = _validation_samples(evaluation, split, recorder)

    def validate() -> dict:
        scores = inference_scores(model, autocast)
        return evaluation.evaluate(scores, valid, item_seq, max_seq_len, split.num_items).metrics

    validation = Validation(validate, training, cfg.trainer, recorder, log_metrics)
    result = fit(training, train, cfg.trainer, cfg.seed, validation, log_metrics)
    if trial is not None:  # trials select on validation only: the test set is never touched
        record_fit(recorder, result, {"best_valid": result.best_metrics}, device, data_seconds, None)
        print(f"{cfg.name}: trial {trial.info['number']}, best validation {result.best_metrics}")
        return {}

    load_checkpoint(model, recorder.checkpoint_path)
    model.eval()
    test_metrics, test_ci, test_seconds = evaluate_best_weights(
        evaluation, inference_scores(model, autocast), data, item_seq, max_seq_len, recorder
    )
    metrics = {"best_valid": result.best_metrics} | test_metrics
    record_fit(recorder, result, metrics, device, data_seconds, (test_seconds, len(split.test)))
    save_model(
        recorder.run_dir, recorder.checkpoint_path, model, cfg, split.item_seq, data.users, split.item_ids,
        trained_on="the split's training sequences (best validation step)",
    )  # fmt: skip
    parts.logger.summary(
        {f"test/{k}": v for k, v in metrics["test"].items()} | {"best_step": result.best_step}
    )
    print(format_metrics(cfg.name, metrics, test_ci, data.warnings))
    return metrics["test"]


def _prepare_run_data(cfg, parts: RunParts) -> RunData:
    """The split and its training samples, with the checks that need the data; nothing on the device yet."""
    log_data, split, stats = prepare_data(cfg, parts.source, parts.split_rule)
    users = user_blocks(log_data)  # for the saved model's histories; the log itself is not kept
    source_fingerprint = log_data.source_fingerprint
    del log_data
    check_evaluation_fits(parts.evaluation, split.num_items)
    return build_run_data(cfg, parts, split, stats, users, source_fingerprint)


def _build_training(cfg, parts: RunParts, data: RunData):
    """The seeded model, the training parts, the training samples and the split's item_seq, on the
    device the run trains on."""
    device = resolve_device(cfg.trainer.device)
    prepare_device(device)
    split = data.split
    item_seq = split.item_seq.to(device)
    check_sampled_candidates(parts.evaluation, split, item_seq)
    train = data.train.to(device)
    # The catalog statistics count the training sequences' input events, whatever a sample is.
    catalog = CatalogStats(split.num_items, train_item_counts(data.sequences, split.num_items)).to(device)
    seed_everything(cfg.seed)
    model = instantiate(cfg.model, **model_sizes(cfg.model, split.num_items, split.num_users)).to(device)
    objective = parts.objective.to(device)
    training = TrainingParts.build(model, objective, catalog, cfg.trainer, device, train.item_seq)
    return model, training, train, item_seq


def _validation_samples(evaluation, split: SplitData, recorder: RunRecorder) -> EvalSamples:
    """The validation samples validation scores during training: all, or a fixed subset of them."""
    valid = validation_subset(split.valid, getattr(evaluation, "valid_max_samples", None))
    if len(valid) < len(split.valid):
        recorder.update(
            validation_subset={"samples": len(valid), "of": len(split.valid), "seed": SUBSET_SEED}
        )
    return valid
