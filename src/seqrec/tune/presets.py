"""Composing a trial's config in the tuning process (for the checks), and freezing the best one as an
experiment preset: STUDY_DIR/presets/experiment/tuned-<loss>.yaml, loaded with
`python run.py --config-dir STUDY_DIR/presets experiment=tuned-<loss> seed=N`."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from seqrec.config import quote_bare_characters
from seqrec.errors import ConfigError, UserError, one_line
from seqrec.files import write_text_atomic
from seqrec.preflight import build_run_parts
from seqrec.tune.settings import CONF_DIR

PRESETS_DIR = "presets"
GROUPS = ("dataset", "split", "model", "loss", "trainer", "evaluation", "logger")
# Not frozen: what a preset's user chooses per run (seed, run name, cache folder, trial).
UNFROZEN = ("name", "seed", "cache_dir", "trial", "hydra")


def compose_run(overrides: list[str]) -> DictConfig:
    """The config `python run.py OVERRIDES` would run, Hydra's node included; one-line error if it fails."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=quote_bare_characters(overrides), return_hydra_config=True)
    except UserError:
        raise
    except Exception as error:  # noqa: BLE001  (Hydra's composition errors: unknown options, bad syntax)
        raise ConfigError(f"{' '.join(overrides)}: {one_line(str(error))}") from error
    finally:
        GlobalHydra.instance().clear()
    HydraConfig.instance().set_config(cfg)
    return cfg


def check_run(overrides: list[str]) -> DictConfig:
    """compose_run + every check `python run.py` makes before reading data."""
    cfg = compose_run(overrides)
    build_run_parts(cfg)
    return cfg


def preset_name(loss: str) -> str:
    return f"tuned-{loss}"


def preset_path(study_dir: Path, loss: str) -> Path:
    return study_dir / PRESETS_DIR / "experiment" / f"{preset_name(loss)}.yaml"


def freeze(cfg: DictConfig, path: Path, header: list[str]) -> None:
    """Write the composed trial config `cfg` as a self-contained experiment preset: every group's choice,
    then every value (so later changes to conf/ defaults do not change it)."""
    choices = {group: cfg.hydra.runtime.choices[group] for group in GROUPS}
    values = OmegaConf.to_container(cfg, resolve=False)
    for key in UNFROZEN:
        values.pop(key, None)
    values["model"].pop("num_items", None)
    values["dataset"].pop("path", None)  # where the data lies is each user's own: give dataset.path=PATH
    # Interpolations stay as written (e.g. dataset.cache_dir: ${cache_dir}): they resolve in the run.
    preset = {"defaults": [{f"override /{g}": choice} for g, choice in choices.items()] + ["_self_"]}
    text = "# @package _global_\n" + "".join(f"# {line}\n" for line in header)
    text += OmegaConf.to_yaml(OmegaConf.create(preset | values))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
