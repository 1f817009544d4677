"""Print the dataset statistics of a configuration as JSON, without training.

python -m seqrec.stats dataset=ml-100k dataset.path=/data/ml-100k/u.data split=time
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import CompactHydraException

from seqrec.app import prepare_data
from seqrec.config import check_config, quote_bare_characters
from seqrec.errors import one_line

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose_config(overrides: list[str]):
    if not CONF_DIR.is_dir():
        raise SystemExit(
            f"config folder {CONF_DIR} not found: run seqrec from its source checkout (pip install -e .)"
        )
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def main(argv: list[str] | None = None) -> dict:
    cfg = compose_config(quote_bare_characters(list(sys.argv[1:] if argv is None else argv)))
    check_config(cfg)
    _, _, stats = prepare_data(cfg)
    print(json.dumps(stats, indent=2))
    return stats


if __name__ == "__main__":
    try:
        main()
    except CompactHydraException as error:  # bad input (seqrec's UserError too): one line, no traceback
        sys.exit(f"error: {one_line(str(error))}")
