"""Users through the pipeline (seqrec.users): each training row's and each evaluation sample's dense user id
against the log it came from, for both splits, both kinds of training sample and every batch size."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from seqrec.data.batches import TrainBatches, pack_train_sequences
from seqrec.data.splits import LeaveOneOutSplit, TimeSplit
from seqrec.data.target_samples import pack_target_samples
from seqrec.data.types import InteractionLog
from seqrec.evaluation import FullCatalog, SampledCandidates
from seqrec.users import model_sizes, takes_users

NUM_USERS, NUM_ITEMS = 40, 30


def random_log(seed: int) -> InteractionLog:
    """Dense users 0..NUM_USERS-1 with 1..14 events each, random timestamps, sorted by (user, timestamp)."""
    rng = np.random.default_rng(seed)
    rows = [
        (user, int(rng.integers(NUM_ITEMS)), int(rng.integers(1000)))
        for user in range(NUM_USERS)
        for _ in range(int(rng.integers(1, 15)))
    ]
    events = pl.DataFrame(
        rows, schema={"user": pl.Int64, "item": pl.Int64, "timestamp": pl.Int64}, orient="row"
    )
    events = events.sort(["user", "timestamp"], maintain_order=True)
    return InteractionLog(events, np.arange(NUM_ITEMS), kcore_passes=1, user_ids=np.arange(NUM_USERS) + 100)


def event_users(log: InteractionLog) -> np.ndarray:
    """[E] the log's user id of every event, in item_seq order (the reference)."""
    return log.events["user"].to_numpy()


SPLITS = [
    TimeSplit(valid_quantile=0.7, test_quantile=0.85, min_train_events=2),
    LeaveOneOutSplit(min_events=3),
]


@pytest.mark.parametrize("split_rule", SPLITS, ids=["time", "loo"])
def test_every_training_row_and_sample_carries_its_users_dense_id(split_rule):
    log = random_log(0)
    split, users = split_rule.apply(log), event_users(log)
    assert split.train_user.tolist() == users[split.train_start.numpy()].tolist()
    assert (
        users[split.train_end.numpy() - 1] == split.train_user.numpy()
    ).all()  # the whole window is theirs
    for samples in (split.valid, split.test):
        assert samples.user.tolist() == users[samples.history_end.numpy()].tolist()
    assert split.num_users == NUM_USERS
    assert split.original_users(split.train_user).tolist() == (split.train_user.numpy() + 100).tolist()

    train = pack_train_sequences(split, max_len=5)
    assert torch.equal(train.users, split.train_user)
    for batch in TrainBatches(train.to("cpu"), batch_size=3, seed=1):
        rows = [
            int(np.flatnonzero(train.sequence_start.numpy() == start)[0]) for start in batch.sequence_start
        ]
        assert batch.users.tolist() == train.users[rows].tolist()
    samples = pack_target_samples(split, 5, max_targets_per_user=2, targets_drawn_from_last=4, seed=0)
    assert samples.users.tolist() == users[samples.sequence_start.numpy()].tolist()


def test_a_time_split_user_without_training_rows_is_still_in_the_id_range():
    log = random_log(1)
    split = TimeSplit(valid_quantile=0.7, test_quantile=0.85, min_train_events=2).apply(log)
    untrained = set(split.test.user.tolist()) - set(split.train_user.tolist())
    assert untrained, "the log should give test samples of users with no training row"
    assert max(untrained) < split.num_users


@pytest.mark.parametrize("batch_size", [1, 4, 1000])
@pytest.mark.parametrize("protocol", ["full", "sampled"])
def test_the_score_function_gets_each_samples_user(batch_size, protocol):
    log = random_log(2)
    split = LeaveOneOutSplit(min_events=3).apply(log)
    seen: list[int] = []

    def scores(inputs: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        assert users.shape == lengths.shape and users.dtype == torch.int64
        seen.extend(users.tolist())
        return torch.zeros(len(inputs), NUM_ITEMS)

    evaluation = (
        FullCatalog(ks=[5], batch_size=batch_size)
        if protocol == "full"
        else SampledCandidates(num_negatives=5, ks=[5], batch_size=batch_size)
    )
    evaluation.evaluate(scores, split.test, split.item_seq, 5, NUM_ITEMS)
    assert seen == split.test.user.tolist()


def test_only_a_model_that_takes_num_users_gets_it():
    sasrec = {"_target_": "seqrec.model.SasRecBackbone"}
    ssept = {"_target_": "seqrec.models.ssept.SsePt"}
    assert not takes_users(sasrec) and model_sizes(sasrec, 7, 3) == {"num_items": 7}
    assert takes_users(ssept) and model_sizes(ssept, 7, 3) == {"num_items": 7, "num_users": 3}
    assert not takes_users({"_target_": "seqrec.no_such_module.Model"})  # building it reports the typo
