"""Packed tensors and batches: every model input is a right-padded window into SplitData.item_seq."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import NamedTuple

import torch

from seqrec.data.types import SplitData


def gather_windows(
    item_seq: torch.Tensor, start: torch.Tensor, end: torch.Tensor, max_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The last `max_len` items of item_seq[start:end] for every window, right-padded with 0.

    item_seq: [E] int64; start, end: [B] int64 with start <= end.
    Returns inputs [B, max_len] int64 and lengths [B] int64 (= min(end - start, max_len)).
    """
    lengths = torch.clamp(end - start, max=max_len)
    first = end - lengths
    offsets = torch.arange(max_len, device=item_seq.device)
    positions = first[:, None] + offsets[None, :]
    valid = offsets[None, :] < lengths[:, None]
    inputs = item_seq[torch.where(valid, positions, 0)]
    return inputs.masked_fill(~valid, 0), lengths


@dataclass(frozen=True)
class TrainTensors:
    """All training sequences packed once: inputs/targets [N, L] int64 right-padded, lengths [N].

    item_seq [E], sequence_start, sequence_end [N] int64: row n's whole training sequence (not only its
    last L positions) is item_seq[sequence_start[n]:sequence_end[n]], for objectives that need it.
    last_position_only: only each row's last position is a target (seqrec.data.target_samples); else all.
    users: [N] int64, the log's dense user id of each row (SplitData.train_user), for models with user
    embeddings; None where the split does not say.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor
    item_seq: torch.Tensor
    sequence_start: torch.Tensor
    sequence_end: torch.Tensor
    last_position_only: bool = False
    users: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def num_events(self) -> int:
        """Supervised positions per epoch (one per target)."""
        return len(self) if self.last_position_only else int(self.lengths.sum())

    @property
    def sample_name(self) -> str:
        """What a row is, for messages."""
        return "training samples (target events)" if self.last_position_only else "training sequences"

    def to(self, device: torch.device | str) -> TrainTensors:
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        return TrainTensors(
            **{name: v.to(device) if isinstance(v, torch.Tensor) else v for name, v in values.items()}
        )


def pack_train_sequences(split: SplitData, max_len: int) -> TrainTensors:
    """Inputs are each sequence's events but the last, targets its events but the first; both are
    truncated to the last `max_len` positions, so input t is followed by target t."""
    inputs, lengths = gather_windows(split.item_seq, split.train_start, split.train_end - 1, max_len)
    targets, _ = gather_windows(split.item_seq, split.train_start + 1, split.train_end, max_len)
    return TrainTensors(
        inputs, targets, lengths, split.item_seq, split.train_start, split.train_end, users=split.train_user
    )


def train_item_counts(train: TrainTensors, num_items: int) -> torch.Tensor:
    """[I] float: how often each item occurs among the training input events."""
    mask = torch.arange(train.inputs.shape[1], device=train.inputs.device)[None, :] < train.lengths[:, None]
    return torch.bincount(train.inputs[mask], minlength=num_items).to(torch.float32)


class TrainBatch(NamedTuple):
    """inputs, targets: [B, L] int64 with L the batch's longest row; lengths: [B]; positions: [N] int64
    flat indices (row * L + t) of the supervised positions (every real one, or each row's last), computed
    on the host so the training step never waits for the device; sequence_start, sequence_end: [B] int64,
    each row's whole training sequence in TrainTensors.item_seq; users: [B] int64 each row's dense user id
    (None when TrainTensors.users is)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor
    positions: torch.Tensor
    sequence_start: torch.Tensor
    sequence_end: torch.Tensor
    users: torch.Tensor | None = None


class TrainBatches:
    """Shuffled batches of training rows (drop last), drawn with a dedicated generator so that
    every objective with the same seed sees exactly the same batches. Each batch is cut to its longest
    row: right padding beyond it changes nothing for causal attention, and costs time in the padded
    layout (with dropout, a shorter batch draws different masks)."""

    def __init__(self, train: TrainTensors, batch_size: int, seed: int):
        if batch_size > len(train):
            raise ValueError(
                f"trainer.batch_size={batch_size} exceeds the {len(train)} {train.sample_name}; "
                "lower trainer.batch_size or use more data"
            )
        self.train = train
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.host_lengths = train.lengths.cpu()
        self.offsets = torch.arange(train.inputs.shape[1])

    def __len__(self) -> int:
        return len(self.train) // self.batch_size

    def __iter__(self) -> Iterator[TrainBatch]:
        device = self.train.lengths.device
        order = torch.randperm(len(self.train), generator=self.generator)
        for i in range(len(self)):
            rows = order[i * self.batch_size : (i + 1) * self.batch_size]
            lengths = self.host_lengths[rows]
            width = int(lengths.max())
            if self.train.last_position_only:
                positions = torch.arange(len(rows)) * width + lengths - 1
            else:
                real = self.offsets[None, :width] < lengths[:, None]
                positions = real.flatten().nonzero().squeeze(1)
            if device.type == "cuda":
                rows, positions = rows.pin_memory(), positions.pin_memory()
            rows = rows.to(device, non_blocking=True)
            yield TrainBatch(
                self.train.inputs[rows, :width],
                self.train.targets[rows, :width],
                self.train.lengths[rows],
                positions.to(device, non_blocking=True),
                self.train.sequence_start[rows],
                self.train.sequence_end[rows],
                None if self.train.users is None else self.train.users[rows],
            )
