"""Your own data without retyping: a dataset/mine.yaml in --config-dir, filtering events by a column's
values (preprocess.keep), the hint for a text rating column, datetimes in seqrec.stats, and a fixed number
of epochs with the final weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from helpers import SMOKE, run_in_process, run_script
from seqrec.data.preprocess import load_log
from seqrec.data.sources import InteractionFile
from seqrec.data.synthetic import SyntheticSource
from seqrec.data.types import DataError
from seqrec.stats import main as stats_main

MINE = """\
defaults:
  - file                  # conf/dataset/file.yaml: the keys below, and their meaning
path: {path}
user_column: uid
item_column: sku
timestamp_column: ts
id_type: string
"""


def write_log(path: Path, n: int = 3000, iso_times: bool = True) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    seconds = rng.integers(1_700_000_000, 1_730_000_000, n)
    frame = pl.DataFrame(
        {
            "uid": [f"u{u}" for u in rng.integers(0, 80, n)],
            "sku": [f"SKU-{i:03d}" for i in rng.integers(0, 60, n)],
            "ts": pl.Series(seconds * 1_000_000).cast(pl.Datetime("us")).dt.strftime("%Y-%m-%dT%H:%M:%S")
            if iso_times
            else seconds,
            "event_type": rng.choice(["view", "purchase", "add_to_cart"], n, p=[0.5, 0.2, 0.3]),
        }
    )
    frame.write_csv(path)
    return frame


@pytest.fixture
def own_config(tmp_path: Path) -> Path:
    write_log(tmp_path / "log.csv")
    (tmp_path / "myconf" / "dataset").mkdir(parents=True)
    (tmp_path / "myconf" / "dataset" / "mine.yaml").write_text(MINE.format(path=tmp_path / "log.csv"))
    return tmp_path / "myconf"


def test_keep_filters_events_by_a_column_and_is_part_of_the_cache_key(tmp_path: Path):
    frame = write_log(tmp_path / "log.csv")
    source = InteractionFile(
        str(tmp_path / "log.csv"),
        user_column="uid",
        item_column="sku",
        timestamp_column="ts",
        id_type="string",
    )
    kept = source.load(keep={"event_type": ["purchase", "add_to_cart"]})
    expected = frame.filter(pl.col("event_type") != "view")
    assert (
        kept["user"].to_list() == expected["uid"].to_list()
        and kept["item"].to_list() == expected["sku"].to_list()
    )
    options = {"user_core": 1, "item_core": 1}
    every = load_log(source, cache_dir=str(tmp_path / "cache"), **options)
    some = load_log(source, cache_dir=str(tmp_path / "cache"), keep={"event_type": ["purchase"]}, **options)
    assert some.stats["raw_events"] == (frame["event_type"] == "purchase").sum() < every.stats["raw_events"]
    assert some.stats["kept_values"] == {"event_type": ["purchase"]} and "kept_values" not in every.stats
    assert len(list((tmp_path / "cache").glob("log-*.parquet"))) == 2


def test_keep_errors_are_one_line_and_say_what_to_do(tmp_path: Path):
    write_log(tmp_path / "log.csv")
    source = InteractionFile(str(tmp_path / "log.csv"), "uid", "sku", "ts", id_type="string")
    with pytest.raises(DataError, match=r"keeps none of the 3000 events .* event_type holds e.g. \['view'"):
        source.load(keep={"event_type": ["buy"]})
    with pytest.raises(
        DataError, match=r"preprocess.keep filters by \['kind'\], which .* lacks; its columns"
    ):
        source.load(keep={"kind": ["buy"]})
    with pytest.raises(DataError, match="SyntheticSource does not read; use it with dataset=file"):
        load_log(SyntheticSource(num_users=50, num_items=20), cache_dir=None, keep={"event_type": ["buy"]})
    with pytest.raises(ValueError, match="preprocess.keep.event_type is empty"):
        load_log(source, cache_dir=None, keep={"event_type": []})


def test_empty_keep_list_fails_before_any_data_is_read(tmp_path: Path):
    result = run_script(*SMOKE, "preprocess.keep={event_type: []}", cwd=tmp_path)
    assert result.returncode != 0 and "preprocess.keep.event_type is empty" in result.stderr
    assert not list(tmp_path.rglob("run.json"))


def test_a_text_rating_column_gets_a_hint_towards_keep(tmp_path: Path):
    write_log(tmp_path / "log.csv")
    source = InteractionFile(
        str(tmp_path / "log.csv"), "uid", "sku", "ts", rating_column="event_type", id_type="string"
    )
    with pytest.raises(DataError) as error:
        source.load()
    message = str(error.value)
    assert "is not a valid rating" in message and "\n" not in message
    assert (
        "leave rating_column=null and set 'preprocess.keep={event_type: [purchase, add_to_cart]}'" in message
    )


def test_stats_reads_a_config_dir_and_reports_datetimes_as_datetimes(
    own_config: Path, tmp_path: Path, capsys
):
    stats = stats_main(["--config-dir", str(own_config), "dataset=mine", "cache_dir=null"])
    assert stats["timestamps"] == "datetimes (shown in UTC)"
    assert stats["t_valid"].endswith("Z") and stats["t_valid"] < stats["t_test"]
    write_log(tmp_path / "unix.csv", iso_times=False)
    unix = stats_main(
        [
            "dataset=file",
            f"dataset.path={tmp_path / 'unix.csv'}",
            "dataset.user_column=uid",
            "dataset.item_column=sku",
            "dataset.timestamp_column=ts",
            "dataset.id_type=string",
            "cache_dir=null",
        ]
    )
    assert isinstance(unix["t_valid"], int) and "timestamps" not in unix


def test_help_shows_the_keys_of_the_chosen_dataset(own_config: Path, tmp_path: Path):
    mine = run_script("--config-dir", str(own_config), "dataset=mine", "--help", cwd=tmp_path)
    config = mine.stdout.split("== Config (")[1]
    assert "dataset: amazon, file, mine," in mine.stdout
    assert "user_column: uid" in config and "item_column: sku" in config and "id_type: string" in config
    assert "--config-dir" in mine.stdout  # the help says how to keep your own dataset settings
    plain = run_script("dataset=file", "--help", cwd=tmp_path).stdout.split("== Config (")[1]
    assert "user_column: user" in plain and "num_users" not in plain


@pytest.mark.slow
def test_a_run_and_a_keep_filter_from_a_config_dir(own_config: Path, tmp_path: Path):
    smoke = [argument for argument in SMOKE if not argument.startswith("dataset")]
    result = run_script(
        "--config-dir",
        str(own_config),
        "dataset=mine",
        *smoke,
        "preprocess.user_core=2",
        "preprocess.item_core=2",
        "preprocess.keep={event_type: [purchase, add_to_cart]}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "completed" and record["choices"]["dataset"] == "mine"
    assert record["dataset_stats"]["kept_values"] == {"event_type": ["purchase", "add_to_cart"]}
    assert pl.read_parquet(tmp_path / "run" / "test_ranks.parquet")["item"].str.starts_with("SKU-").all()


def test_eval_every_steps_null_trains_every_epoch_and_tests_the_final_weights(tmp_path: Path):
    record = run_in_process(
        [*SMOKE, "trainer.max_steps=null", "trainer.epochs=2", "trainer.eval_every_steps=null"], tmp_path
    )
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert record["status"] == "completed" and record["epochs"] == pytest.approx(2.0)
    assert [entry["step"] for entry in history] == [record["steps"]] == [record["best_step"]]


def test_split_times_print_in_the_unit_the_parser_chose():
    from seqrec.stats import _utc_text

    for ticks in (1_709_294_400, 1_709_294_400_123, 1_709_294_400_123_456, 1_709_294_400_123_456_000):
        assert _utc_text(ticks).startswith("2024-03-01T12:00:00")
