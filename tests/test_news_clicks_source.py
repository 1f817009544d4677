"""dataset=news_clicks: the news-recommendation competition's click files (the two-tower tutorial's data),
read from a file built here in their format."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from helpers import CLICK_LOG_HEADER, click_rows, write_clicks
from seqrec.data.types import RAW_SCHEMA, DataError
from seqrec.stats import CONF_DIR


def news_clicks_source(path: Path):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["dataset=news_clicks", f"dataset.path={path}"])
    return instantiate(cfg.dataset)


def test_reads_user_article_and_millisecond_time_in_file_order(tmp_path):
    rows = click_rows()
    table = news_clicks_source(write_clicks(tmp_path / "train_click_log.csv", rows)).load()
    assert table.schema == pl.Schema(RAW_SCHEMA)
    assert table["user"].to_list() == [row[0] for row in rows]
    assert table["item"].to_list() == [row[1] for row in rows]
    assert table["timestamp"].to_list() == [row[2] for row in rows]  # milliseconds, as they are
    assert table["rating"].null_count() == len(rows)


def test_a_file_without_the_article_column_names_the_setting(tmp_path):
    header = [
        "user_id",
        "article_id",
        *CLICK_LOG_HEADER[2:],
    ]  # articles.csv's name for the id, not the click log's
    path = write_clicks(tmp_path / "clicks.csv", click_rows(num_users=3), header)
    with pytest.raises(DataError) as error:
        news_clicks_source(path).load()
    message = str(error.value)
    assert "no column(s) ['click_article_id']" in message and "dataset.item_column" in message
    assert "\n" not in message


def test_a_non_integer_article_id_names_the_line(tmp_path):
    rows = click_rows(num_users=3)
    rows[1][1] = "abc"
    with pytest.raises(DataError, match=r"line 3"):
        news_clicks_source(write_clicks(tmp_path / "clicks.csv", rows)).load()
