"""gather_windows, packing, item counts and batching against loop references on tiny inputs."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from seqrec.data.batches import TrainBatches, gather_windows, pack_train_sequences, train_item_counts
from seqrec.data.types import EvalSamples, SplitData


def reference_window(item_seq: list[int], start: int, end: int, max_len: int) -> tuple[list[int], int]:
    """Last max_len items of item_seq[start:end], right-padded with 0, and the kept length."""
    kept = item_seq[start:end][-max_len:]
    return kept + [0] * (max_len - len(kept)), len(kept)


def random_windows(rng: random.Random, num_events: int, count: int) -> tuple[list[int], list[int]]:
    """Windows of every kind: empty (also at the very end of item_seq), short, and the whole sequence."""
    starts, ends = [num_events, 0, 0], [num_events, 0, num_events]
    for _ in range(count):
        start = rng.randint(0, num_events)
        starts.append(start)
        ends.append(rng.randint(start, num_events))
    return starts, ends


def make_split(
    item_seq: list[int], train_start: list[int], train_end: list[int], num_items: int
) -> SplitData:
    none = torch.zeros(0, dtype=torch.int64)
    no_samples = EvalSamples(none, none, none, none)
    return SplitData(
        item_seq=torch.tensor(item_seq),
        train_start=torch.tensor(train_start),
        train_end=torch.tensor(train_end),
        valid=no_samples,
        test=no_samples,
        num_items=num_items,
        item_ids=np.arange(num_items),
    )


def random_split(rng: random.Random, num_sequences: int, num_items: int = 7) -> SplitData:
    """Training sequences of 2..12 events laid out back to back (with gaps, as evaluation events would be)."""
    item_seq, starts, ends = [], [], []
    for _ in range(num_sequences):
        item_seq += [rng.randrange(num_items) for _ in range(rng.randint(0, 2))]
        starts.append(len(item_seq))
        item_seq += [rng.randrange(num_items) for _ in range(rng.randint(2, 12))]
        ends.append(len(item_seq))
    return make_split(item_seq, starts, ends, num_items)


@pytest.mark.parametrize("max_len", [1, 3, 8, 20])
def test_gather_windows_matches_loop(max_len):
    rng = random.Random(max_len)
    item_seq = [
        rng.randrange(1, 50) for _ in range(2 * max_len + 5)
    ]  # no 0 in the data, so padding is visible
    starts, ends = random_windows(rng, len(item_seq), 60)
    inputs, lengths = gather_windows(
        torch.tensor(item_seq), torch.tensor(starts), torch.tensor(ends), max_len
    )
    assert inputs.shape == (len(starts), max_len) and inputs.dtype == torch.int64
    for row, (start, end) in enumerate(zip(starts, ends, strict=True)):
        expected_inputs, expected_length = reference_window(item_seq, start, end, max_len)
        assert inputs[row].tolist() == expected_inputs
        assert int(lengths[row]) == expected_length
    assert (lengths == 0).any() and (torch.tensor(ends) - torch.tensor(starts) > max_len).any()


@pytest.mark.parametrize("max_len", [1, 4, 20])
def test_pack_train_sequences_aligns_input_t_with_target_t(max_len):
    rng = random.Random(10 + max_len)
    split = random_split(rng, 9)
    # item_seq = event positions, so an item says where it came from.
    positions = make_split(
        list(range(len(split.item_seq))), split.train_start.tolist(), split.train_end.tolist(), 1
    )
    by_position = pack_train_sequences(positions, max_len)
    packed = pack_train_sequences(split, max_len)
    item_seq = split.item_seq.tolist()
    for n, (start, end) in enumerate(zip(split.train_start.tolist(), split.train_end.tolist(), strict=True)):
        length = min(end - start - 1, max_len)
        assert int(packed.lengths[n]) == length
        assert packed.inputs[n].tolist() == reference_window(item_seq, start, end - 1, max_len)[0]
        assert packed.targets[n].tolist() == reference_window(item_seq, start + 1, end, max_len)[0]
        # The target at t is the event right after the input at t, and the last target is the last event.
        assert (by_position.targets[n, :length] == by_position.inputs[n, :length] + 1).all()
        assert int(by_position.targets[n, length - 1]) == end - 1
    assert packed.num_events == sum(
        min(e - s - 1, max_len) for s, e in zip(split.train_start, split.train_end, strict=True)
    )


@pytest.mark.parametrize("max_len", [2, 5, 20])
def test_train_item_counts_match_brute_force(max_len):
    rng = random.Random(20 + max_len)
    split = random_split(rng, 12, num_items=9)
    packed = pack_train_sequences(split, max_len)
    expected = [0.0] * 9
    item_seq = split.item_seq.tolist()
    for start, end in zip(split.train_start.tolist(), split.train_end.tolist(), strict=True):
        for item in item_seq[start : end - 1][-max_len:]:
            expected[item] += 1
    counts = train_item_counts(packed, 9)
    assert counts.dtype == torch.float32 and counts.tolist() == expected


def batch_rows(epoch, packed) -> list[list[int]]:
    """The packed row numbers in each batch of an epoch, recovered from the inputs (rows are unique here)."""
    row_of = {tuple(packed.inputs[n, : packed.lengths[n]].tolist()): n for n in range(len(packed))}
    return [
        [
            row_of[tuple(row[:length].tolist())]
            for row, length in zip(batch.inputs, batch.lengths, strict=True)
        ]
        for batch in epoch
    ]


def unique_row_split(num_sequences: int) -> SplitData:
    """Sequences whose first items are distinct, so a packed row identifies its sequence."""
    item_seq, starts, ends = [], [], []
    for n in range(num_sequences):
        starts.append(len(item_seq))
        item_seq += [n, n + 1, n + 2]
        ends.append(len(item_seq))
    return make_split(item_seq, starts, ends, num_sequences + 2)


def test_train_batches_are_deterministic_for_a_seed():
    packed = pack_train_sequences(unique_row_split(20), max_len=4)
    first, second, other = (
        TrainBatches(packed, 4, seed=3),
        TrainBatches(packed, 4, seed=3),
        TrainBatches(packed, 4, 4),
    )
    epochs_first = [batch_rows(first, packed) for _ in range(3)]
    assert epochs_first == [batch_rows(second, packed) for _ in range(3)]
    assert epochs_first != [batch_rows(other, packed) for _ in range(3)]
    assert epochs_first[0] != epochs_first[1]  # each epoch reshuffles


def test_train_batches_rows_match_and_drop_last():
    packed = pack_train_sequences(unique_row_split(10), max_len=4)
    batches = TrainBatches(packed, batch_size=3, seed=0)
    assert len(batches) == 3
    epoch = list(batches)
    assert len(epoch) == 3 and all(batch.inputs.shape == (3, 2) for batch in epoch)  # 2 inputs per row
    rows = batch_rows(epoch, packed)
    assert len({n for batch_row in rows for n in batch_row}) == 9  # each row at most once, one left over
    for batch, batch_row in zip(epoch, rows, strict=True):
        assert torch.equal(batch.targets, packed.targets[batch_row, :2])
        assert torch.equal(batch.lengths, packed.lengths[batch_row])
        for row, n in enumerate(batch_row):  # each row's whole training sequence travels with it
            whole = packed.item_seq[batch.sequence_start[row] : batch.sequence_end[row]]
            assert whole.tolist() == [n, n + 1, n + 2]


def test_train_batches_are_cut_to_their_longest_row():
    rng = random.Random(7)
    packed = pack_train_sequences(random_split(rng, 40), max_len=9)
    widths = []
    for batch in TrainBatches(packed, batch_size=4, seed=2):
        widths.append(batch.inputs.shape[1])
        assert batch.inputs.shape == batch.targets.shape == (4, int(batch.lengths.max()))
        real = torch.arange(widths[-1])[None, :] < batch.lengths[:, None]
        assert (batch.inputs[~real] == 0).all() and (batch.targets[~real] == 0).all()
    assert min(widths) < packed.inputs.shape[1] == max(widths)


def test_train_batch_positions_are_the_real_positions():
    rng = random.Random(5)
    packed = pack_train_sequences(random_split(rng, 11), max_len=6)
    for batch in TrainBatches(packed, batch_size=4, seed=1):
        width = batch.inputs.shape[1]
        expected = [
            row * width + t for row, length in enumerate(batch.lengths.tolist()) for t in range(length)
        ]
        assert batch.positions.tolist() == expected


def test_train_batches_reject_batch_larger_than_data():
    packed = pack_train_sequences(unique_row_split(5), max_len=4)
    with pytest.raises(ValueError, match="trainer.batch_size=6 exceeds the 5 training sequences"):
        TrainBatches(packed, batch_size=6, seed=0)
    assert len(TrainBatches(packed, batch_size=5, seed=0)) == 1
