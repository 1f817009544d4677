"""Print the dataset statistics of a configuration as JSON, without training.

python -m seqrec.stats dataset=ml-100k dataset.path=/data/ml-100k/u.data split=time
python -m seqrec.stats --config-dir myconf dataset=mine     # your own myconf/dataset/mine.yaml
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import CompactHydraException
from hydra.utils import instantiate

from seqrec.app import prepare_data
from seqrec.config import check_config, quote_bare_characters
from seqrec.errors import one_line

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
TIME_KEYS = ("t_valid", "t_test")  # split times, unix seconds in the statistics


def compose_config(overrides: list[str]):
    if not CONF_DIR.is_dir():
        raise SystemExit(
            f"config folder {CONF_DIR} not found: run seqrec from its source checkout (pip install -e .)"
        )
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def with_config_dir(arguments: list[str]) -> list[str]:
    """`--config-dir DIR` (as for run.py: a folder with your own `dataset/mine.yaml`) as an override of
    Hydra's search path."""
    overrides, folders = [], []
    iterator = iter(arguments)
    for argument in iterator:
        if argument == "--config-dir":
            folders.append(next(iterator, ""))
        elif argument.startswith("--config-dir="):
            folders.append(argument.partition("=")[2])
        else:
            overrides.append(argument)
    if not folders:
        return overrides
    paths = ",".join(f"file://{Path(folder).resolve()}" for folder in folders)
    return [*overrides, f"hydra.searchpath=[{paths}]"]


def main(argv: list[str] | None = None) -> dict:
    arguments = with_config_dir(list(sys.argv[1:] if argv is None else argv))
    cfg = compose_config(quote_bare_characters(arguments))
    check_config(cfg)
    source = instantiate(cfg.dataset)
    _, _, stats = prepare_data(cfg, source)
    stats = with_datetimes(stats, source)
    print(json.dumps(stats, indent=2))
    return stats


def _utc_text(ticks: int) -> str:
    """A datetime log's timestamp as ISO 8601 UTC. The parser keeps datetimes as unix time in the coarsest
    exact unit (s, ms, us or ns); the magnitude tells which for any date from 1973 to 2286."""
    for scale in (1, 10**3, 10**6, 10**9):
        if abs(ticks) / scale < 10**10:
            break
    return datetime.fromtimestamp(ticks / scale, tz=UTC).isoformat().replace("+00:00", "Z")


def with_datetimes(stats: dict, source) -> dict:
    """The split times as UTC datetimes (ISO 8601) when the log's timestamps were datetimes."""
    if not getattr(source, "timestamps_are_datetimes", lambda: False)():
        return stats
    times = {key: _utc_text(stats[key]) for key in TIME_KEYS if key in stats}
    return stats | times | {"timestamps": "datetimes (shown in UTC)"}


if __name__ == "__main__":
    try:
        main()
    except CompactHydraException as error:  # bad input (seqrec's UserError too): one line, no traceback
        sys.exit(f"error: {one_line(str(error))}")
