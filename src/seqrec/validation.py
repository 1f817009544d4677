"""Validation during training: each validation's timing and history.jsonl entry; the best weights so far."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig

from seqrec.cost import TrainingClock
from seqrec.records import RunRecorder
from seqrec.train import NonFiniteLossError, RunningMean, TrainingParts, device_sync, save_checkpoint


class BestWeights:
    """The best validation so far: its selection-metric value, metrics, step and the training events seen
    by then, with its weights saved to `checkpoint_path`; and how many validations since have not beaten
    it (`stale`), for early stopping after `patience` of them (None: never)."""

    def __init__(self, model: torch.nn.Module, checkpoint_path: Path, patience: int | None):
        self.model, self.checkpoint_path, self.patience = model, checkpoint_path, patience
        self.value = -math.inf
        self.metrics: dict = {}
        self.step = 0
        self.train_events = 0
        self.stale = 0

    def update(self, value: float, metrics: dict, step: int, train_events: int) -> None:
        """A validation of the current weights: strictly better becomes the best (and is saved); anything
        else, NaN included, is one more stale validation."""
        if value > self.value:
            self.value, self.metrics, self.step, self.train_events = value, metrics, step, train_events
            self.stale = 0
            save_checkpoint(self.model, self.checkpoint_path)
        else:
            self.stale += 1

    @property
    def out_of_patience(self) -> bool:
        return self.patience is not None and self.stale >= self.patience


class Validation:
    """Validates the current weights with `evaluate()` (their validation metrics), writes each
    validation's history.jsonl entry, logs it, and keeps the best weights (`best`).

    It holds the fit's clocks, since validating pauses them: `clock` times the training steps only,
    `seconds` is the time spent evaluating, and the wall clock runs from `start_clocks()`.
    """

    def __init__(
        self,
        evaluate: Callable[[], dict],
        parts: TrainingParts,
        settings: DictConfig,
        recorder: RunRecorder,
        log_metrics: Callable[[dict, int], None],
    ):
        self.evaluate, self.parts, self.recorder, self.log_metrics = evaluate, parts, recorder, log_metrics
        self.select_metric = settings.select_metric
        self.best = BestWeights(parts.model, recorder.checkpoint_path, settings.patience)
        self.clock = TrainingClock(parts.device)
        self.seconds = 0.0
        self.last_step = -1  # the step of the latest validation; -1 before the first
        self.last_value = float("nan")  # its selection metric
        self._started = 0.0

    def start_clocks(self) -> None:
        self._started = time.perf_counter()
        self.clock.start()

    def stop_clocks(self) -> float:
        """Stops the training clock; returns the wall seconds since start_clocks() less evaluation's."""
        device_sync(self.parts.device)
        self.clock.stop()
        return time.perf_counter() - self._started - self.seconds

    def run(self, step: int, epoch: float, train_events: int, recent_loss: RunningMean) -> None:
        """Validate the weights after `step` steps (`epoch` epochs, `train_events` training events);
        recent_loss: the training losses since the previous validation."""
        self.last_step = step
        train_loss = recent_loss.pop(step) if recent_loss.count else float("nan")
        # NaN weights would score every item equally and fake a perfect ranking.
        if not all(torch.isfinite(p).all() for p in self.parts.params):
            raise NonFiniteLossError(
                f"model weights became NaN or infinite by step {step}; "
                "lower trainer.lr or set trainer.grad_clip_norm"
            )
        device_sync(self.parts.device)
        self.clock.stop()
        eval_started = time.perf_counter()
        self.parts.model.eval()
        metrics = self.evaluate()
        self.parts.model.train()
        self.seconds += time.perf_counter() - eval_started
        if self.select_metric not in metrics:
            raise ValueError(
                f"trainer.select_metric={self.select_metric!r} is not a validation metric; "
                f"choose one of {sorted(metrics)}"
            )
        self.last_value = metrics[self.select_metric]
        entry = {
            "step": step,
            "epoch": round(epoch, 4),
            "train_loss": train_loss,
            "elapsed_seconds": round(time.perf_counter() - self._started, 3),
            "train_events": train_events,
            "train_cpu_seconds": round(self.clock.cpu_seconds, 3),
            "valid": metrics,
        }
        self.recorder.log_validation(entry)
        self.log_metrics({f"valid/{k}": v for k, v in metrics.items()} | {"epoch": epoch}, step)
        self.best.update(self.last_value, metrics, step, train_events)
        self.clock.start()
