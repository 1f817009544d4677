"""seqrec entry point: `python run.py loss=logq split=time`, or a sweep with `python run.py -m ...`."""

import hydra
from omegaconf import DictConfig

from seqrec.app import run


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
