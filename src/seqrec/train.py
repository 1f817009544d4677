"""The training loop: batch, forward, objective, backward, step; validate every N steps; keep the best."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import math
import platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:  # seqrec.validation imports this module
    from seqrec.validation import Validation

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

    def pop(self, step: int) -> float:
        """The mean, restarting the sum; a NaN or infinite mean (by training step `step`) is an error."""
        value = (self.total / max(self.count, 1)).item()
        self.total, self.count = torch.zeros((), device=self.device), 0
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"training loss became {value} by step {step}; lower trainer.lr, set trainer.grad_clip_norm, "
                "or check the objective's hyperparameters (e.g. loss.temperature)"
            )
        return value


def autocast_for(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA (matmuls in bf16, losses cast back to float32 by the objectives)."""
    if device.type == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def inference_scores(model: SasRecBackbone, autocast: contextlib.AbstractContextManager) -> Callable:
    """The score function of one evaluation pass over `model`'s current weights (evaluation's ScoreFn):
    [B, I] float scores at each row's last position. The item vectors are computed once for the pass,
    not once per batch (with two-tower projections that is a matmul over the whole catalog)."""
    with torch.inference_mode(), autocast:
        items = model.item_vectors()

    def scores(inputs: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor | None) -> torch.Tensor:
        with autocast:
            return model.score(model.last_hidden(inputs, lengths, users), users, items).float()

    return scores


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


@dataclass(frozen=True)
class TrainingParts:
    """What every training step of a run uses and no step changes (the weights aside).

    encode: the backbone's forward (`model` itself, or its torch.compile wrapper); params: the trainable
    parameters of model and objective, which `optimizer` updates; item_seq: TrainTensors.item_seq, so that
    objectives can read each row's whole training sequence.
    """

    model: SasRecBackbone
    objective: Objective
    catalog: CatalogStats
    encode: Callable
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    grad_clip_norm: float | None
    autocast: contextlib.AbstractContextManager
    device: torch.device
    item_seq: torch.Tensor | None = None

    @classmethod
    def build(
        cls,
        model: SasRecBackbone,
        objective: Objective,
        catalog: CatalogStats,
        settings: DictConfig,
        device: torch.device,
        item_seq: torch.Tensor | None = None,
    ) -> TrainingParts:
        """The parts of a run with the trainer settings `settings` (optimizer, clipping, compile, bf16)."""
        params = [p for p in [*model.parameters(), *objective.parameters()] if p.requires_grad]
        optimizer = make_optimizer(
            params, settings.lr, settings.weight_decay, device, tuple(settings.adam_betas), settings.adam_eps
        )
        return cls(
            model=model,
            objective=objective,
            catalog=catalog,
            # Compilation pays off only for long GPU runs; it is one switch.
            encode=torch.compile(model) if settings.compile else model,
            params=params,
            optimizer=optimizer,
            grad_clip_norm=settings.grad_clip_norm,
            autocast=autocast_for(device, settings.bf16),
            device=device,
            item_seq=item_seq,
        )


def fit(
    parts: TrainingParts,
    train: TrainTensors,
    settings: DictConfig,
    seed: int,
    validation: Validation,
    log_metrics: Callable[[dict, int], None],
) -> FitResult:
    """Train parts.model with parts.objective on `train`'s shuffled batches, validating on the trainer's
    cadence (every settings.eval_every_steps steps and/or eval_every_epochs epochs, stopping after
    settings.patience validations without improvement); `validation` keeps the best weights (by
    settings.select_metric) in recorder.checkpoint_path."""
    batches = TrainBatches(train, settings.batch_size, seed)
    total_steps = settings.epochs * len(batches)
    if settings.max_steps is not None:
        total_steps = min(total_steps, settings.max_steps)
    # Two running sums: one for the progress log every LOG_EVERY_STEPS, one for each validation entry.
    log_loss, valid_loss = RunningMean(parts.device), RunningMean(parts.device)
    progress = tqdm(total=total_steps, disable=not settings.progress, desc="train", unit="step", leave=False)
    validation.start_clocks()
    step, epoch, train_events, stopped_early = 0, 0, 0, False
    parts.model.train()
    while step < total_steps and not stopped_early:
        for batch in batches:
            loss = training_step(parts, batch).detach()
            step += 1
            train_events += len(batch.positions)
            log_loss.add(loss)
            valid_loss.add(loss)
            progress.update()
            if step % LOG_EVERY_STEPS == 0:
                recent = log_loss.pop(step)
                log_metrics({"train/loss": recent}, step)
                progress.set_postfix(
                    loss=f"{recent:.4f}", **{settings.select_metric: f"{validation.last_value:.4f}"}
                )
            if settings.eval_every_steps and step % settings.eval_every_steps == 0:
                validation.run(step, step / len(batches), train_events, valid_loss)
                stopped_early = validation.best.out_of_patience
            if step >= total_steps or stopped_early:
                break
        epoch += 1
        if settings.eval_every_epochs and epoch % settings.eval_every_epochs == 0 and not stopped_early:
            if validation.last_step != step:  # not validated at this step by the step cadence
                validation.run(step, float(epoch), train_events, valid_loss)
                stopped_early = validation.best.out_of_patience
    # The final weights are a candidate too, unless the protocol validates only on its cadence; a run
    # that never validated validates once, so that best weights exist.
    if validation.last_step != step and (settings.validate_at_end or validation.last_step < 0):
        validation.run(step, step / len(batches), train_events, valid_loss)
    train_seconds = validation.stop_clocks()
    progress.close()
    best = validation.best
    return FitResult(
        best_metrics=best.metrics,
        best_step=best.step,
        steps=step,
        epochs=step / len(batches),
        train_seconds=train_seconds,
        train_events=train_events,
        eval_seconds=validation.seconds,
        stopped_early=stopped_early,
        best_train_events=best.train_events,
        clock=validation.clock,
    )


def training_step(parts: TrainingParts, batch: TrainBatch) -> torch.Tensor:
    """One optimizer step on one batch; returns the (undetached) loss without waiting for the device."""
    model = parts.model
    batch = model.training_batch(batch) if hasattr(model, "training_batch") else batch  # e.g. SSE-PT's SSE
    with parts.autocast:
        hidden = parts.encode(batch.inputs, batch.lengths, batch.users)
    seq_len = batch.inputs.shape[1]
    rows = batch.positions // seq_len
    users = None if batch.users is None else batch.users[rows]
    loss = parts.objective(
        ObjectiveInput(
            queries=model.query_vectors(hidden.flatten(0, 1)[batch.positions], users),
            positives=batch.targets.flatten()[batch.positions],
            rows=rows,
            sequences=batch.inputs,
            lengths=batch.lengths,
            item_embeddings=model.item_vectors(),
            catalog=parts.catalog,
            item_seq=parts.item_seq,
            history_start=batch.sequence_start,
            history_end=batch.sequence_end,
        )
    )
    parts.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if parts.grad_clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(parts.params, parts.grad_clip_norm)
    parts.optimizer.step()
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
