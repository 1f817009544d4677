"""One target per training sample (batches.*, the two-tower tutorial): which target events are drawn, the
windows built from them, the batches that supervise only the last position, and the config checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import SMOKE, run_in_process
from seqrec.data.batches import TrainBatches, pack_train_sequences
from seqrec.data.target_samples import pack_target_samples, target_events
from seqrec.data.types import EvalSamples, SplitData
from seqrec.errors import ConfigError

# Sequences of 1 + counts events: 3, 25 and 80 target events; events 0..E-1 in item_seq.
SEQUENCE_LENGTHS = [4, 26, 81]


def sequences() -> tuple[np.ndarray, np.ndarray]:
    ends = np.cumsum(SEQUENCE_LENGTHS)
    return ends - np.array(SEQUENCE_LENGTHS), ends


def reference_targets(start: int, end: int, most: int, pool: int, rng: np.random.Generator) -> list[int]:
    """The tutorial's loop for one sequence: every position after the first is a target; with more than
    `most` of them, `most` drawn without replacement among the last `pool`, then sorted."""
    positions = list(range(start + 1, end))
    if len(positions) > most:
        positions = sorted(rng.choice(positions[-pool:], size=most, replace=False).tolist())
    return positions


def test_every_target_event_without_a_limit():
    starts, ends = sequences()
    sequence, event = target_events(starts, ends, None, None, np.random.default_rng(0))
    assert event.tolist() == [e for s, t in zip(starts, ends, strict=True) for e in range(s + 1, t)]
    assert sequence.tolist() == [n for n, length in enumerate(SEQUENCE_LENGTHS) for _ in range(length - 1)]


@pytest.mark.parametrize(("most", "pool"), [(20, 60), (5, None), (3, 3)])
def test_at_most_the_limit_drawn_among_the_last_events(most, pool):
    starts, ends = sequences()
    sequence, event = target_events(starts, ends, most, pool, np.random.default_rng(1))
    for n, (start, end) in enumerate(zip(starts, ends, strict=True)):
        chosen = event[sequence == n]
        targets = end - start - 1
        assert len(chosen) == min(targets, most) and len(set(chosen)) == len(chosen)
        assert (np.diff(chosen) > 0).all()  # time order
        if targets <= most:
            assert chosen.tolist() == list(range(start + 1, end))
        else:
            assert chosen.min() >= end - (pool if pool is not None else targets)


def test_the_draw_is_uniform_over_the_pool_like_the_tutorials_loop():
    """Over many seeds every event of the last 60 is drawn with probability 20/60, as in the reference."""
    starts, ends = np.array([0]), np.array([81])
    draws, reference = np.zeros(81), np.zeros(81)
    trials = 3000
    for seed in range(trials):
        _, event = target_events(starts, ends, 20, 60, np.random.default_rng(seed))
        draws[event] += 1
        reference[reference_targets(0, 81, 20, 60, np.random.default_rng(seed))] += 1
    assert draws[:21].sum() == reference[:21].sum() == 0
    expected = trials * 20 / 60
    tolerance = 4 * np.sqrt(expected * (1 - 20 / 60))
    assert np.abs(draws[21:] - expected).max() < tolerance
    assert np.abs(reference[21:] - expected).max() < tolerance


def split_data() -> SplitData:
    starts, ends = sequences()
    item_seq = torch.arange(int(ends[-1])) % 50
    empty = EvalSamples(*(torch.zeros(0, dtype=torch.long) for _ in range(4)))
    return SplitData(
        item_seq, torch.from_numpy(starts), torch.from_numpy(ends), empty, empty, 50, np.arange(50)
    )


def test_each_sample_is_the_window_before_its_target():
    split, max_len = split_data(), 10
    train = pack_target_samples(split, max_len, 20, 60, seed=3)
    _, event = target_events(*sequences(), 20, 60, np.random.default_rng(3))
    assert len(train) == 3 + 20 + 20 and train.last_position_only and train.num_events == len(train)
    item_seq = split.item_seq
    for row, e in enumerate(event.tolist()):
        start = int(train.sequence_start[row])
        history = item_seq[max(start, e - max_len) : e]
        length = int(train.lengths[row])
        assert length == len(history)
        assert train.inputs[row, :length].tolist() == history.tolist()
        assert int(train.targets[row, length - 1]) == int(item_seq[e])
        assert (train.inputs[row, length:] == 0).all()
    same = pack_target_samples(split, max_len, 20, 60, seed=3)
    assert torch.equal(same.inputs, train.inputs) and torch.equal(same.targets, train.targets)
    other = pack_target_samples(split, max_len, 20, 60, seed=4)
    assert not torch.equal(other.targets, train.targets)


def test_batches_supervise_only_each_rows_last_position():
    split = split_data()
    train = pack_target_samples(split, 10, 20, 60, seed=0)
    for batch in TrainBatches(train, batch_size=8, seed=0):
        width = batch.inputs.shape[1]
        assert torch.equal(batch.positions, torch.arange(8) * width + batch.lengths - 1)
        positives = batch.targets.flatten()[batch.positions]
        last_inputs = batch.inputs[torch.arange(8), batch.lengths - 1]
        assert torch.equal(positives, (last_inputs + 1) % 50)  # item_seq counts up by one
    full = pack_train_sequences(split, 10)
    assert not full.last_position_only and full.num_events == int(full.lengths.sum())


def test_a_run_with_one_target_per_sample_trains_on_them(tmp_path):
    overrides = [*SMOKE, "batches.one_target_per_sample=true", "batches.max_targets_per_user=4"]
    record = run_in_process([*overrides, "batches.targets_drawn_from_last=8"], tmp_path)
    assert record["status"] == "completed"
    users = record["dataset_stats"]["train_sequences"]
    steps, batch_size = record["steps"], record["config"]["trainer"]["batch_size"]
    assert record["timings"]["train_events"] == steps * batch_size and steps * batch_size <= 4 * users


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["batches.max_targets_per_user=3"],
            "batches.max_targets_per_user needs batches.one_target_per_sample",
        ),
        (
            ["batches.one_target_per_sample=true", "batches.max_targets_per_user=0"],
            "must be >= 1 or null, got 0",
        ),
        (
            ["batches.one_target_per_sample=true", "batches.targets_drawn_from_last=5"],
            "needs batches.max_targets",
        ),
        (
            [
                "batches.one_target_per_sample=true",
                "batches.max_targets_per_user=6",
                "batches.targets_drawn_from_last=5",
            ],
            "batches.targets_drawn_from_last=5 must be >= batches.max_targets_per_user=6",
        ),
        (
            ["+batches.max_target=3"],
            "unknown config key batches.max_target (did you mean batches.max_targets",
        ),
    ],
)
def test_bad_batches_settings_fail_before_any_data_is_read(tmp_path, overrides, message):
    with pytest.raises(ConfigError) as error:
        run_in_process([*SMOKE, *overrides], tmp_path / "run")
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()


def test_a_batch_larger_than_the_samples_names_them(tmp_path):
    overrides = [*SMOKE, "batches.one_target_per_sample=true", "batches.max_targets_per_user=1"]
    with pytest.raises(ConfigError, match=r"exceeds the \d+ training samples \(target events\)"):
        run_in_process([*overrides, "trainer.batch_size=100000"], tmp_path / "run")
