"""The training loop: batch, forward, objective, backward, step; validate every N steps; keep the best."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from seqrec.cost import TrainingClock
from seqrec.data.batches import TrainBatch, TrainBatches, TrainTensors
from seqrec.errors import UserError
from seqrec.files import atomic_path
from seqrec.folders import describe_os_error
from seqrec.losses.base import CatalogStats, Objective, ObjectiveInput
from seqrec.model import SasRecBackbone
from seqrec.records import RunRecorder

LOG_EVERY_STEPS = 10


class NonFiniteLossError(UserError, RuntimeError):
    """The training loss became NaN or infinite (the message says which settings to change)."""


class CheckpointError(UserError, RuntimeError):
    """The best weights could not be written (e.g. a full disk)."""


@dataclass
class FitResult:
    best_metrics: dict
    best_step: int
    steps: int
    epochs: float
    train_seconds: float
    train_events: int
    eval_seconds: float
    stopped_early: bool
    best_train_events: int = 0  # training events seen by the best step
    clock: TrainingClock | None = None  # wall, process-CPU and CUDA seconds of the training steps


class RunningMean:
    """Mean of the losses added since the last `pop`, accumulated on the device (no host sync per step)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.total = torch.zeros((), device=device)
        self.count = 0

    def add(self, value: torch.Tensor) -> None:
        self.total += value
        self.count += 1

    def pop(self) -> float:
        value = (self.total / max(self.count, 1)).item()
        self.total, self.count = torch.zeros((), device=self.device), 0
        return value


def autocast_for(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA (matmuls in bf16, losses cast back to float32 by the objectives)."""
    if device.type == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def keep_freed_memory_in_process() -> bool:
    """Stop glibc from returning large freed blocks to the OS. Every training step allocates and frees the
    same large activations; by default each is a fresh mmap whose pages the kernel must zero again
    (about a third of a CPU step). Returns whether the setting was applied (glibc only)."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**30))


def prepare_device(device: torch.device) -> None:
    """Process-wide speed settings for the device a run trains on."""
    if device.type == "cpu":
        keep_freed_memory_in_process()
    else:
        # Objectives compute logits in float32 outside autocast; TF32 runs those matmuls on tensor cores.
        torch.set_float32_matmul_precision("high")


def device_sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fit(
    model: SasRecBackbone,
    objective: Objective,
    train: TrainTensors,
    catalog: CatalogStats,
    validate: Callable[[], dict],
    settings: DictConfig,
    device: torch.device,
    seed: int,
    recorder: RunRecorder,
    log_metrics: Callable[[dict, int], None],
) -> FitResult:
    """Train `model` with `objective`; `validate()` returns validation metrics of the current weights.
    The best weights (by settings.select_metric) are saved to recorder.checkpoint_path."""
    batches = TrainBatches(train, settings.batch_size, seed)
    total_steps = settings.epochs * len(batches)
    if settings.max_steps is not None:
        total_steps = min(total_steps, settings.max_steps)
    params = [p for p in [*model.parameters(), *objective.parameters()] if p.requires_grad]
    optimizer = make_optimizer(
        params, settings.lr, settings.weight_decay, device, tuple(settings.adam_betas), settings.adam_eps
    )
    # Compilation pays off only for long GPU runs; it is one switch.
    encode = torch.compile(model) if settings.compile else model
    autocast = autocast_for(device, settings.bf16)

    best_value, best_metrics, best_step, stale, validated_step = -math.inf, {}, 0, 0, -1
    best_train_events = 0
    clock = TrainingClock(device)
    step, train_events, eval_seconds, stopped_early = 0, 0, 0.0, False
    # Two running sums: one for the progress log every LOG_EVERY_STEPS, one for each validation entry.
    log_loss = RunningMean(device)
    valid_loss = RunningMean(device)
    last_metric = float("nan")
    progress = tqdm(total=total_steps, disable=not settings.progress, desc="train", unit="step", leave=False)
    started = time.perf_counter()
    clock.start()

    def mean_recent_loss(running: RunningMean) -> float:
        value = running.pop()
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"training loss became {value} by step {step}; lower trainer.lr, set trainer.grad_clip_norm, "
                "or check the objective's hyperparameters (e.g. loss.temperature)"
            )
        return value

    def run_validation(epoch: float) -> None:
        nonlocal best_value, best_metrics, best_step, stale, eval_seconds, last_metric, validated_step
        nonlocal best_train_events
        validated_step = step
        train_loss = mean_recent_loss(valid_loss) if valid_loss.count else float("nan")
        # NaN weights would score every item equally and fake a perfect ranking.
        if not all(torch.isfinite(p).all() for p in params):
            raise NonFiniteLossError(
                f"model weights became NaN or infinite by step {step}; "
                "lower trainer.lr or set trainer.grad_clip_norm"
            )
        device_sync(device)
        clock.stop()
        eval_started = time.perf_counter()
        model.eval()
        metrics = validate()
        model.train()
        eval_seconds += time.perf_counter() - eval_started
        if settings.select_metric not in metrics:
            raise ValueError(
                f"trainer.select_metric={settings.select_metric!r} is not a validation metric; "
                f"choose one of {sorted(metrics)}"
            )
        last_metric = metrics[settings.select_metric]
        entry = {
            "step": step,
            "epoch": round(epoch, 4),
            "train_loss": train_loss,
            "elapsed_seconds": round(time.perf_counter() - started, 3),
            "train_events": train_events,
            "train_cpu_seconds": round(clock.cpu_seconds, 3),
            "valid": metrics,
        }
        recorder.log_validation(entry)
        log_metrics({f"valid/{k}": v for k, v in metrics.items()} | {"epoch": epoch}, step)
        if last_metric > best_value:
            best_value, best_metrics, best_step, stale = last_metric, metrics, step, 0
            best_train_events = train_events
            save_checkpoint(model, recorder.checkpoint_path)
        else:
            stale += 1
        clock.start()

    model.train()
    epoch = 0
    while step < total_steps and not stopped_early:
        for batch in batches:
            loss = training_step(
                encode,
                model,
                objective,
                batch,
                catalog,
                optimizer,
                params,
                settings.grad_clip_norm,
                autocast,
                train.item_seq,
            )
            step += 1
            train_events += len(batch.positions)
            log_loss.add(loss.detach())
            valid_loss.add(loss.detach())
            progress.update()
            if step % LOG_EVERY_STEPS == 0:
                recent = mean_recent_loss(log_loss)
                log_metrics({"train/loss": recent}, step)
                progress.set_postfix(loss=f"{recent:.4f}", **{settings.select_metric: f"{last_metric:.4f}"})
            if settings.eval_every_steps and step % settings.eval_every_steps == 0:
                run_validation(step / len(batches))
                if settings.patience is not None and stale >= settings.patience:
                    stopped_early = True
            if step >= total_steps or stopped_early:
                break
        epoch += 1
        if settings.eval_every_epochs and epoch % settings.eval_every_epochs == 0 and not stopped_early:
            if not (settings.eval_every_steps and step % settings.eval_every_steps == 0):
                run_validation(float(epoch))
                if settings.patience is not None and stale >= settings.patience:
                    stopped_early = True
    # The final weights are a candidate too, unless the protocol validates only on its cadence; a run
    # that never validated validates once, so that best weights exist.
    if validated_step != step and (settings.validate_at_end or validated_step < 0):
        run_validation(step / len(batches))
    device_sync(device)
    clock.stop()
    progress.close()
    train_seconds = time.perf_counter() - started - eval_seconds
    return FitResult(
        best_metrics=best_metrics,
        best_step=best_step,
        steps=step,
        epochs=step / len(batches),
        train_seconds=train_seconds,
        train_events=train_events,
        eval_seconds=eval_seconds,
        stopped_early=stopped_early,
        best_train_events=best_train_events,
        clock=clock,
    )


def training_step(
    encode: Callable,
    model: SasRecBackbone,
    objective: Objective,
    batch: TrainBatch,
    catalog: CatalogStats,
    optimizer: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    grad_clip_norm: float | None,
    autocast: contextlib.AbstractContextManager,
    item_seq: torch.Tensor | None = None,
) -> torch.Tensor:
    """One optimizer step on one batch; returns the (undetached) loss without waiting for the device.
    item_seq: TrainTensors.item_seq, so that objectives can read each row's whole training sequence."""
    with autocast:
        hidden = encode(batch.inputs, batch.lengths)
    seq_len = batch.inputs.shape[1]
    loss = objective(
        ObjectiveInput(
            queries=model.query_vectors(hidden.flatten(0, 1)[batch.positions]),
            positives=batch.targets.flatten()[batch.positions],
            rows=batch.positions // seq_len,
            sequences=batch.inputs,
            lengths=batch.lengths,
            item_embeddings=model.item_vectors(),
            catalog=catalog,
            item_seq=item_seq,
            history_start=batch.sequence_start,
            history_end=batch.sequence_end,
        )
    )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, grad_clip_norm)
    optimizer.step()
    return loss


def make_optimizer(
    params: list[torch.nn.Parameter],
    lr: float,
    weight_decay: float,
    device: torch.device,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
):
    # The fused kernel updates all parameters in one launch on CUDA.
    return torch.optim.Adam(
        params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=device.type == "cuda"
    )


def save_checkpoint(model: torch.nn.Module, path) -> None:
    """The model's weights into `path`, through a temporary file that a failed write removes. Writing
    through a Python file keeps the OSError of a full disk (torch's own file writer says only "unexpected
    pos"), reported in one line."""
    try:
        with atomic_path(path) as temp, open(temp, "wb") as file:
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, file)
    except BaseException as error:
        os_error = _os_error_in(error)
        if os_error is None:
            raise
        fix = "free space there, or set hydra.run.dir=DIR (hydra.sweep.dir=DIR with -m) on a disk with room"
        if os_error.errno in (errno.ENOSPC, errno.EDQUOT):
            message = f"no space left on device while saving the best weights to {path}: {fix}"
        else:
            message = f"could not save the best weights to {path}: {describe_os_error(os_error)}; {fix}"
        raise CheckpointError(message) from error


def _os_error_in(error: BaseException | None) -> OSError | None:
    """The OSError among `error` and the exceptions it was raised from or during: torch's writer turns a
    failed write into a RuntimeError ("unexpected pos") raised while handling the OSError."""
    while error is not None:
        if isinstance(error, OSError):
            return error
        error = error.__cause__ or error.__context__
    return None


def load_checkpoint(model: torch.nn.Module, path) -> None:
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
