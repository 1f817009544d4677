"""One run, end to end: config -> data -> split -> model + objective -> fit -> test -> run record."""

from __future__ import annotations

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

from seqrec.config import check_config, resolve_device
from seqrec.data.batches import pack_train_sequences, train_item_counts
from seqrec.data.preprocess import load_log
from seqrec.data.splits import dataset_statistics
from seqrec.data.types import InteractionLog, SplitData
from seqrec.losses.base import CatalogStats
from seqrec.records import RunRecorder
from seqrec.train import autocast_for, fit, load_checkpoint, prepare_device


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
    check_config(cfg)
    source = instantiate(cfg.dataset)
    split_rule = instantiate(cfg.split)
    objective = instantiate(cfg.loss)
    evaluation = instantiate(cfg.evaluation)
    logger = instantiate(cfg.logger)
    instantiate(cfg.model, num_items=1)  # validates model hyperparameters before the catalog is known

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
        wandb_info = logger.start(
            config=resolved | {"choices": choices},
            name=cfg.name,
            group=sweep_group,
            tags=[choices.get("loss", "")],
            run_dir=run_dir,
        )
        logger_started = True
        recorder.update(wandb=wandb_info)
        metrics = _train_and_test(cfg, source, split_rule, objective, evaluation, recorder, logger)
        recorder.finish("completed")
        logger.finish(exit_code=0)
        return metrics
    except KeyboardInterrupt as interrupt:
        recorder.finish("interrupted", error=f"{type(interrupt).__name__}: {interrupt}".rstrip(": "))
        if logger_started:
            logger.finish(exit_code=130)
        raise
    except BaseException as error:
        recorder.finish("failed", error=f"{type(error).__name__}: {error}")
        if logger_started:
            logger.finish(exit_code=1)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)


def _raise_interrupted(signum, frame) -> None:
    raise RunInterrupted(f"received signal {signal.Signals(signum).name}")


def _train_and_test(cfg, source, split_rule, objective, evaluation, recorder: RunRecorder, logger) -> dict:
    data_started = time.perf_counter()
    log, split, stats = prepare_data(cfg, source, split_rule)
    recorder.update(dataset_stats=stats)
    device = resolve_device(cfg.trainer.device)
    prepare_device(device)
    max_seq_len = cfg.model.max_seq_len

    train = pack_train_sequences(split, max_seq_len).to(device)
    catalog = CatalogStats(split.num_items, train_item_counts(train, split.num_items))
    item_seq = split.item_seq.to(device)
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

    def validate() -> dict:
        return evaluation.evaluate(model_scores, split.valid, item_seq, max_seq_len, split.num_items).metrics

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
        logger.log,
    )

    load_checkpoint(model, recorder.checkpoint_path)
    model.eval()
    test_started = time.perf_counter()
    test = evaluation.evaluate(model_scores, split.test, item_seq, max_seq_len, split.num_items)
    test_seconds = time.perf_counter() - test_started
    recorder.write_test_ranks(
        split.original_users(split.test.user), split.original_items(split.test.target), test.ranks
    )
    metrics = {"best_valid": result.best_metrics, "test": test.metrics}
    if hasattr(source, "oracle_scores"):
        metrics["oracle_test"] = _oracle_metrics(source, split, evaluation, item_seq, max_seq_len)

    peak_memory = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _peak_rss_bytes()
    recorder.update(
        metrics=metrics,
        best_step=result.best_step,
        steps=result.steps,
        epochs=result.epochs,
        stopped_early=result.stopped_early,
        device=str(device),
        timings={
            "data_seconds": round(data_seconds, 3),
            "train_seconds": round(result.train_seconds, 3),
            "train_events": result.train_events,
            "train_events_per_second": round(result.train_events / max(result.train_seconds, 1e-9), 1),
            "eval_seconds": round(result.eval_seconds + test_seconds, 3),
            "test_samples_per_second": round(len(split.test) / max(test_seconds, 1e-9), 1),
            "peak_memory_bytes": peak_memory,
        },
    )
    logger.summary({f"test/{k}": v for k, v in test.metrics.items()} | {"best_step": result.best_step})
    print(format_metrics(cfg.name, metrics))
    return test.metrics


def _oracle_metrics(source, split: SplitData, evaluation, item_seq: torch.Tensor, max_seq_len: int) -> dict:
    """Test metrics of the generator's Bayes-optimal ranking: the ceiling for any objective."""

    def oracle_scores(inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        last_items = inputs[torch.arange(len(inputs), device=inputs.device), lengths - 1]
        return source.oracle_scores(last_items.cpu(), split.item_ids).to(inputs.device)

    return evaluation.evaluate(oracle_scores, split.test, item_seq, max_seq_len, split.num_items).metrics


def _peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def format_metrics(name: str, metrics: dict) -> str:
    lines = [f"{name}: test metrics (best validation step)"]
    for split_name in ("test", "oracle_test"):
        if split_name in metrics:
            row = "  ".join(f"{k}={v:.4f}" for k, v in metrics[split_name].items())
            lines.append(f"  {split_name:<11} {row}")
    return "\n".join(lines)
