"""seqrec entry point: `python run.py loss=logq split=time`, or a sweep with `python run.py -m ...`."""

import sys

import hydra
from omegaconf import DictConfig

from seqrec.app import run
from seqrec.config import quote_bare_characters
from seqrec.overrides import one_line_override_errors


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    sys.argv[1:] = quote_bare_characters(sys.argv[1:])  # `dataset.separator=';'` as a shell passes it
    one_line_override_errors()  # `trainer.epoch=3` gets the one line `+trainer.epoch=3` gets
    main()
