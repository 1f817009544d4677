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
from seqrec.cost import cost_timings
from seqrec.data.batches import pack_train_sequences, train_item_counts
from seqrec.data.preprocess import load_log
from seqrec.data.splits import dataset_statistics
from seqrec.data.target_samples import pack_target_samples
from seqrec.data.types import InteractionLog, SplitData
from seqrec.fingerprints import run_fingerprints
from seqrec.intervals import LEVEL, dominant_user_warnings, metric_intervals
from seqrec.losses.base import CatalogStats, DataSizes
from seqrec.preflight import (
    RunParts,
    batch_positions,
    build_run_parts,
    check_evaluation_fits,
    check_sampled_candidates,
    check_training_fits,
    effective_objective_settings,
    small_evaluation_warnings,
)
from seqrec.records import OTHER_RANK_COLUMN, RunRecorder
from seqrec.saved_model import save_model, user_blocks
from seqrec.segment_keys import sample_keys, segment_definitions
from seqrec.train import autocast_for, fit, load_checkpoint, prepare_device
from seqrec.tune.trial import TrialPruned, open_trial
from seqrec.valid_subset import SUBSET_SEED, validation_subset

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
    source, objective, evaluation, logger = parts.source, parts.objective, parts.evaluation, parts.logger
    trial = open_trial(cfg)  # a tuning trial: validation only, each validation reported to the study
    log_metrics = logger.log if trial is None else trial.wrap(logger.log)
    if trial is not None:
        recorder.update(tune=trial.info)
    data_started = time.perf_counter()
    log_data, split, stats = prepare_data(cfg, source, parts.split_rule)
    users = user_blocks(log_data)  # for the saved model's histories; the log itself is not kept
    source_fingerprint = log_data.source_fingerprint
    del log_data
    check_evaluation_fits(evaluation, split.num_items)
    max_seq_len = cfg.model.max_seq_len
    sequences = pack_train_sequences(split, max_seq_len)
    train = sequences
    if cfg.batches.one_target_per_sample:
        batches = cfg.batches
        train = pack_target_samples(
            split, max_seq_len, batches.max_targets_per_user, batches.targets_drawn_from_last, cfg.seed
        )
    check_training_fits(cfg.trainer.batch_size, len(train), train.sample_name)
    positions = batch_positions(split, max_seq_len, cfg.trainer.batch_size, train.last_position_only)
    sizes = DataSizes(split.num_items, positions)
    effective_settings, capped = effective_objective_settings(objective, sizes)
    warnings = small_evaluation_warnings(stats, cfg.min_eval_samples) + capped
    warnings += dominant_user_warnings(split.test.user.numpy(), min_samples=cfg.min_eval_samples)
    for warning in warnings:
        log.warning(warning)
    test_users, test_items = split.original_users(split.test.user), split.original_items(split.test.target)
    config = OmegaConf.to_container(cfg, resolve=True)
    fingerprints = run_fingerprints(config, source_fingerprint, test_users, test_items)
    recorder.update(
        dataset_stats=stats,
        warnings=warnings,
        fingerprints=fingerprints,
        effective_settings=effective_settings,
    )
    device = resolve_device(cfg.trainer.device)
    prepare_device(device)

    item_seq = split.item_seq.to(device)
    check_sampled_candidates(evaluation, split, item_seq)
    train = train.to(device)
    # The catalog statistics count the training sequences' input events, whatever a sample is.
    catalog = CatalogStats(split.num_items, train_item_counts(sequences, split.num_items)).to(device)
    seed_everything(cfg.seed)
    model = instantiate(cfg.model, num_items=split.num_items).to(device)
    objective = objective.to(device)
    data_seconds = time.perf_counter() - data_started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    autocast = autocast_for(device, cfg.trainer.bf16)

    def model_scores(inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        with autocast:
            return model.score(model.last_hidden(inputs, lengths)).float()

    valid = validation_subset(split.valid, getattr(evaluation, "valid_max_samples", None))
    if len(valid) < len(split.valid):
        recorder.update(
            validation_subset={"samples": len(valid), "of": len(split.valid), "seed": SUBSET_SEED}
        )

    def validate() -> dict:
        return evaluation.evaluate(model_scores, valid, item_seq, max_seq_len, split.num_items).metrics

    result = fit(
        model,
        objective,
        train,
        catalog,
        validate,
        cfg.trainer,
        device,
        cfg.seed,
        recorder,
        log_metrics,
    )
    if trial is not None:  # trials select on validation only: the test set is never touched
        _record_fit(recorder, result, {"best_valid": result.best_metrics}, device, data_seconds, None)
        print(f"{cfg.name}: trial {trial.info['number']}, best validation {result.best_metrics}")
        return {}

    load_checkpoint(model, recorder.checkpoint_path)
    model.eval()
    # Full-catalog protocols rank each sample under both seen-items conventions in the same pass: the
    # primary one (evaluation.exclude_seen) and the other one (`test_other`), as peers report either.
    both = {"both_conventions": True} if hasattr(evaluation, "exclude_seen") else {}
    test_started = time.perf_counter()
    test = evaluation.evaluate(model_scores, split.test, item_seq, max_seq_len, split.num_items, **both)
    test_seconds = time.perf_counter() - test_started
    extra = {OTHER_RANK_COLUMN: test.other.ranks} if test.other is not None else {}
    if split.item_train_events is not None:
        extra |= sample_keys(split.test, split.item_train_events)
        recorder.update(segments=segment_definitions(split.user_train_events, split.item_train_events))
    recorder.write_test_ranks(test_users, test_items, test.ranks, extra)
    metrics = {"best_valid": result.best_metrics, "test": test.metrics}
    if test.other is not None:
        metrics["test_other"] = test.other.metrics
        valid = evaluation.evaluate(model_scores, split.valid, item_seq, max_seq_len, split.num_items, **both)
        metrics["best_valid_other"] = valid.other.metrics
    test_user_ids = split.test.user.numpy()
    intervals = metric_intervals(test.ranks.numpy(), evaluation.ks, users=test_user_ids)
    test_ci = {
        "level": LEVEL,
        "samples": len(test.ranks),
        "users": len(np.unique(test_user_ids)),
        "clustered_by": "user",
        "intervals": intervals,
    }
    if hasattr(source, "oracle_scores"):
        metrics["oracle_test"] = _oracle_metrics(source, split, evaluation, item_seq, max_seq_len)

    recorder.update(test_ci=test_ci)
    _record_fit(recorder, result, metrics, device, data_seconds, (test_seconds, len(split.test)))
    save_model(
        recorder.run_dir,
        recorder.checkpoint_path,
        model,
        cfg,
        split.item_seq,
        users,
        split.item_ids,
        trained_on="the split's training sequences (best validation step)",
    )
    logger.summary({f"test/{k}": v for k, v in test.metrics.items()} | {"best_step": result.best_step})
    print(format_metrics(cfg.name, metrics, test_ci, warnings))
    return test.metrics


def _record_fit(recorder, result, metrics: dict, device, data_seconds: float, test) -> None:
    """Metrics, steps and timings of a finished fit; test: (seconds, samples), None for a tuning trial."""
    peak_memory = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _peak_rss_bytes()
    test_seconds = test[0] if test is not None else 0.0
    timings = {
        "data_seconds": round(data_seconds, 3),
        "train_seconds": round(result.train_seconds, 3),
        "train_events": result.train_events,
        "train_events_per_second": round(result.train_events / max(result.train_seconds, 1e-9), 1),
        "eval_seconds": round(result.eval_seconds + test_seconds, 3),
    }
    if test is not None:
        timings["test_seconds"] = round(test_seconds, 3)
        timings["test_samples_per_second"] = round(test[1] / max(test_seconds, 1e-9), 1)
    timings |= cost_timings(
        result.clock,
        result.train_events,
        result.eval_seconds + test_seconds,
        result.best_step,
        result.best_train_events,
    )
    recorder.update(
        metrics=metrics,
        best_step=result.best_step,
        steps=result.steps,
        epochs=result.epochs,
        stopped_early=result.stopped_early,
        device=str(device),
        timings=timings | {"peak_memory_bytes": peak_memory},
    )


def _oracle_metrics(source, split: SplitData, evaluation, item_seq: torch.Tensor, max_seq_len: int) -> dict:
    """Test metrics of the generator's Bayes-optimal ranking: the ceiling for any objective."""

    def oracle_scores(inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        last_items = inputs[torch.arange(len(inputs), device=inputs.device), lengths - 1]
        return source.oracle_scores(last_items.cpu(), split.item_ids).to(inputs.device)

    return evaluation.evaluate(oracle_scores, split.test, item_seq, max_seq_len, split.num_items).metrics


def _peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def format_metrics(name: str, metrics: dict, test_ci: dict | None = None, warnings: list[str] = ()) -> str:
    """The metrics block printed at the end of a run: test metrics, their sample-level confidence
    intervals, and the run's warnings. The synthetic ceiling (`oracle_test`) stays in run.json:
    `python -m seqrec.compare` prints it once for a whole sweep."""
    row = "  ".join(f"{k}={v:.4f}" for k, v in metrics["test"].items())
    lines = [f"{name}: test metrics (best validation step)", f"  test {row}"]
    if test_ci is not None:
        row = "  ".join(f"{k}=[{low:.4f}, {high:.4f}]" for k, (low, high) in test_ci["intervals"].items())
        users = f" of {test_ci['users']} users" if "users" in test_ci else ""
        lines.append(f"  test {test_ci['level']:.0%} CI over {test_ci['samples']} test samples{users}: {row}")
    lines += [f"  warning: {warning}" for warning in warnings]
    return "\n".join(lines)
