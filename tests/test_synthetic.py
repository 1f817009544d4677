from __future__ import annotations

import subprocess
import sys

import numpy as np
import polars as pl
import pytest
import torch

from seqrec.data.sources import InteractionFile, OracleSource
from seqrec.data.synthetic import SyntheticSource
from seqrec.data.types import RAW_SCHEMA, DataError

SMALL = dict(
    num_users=800, num_items=120, mean_length=30.0, min_length=5, max_length=200, popularity_exponent=1.0
)


@pytest.fixture(scope="module")
def source() -> SyntheticSource:
    return SyntheticSource(**SMALL, seed=7)


@pytest.fixture(scope="module")
def log(source: SyntheticSource) -> pl.DataFrame:
    return source.load()


def transitions(log: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(previous item, next item) original ids of every consecutive pair of events of a user."""
    pairs = log.sort(["user", "timestamp"]).with_columns(previous=pl.col("item").shift(1).over("user"))
    pairs = pairs.drop_nulls("previous")
    return pairs["previous"].to_numpy(), pairs["item"].to_numpy()


def test_same_seed_gives_the_same_frame_and_another_seed_does_not(log: pl.DataFrame) -> None:
    assert SyntheticSource(**SMALL, seed=7).load().equals(log)
    assert not SyntheticSource(**SMALL, seed=8).load().equals(log)


def test_frame_is_identical_in_a_fresh_process(log: pl.DataFrame) -> None:
    code = (
        "from seqrec.data.synthetic import SyntheticSource;"
        f"print(SyntheticSource(**{SMALL!r}, seed=7).load().hash_rows().to_list())"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == str(log.hash_rows().to_list())


def test_schema_order_and_null_ratings(log: pl.DataFrame) -> None:
    assert log.schema == pl.Schema(RAW_SCHEMA)
    assert log["rating"].null_count() == log.height
    assert log.equals(log.sort(["timestamp", "user"]))  # a log written in time order
    assert log["item"].min() >= 1 and log["item"].max() <= SMALL["num_items"]


def test_lengths_within_bounds_and_mean_close(log: pl.DataFrame) -> None:
    lengths = log.group_by("user").len()["len"]
    assert sorted(log["user"].unique().to_list()) == list(range(1, SMALL["num_users"] + 1))
    assert lengths.min() >= SMALL["min_length"] and lengths.max() <= SMALL["max_length"]
    assert abs(lengths.mean() / SMALL["mean_length"] - 1) < 0.15
    assert lengths.std() > 0.5 * lengths.mean()  # a heavy-ish tail, not a constant length


def test_every_user_has_min_length_even_when_lengths_pile_up_at_the_bounds() -> None:
    log = SyntheticSource(num_users=200, num_items=50, mean_length=8.0, min_length=8, max_length=9).load()
    lengths = log.group_by("user").len()["len"]
    assert lengths.min() == 8 and lengths.max() <= 9


def test_timestamps_strictly_increase_within_each_user(log: pl.DataFrame) -> None:
    steps = log.with_columns(step=pl.col("timestamp").diff().over("user")).drop_nulls("step")["step"]
    assert steps.min() >= 1


def test_popularity_is_heavy_headed(log: pl.DataFrame) -> None:
    counts = np.zeros(SMALL["num_items"] + 1)
    np.add.at(counts, log["item"].to_numpy(), 1)
    sorted_counts = np.sort(counts[1:])[::-1]
    decile = SMALL["num_items"] // 10
    assert sorted_counts[:decile].sum() > 10 * sorted_counts[-decile:].sum()


def test_item_ids_are_not_in_popularity_order(source: SyntheticSource) -> None:
    popularity_order = np.argsort(-source.catalog.popularity)
    assert not np.array_equal(popularity_order, np.arange(SMALL["num_items"]))
    assert np.array_equal(source.item_ids, np.arange(1, SMALL["num_items"] + 1))


def test_successors_are_distinct_other_items_biased_to_popular_ones(source: SyntheticSource) -> None:
    catalog = source.catalog
    successors = catalog.successors
    assert successors.shape == (SMALL["num_items"], source.successors_per_item)
    assert (successors != np.arange(SMALL["num_items"])[:, None]).all()
    assert all(len(set(row)) == len(row) for row in successors.tolist())
    np.testing.assert_allclose(catalog.successor_weights.sum(axis=1), 1.0)
    assert catalog.popularity[successors].mean() > 2 / SMALL["num_items"]  # uniform draws would give 1 / I


def test_next_item_probabilities_match_a_hand_built_transition_row(source: SyntheticSource) -> None:
    catalog, follow = source.catalog, source.follow_probability
    previous = np.array([3, 1, 3, SMALL["num_items"]])
    probabilities = source.next_item_probabilities(previous)
    assert probabilities.shape == (4, SMALL["num_items"])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    for row, item in zip(probabilities, previous, strict=True):
        expected = (1 - follow) * catalog.popularity.copy()
        for successor, weight in zip(
            catalog.successors[item - 1], catalog.successor_weights[item - 1], strict=True
        ):
            expected[successor] += follow * weight
        np.testing.assert_allclose(row, expected)


def test_empirical_transitions_match_the_oracle(source: SyntheticSource, log: pl.DataFrame) -> None:
    previous, following = transitions(log)
    frequent = np.bincount(previous).argmax()
    next_items = following[previous == frequent]
    assert len(next_items) > 1000
    empirical = np.bincount(next_items - 1, minlength=SMALL["num_items"]) / len(next_items)
    truth = source.next_item_probabilities(np.array([frequent]))[0]
    total_variation = 0.5 * np.abs(empirical - truth).sum()
    popularity_only = 0.5 * np.abs(empirical - source.catalog.popularity).sum()
    assert total_variation < 0.1
    assert popularity_only > 0.4  # the test can tell planted structure from popularity alone


def test_oracle_scores_rank_the_true_successors_first() -> None:
    # Uniform popularity: every successor then beats every other item, whatever its Dirichlet weight.
    source = SyntheticSource(num_users=10, num_items=40, popularity_exponent=0.0, follow_probability=0.9)
    item_ids = source.item_ids
    last_items = torch.arange(40)
    scores = source.oracle_scores(last_items, item_ids)
    assert scores.shape == (40, 40) and scores.dtype == torch.float32
    top = scores.topk(source.successors_per_item, dim=1).indices.sort(dim=1).values.numpy()
    np.testing.assert_array_equal(top, np.sort(source.catalog.successors, axis=1))


def test_oracle_scores_cover_only_the_kept_catalog(source: SyntheticSource) -> None:
    kept_ids = np.array([2, 5, 9, 10, 33, 64, 100, 120])  # original ids that survived filtering, ascending
    last_items = torch.tensor([0, 3, 7, 3])
    scores = source.oracle_scores(last_items, kept_ids)
    expected = source.next_item_probabilities(kept_ids[last_items.numpy()])[:, kept_ids - 1]
    assert scores.shape == (4, len(kept_ids))
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-6)


def test_the_oracle_scores_each_sample_by_its_last_input_item(source: SyntheticSource) -> None:
    kept_ids = np.array([2, 5, 9, 10, 33, 64, 100, 120])
    oracle = source.oracle(kept_ids)
    inputs = torch.tensor([[1, 4, 0, 0], [7, 6, 5, 3], [2, 0, 0, 0]])  # right-padded dense ids
    lengths = torch.tensor([2, 4, 1])
    expected = source.next_item_probabilities(kept_ids[[4, 3, 2]])[:, kept_ids - 1]
    np.testing.assert_allclose(oracle(inputs, lengths).numpy(), expected, rtol=1e-6)


def test_only_a_source_that_knows_the_next_item_distribution_offers_an_oracle(source, tmp_path) -> None:
    log_file = tmp_path / "log.csv"
    log_file.write_text("user,item,timestamp\n1,1,1\n")
    assert isinstance(source, OracleSource)
    assert not isinstance(InteractionFile(path=str(log_file)), OracleSource)


def test_unknown_previous_item_is_rejected(source: SyntheticSource) -> None:
    with pytest.raises(DataError, match="original item ids"):
        source.next_item_probabilities(np.array([0]))
    with pytest.raises(DataError, match="original item ids"):
        source.next_item_probabilities(np.array([SMALL["num_items"] + 1]))


def test_oracle_top10_beats_popularity_by_far(source: SyntheticSource, log: pl.DataFrame) -> None:
    previous, following = transitions(log)
    oracle_top = np.argsort(-source.next_item_probabilities(previous), axis=1)[:, :10] + 1
    oracle_hits = (oracle_top == following[:, None]).any(axis=1).mean()
    item_counts = np.bincount(log["item"].to_numpy(), minlength=SMALL["num_items"] + 1)
    popular_top = np.argsort(-item_counts, kind="stable")[:10]
    popular_hits = np.isin(following, popular_top).mean()
    assert oracle_hits > popular_hits + 0.25


def test_global_time_split_leaves_many_users_with_validation_and_test_events(log: pl.DataFrame) -> None:
    timestamps = log["timestamp"].sort()
    validation_start = timestamps[int(log.height * 0.8)]
    test_start = timestamps[int(log.height * 0.9)]
    events = log.with_columns(has_history=pl.col("timestamp").rank("ordinal").over("user") > 1)
    validation = events.filter(
        pl.col("has_history"), pl.col("timestamp") >= validation_start, pl.col("timestamp") < test_start
    )
    test = events.filter(pl.col("has_history"), pl.col("timestamp") >= test_start)
    assert validation["user"].n_unique() > 0.25 * SMALL["num_users"]
    assert test["user"].n_unique() > 0.2 * SMALL["num_users"]


def test_fingerprint_is_stable_and_names_every_parameter() -> None:
    base = dict(
        num_users=100,
        num_items=50,
        mean_length=20.0,
        min_length=5,
        max_length=80,
        popularity_exponent=1.0,
        successors_per_item=3,
        follow_probability=0.5,
        seed=1,
    )
    changed = dict(
        num_users=101,
        num_items=51,
        mean_length=21.0,
        min_length=6,
        max_length=81,
        popularity_exponent=1.1,
        successors_per_item=4,
        follow_probability=0.6,
        seed=2,
    )
    fingerprint = SyntheticSource(**base).fingerprint()
    assert fingerprint == SyntheticSource(**base).fingerprint()
    for key, value in changed.items():
        assert key in fingerprint
        assert SyntheticSource(**{**base, key: value}).fingerprint() != fingerprint


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (dict(num_users=0), "dataset.num_users"),
        (dict(num_items=5, successors_per_item=5), "dataset.num_items"),
        (dict(successors_per_item=0), "dataset.successors_per_item"),
        (dict(min_length=0), "dataset.min_length"),
        (dict(min_length=50, max_length=40, mean_length=45.0), "dataset.min_length"),
        (dict(mean_length=500.0), "dataset.mean_length"),
        (dict(popularity_exponent=-1.0), "dataset.popularity_exponent"),
        (dict(follow_probability=1.5), "dataset.follow_probability"),
        (dict(seed=-1), "dataset.seed"),
    ],
)
def test_bad_parameters_name_their_config_key(overrides: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        SyntheticSource(**overrides)


@pytest.mark.slow
def test_a_million_events_generate() -> None:
    """ML-1M size (speed is measured by benchmarks/data_pipeline.py, not here)."""
    log = SyntheticSource(num_users=6000, num_items=3500, mean_length=170.0).load()
    assert log.height > 900_000
    assert log["user"].n_unique() == 6000
