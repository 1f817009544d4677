"""Helpers shared by several test modules (no test module imports another): tiny runs composed from the
real configs, ranks from a saved model's recommend(), the identity of an ended process, raw data files in
the formats of the sources, and a headless Jupyter notebook's text. Fabricated run records are in
compare_records.py, the evaluation tests' hand-built split in evaluation_split.py."""

from __future__ import annotations

import csv
import gzip
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from seqrec.app import run
from seqrec.run_status import process_identity
from seqrec.stats import CONF_DIR

# ------------------------------------------------------------------------------------------- tiny runs

REPO = CONF_DIR.parent
TINY_DATA = [
    "dataset=synthetic",
    "dataset.num_users=150",
    "dataset.num_items=60",
    "dataset.mean_length=20",
    "dataset.max_length=60",
    "cache_dir=null",
]
SMOKE = ["debug=smoke", *TINY_DATA]


def compose_run_config(overrides: list[str], output_dir: Path):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def run_in_process(overrides: list[str], output_dir: Path) -> dict:
    run(compose_run_config(overrides, output_dir))
    return json.loads((output_dir / "run.json").read_text())


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1"}
    return subprocess.run(
        [sys.executable, str(REPO / "run.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


# ------------------------------------------------------------------------------------------ saved models


def ranks_by_recommend(model, samples, exclude_seen: bool) -> np.ndarray:
    """Each test target's 1-based full-catalog rank under the evaluation's rule, from recommend() alone:
    exclude_seen masks the history but the target keeps competing (ties: lower catalog position)."""
    histories = [model.item_ids[history].tolist() for history in samples.histories]
    everything = model.recommend(histories, k=model.num_items, exclude_seen=False)
    masked = model.recommend(histories, k=model.num_items, exclude_seen=True) if exclude_seen else everything
    ranks = []
    for row, target in enumerate(model.item_ids[samples.targets]):
        target_score = everything.scores[row][everything.items[row] == target][0]
        scores, items = masked.scores[row], masked.items[row]
        positions, _ = model.item_positions(items)
        target_position = model.item_positions([target])[0][0]
        beaten = (scores > target_score) | ((scores == target_score) & (positions < target_position))
        ranks.append(1 + int((beaten & (items != target)).sum()))
    return np.array(ranks)


# ----------------------------------------------------------------------------------------- run status


def ended_process() -> dict:
    """The identity of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = process_identity(child.pid)
    child.wait()
    return identity


# ------------------------------------------------------------------------------------- raw data files


def write_lines(path: Path, lines: list[str]) -> Path:
    """Lines into a text file, gzip-compressed when its name ends in .gz."""
    text = "".join(line + "\n" for line in lines)
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as file:
            file.write(text)
    else:
        path.write_text(text)
    return path


# The competition's click-log header: ids and a millisecond timestamp, then six context columns.
CLICK_LOG_HEADER = [
    "user_id",
    "click_article_id",
    "click_timestamp",
    "click_environment",
    "click_deviceGroup",
    "click_os",
    "click_country",
    "click_region",
    "click_referrer_type",
]


def click_rows(num_users: int = 150, seed: int = 0) -> list[list[int]]:
    """Clicks like train_click_log.csv: integer user and article ids, every user with >= 2 clicks, some
    with more than 60, millisecond timestamps (around October 2017), rows in no particular order."""
    rng = random.Random(seed)
    articles = [rng.randrange(1_000, 364_000) for _ in range(300)]
    rows = []
    for user in range(num_users):
        clicks = rng.choice([2, 3, rng.randint(4, 40), rng.randint(61, 90)])
        time = 1_507_029_570_190 + rng.randrange(10**9)
        for _ in range(clicks):
            time += rng.randrange(1, 3_600_000)  # up to an hour later, in milliseconds
            article = articles[min(int(rng.expovariate(0.02)), len(articles) - 1)]
            context = [rng.randint(1, 4), rng.randint(1, 5), rng.randint(2, 20), 1, rng.randint(1, 28), 1]
            rows.append([user, article, time, *context])
    rng.shuffle(rows)
    return rows


def write_clicks(path: Path, rows: list[list[int]], header: list[str] = CLICK_LOG_HEADER) -> Path:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# ------------------------------------------------------------------------------------------- notebooks

NOTEBOOKS = CONF_DIR.parent / "notebooks"


def outputs_text(notebook) -> str:
    """Markdown and plain-text outputs of every code cell, joined."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/markdown", ""))
    return "\n".join(parts)
