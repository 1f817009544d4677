"""Every option YAML with a `_target_` agrees with its class: each key is a constructor parameter, and where
the class is configured by one YAML only, each value equals the constructor's default (no silent drift
between what `python run.py` runs and what `Class()` builds)."""

import inspect
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from hydra.utils import get_object

CONF = Path(__file__).resolve().parents[1] / "conf"


def option_files() -> list[Path]:
    return sorted(path for path in CONF.glob("*/*.yaml") if "_target_" in yaml.safe_load(path.read_text()))


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("path", option_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_key_is_a_constructor_parameter(path):
    options = yaml.safe_load(path.read_text())
    parameters = inspect.signature(get_object(options["_target_"])).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(set(options) - {"_target_"} - set(parameters))
    assert not unknown, f"{path.name}: keys {unknown} are not parameters of {options['_target_']}"


def test_a_class_configured_by_one_yaml_has_its_defaults():
    by_target = defaultdict(list)
    for path in option_files():
        options = yaml.safe_load(path.read_text())
        by_target[options["_target_"]].append((path, options))
    checked = 0
    for target, files in by_target.items():
        if len(files) > 1:  # e.g. GroupLens: each release its own values
            continue
        (path, options), parameters = files[0], inspect.signature(get_object(target)).parameters
        for key, value in options.items():
            if key == "_target_" or value == "???" or isinstance(value, str) and value.startswith("${"):
                continue
            default = parameters[key].default
            assert default is not inspect.Parameter.empty, f"{path.name}: {key} has no default in {target}"
            assert _plain(default) == value, (
                f"{path.name}: {key}={value!r} but {target} defaults to {default!r}"
            )
            checked += 1
    assert checked > 50


def _schema_defaults(schema) -> dict:
    from dataclasses import MISSING, fields

    defaults = {}
    for field in fields(schema):
        if field.default is not MISSING:
            defaults[field.name] = field.default
        elif field.default_factory is not MISSING:
            defaults[field.name] = field.default_factory()
    return defaults


def test_schema_defaults_match_the_yaml_files_and_the_model_signature():
    from omegaconf import MISSING

    from seqrec.config import BatchesConfig, ModelConfig, PreprocessConfig, SeqrecConfig, TrainerConfig
    from seqrec.model import SasRecBackbone

    trainer = yaml.safe_load((CONF / "trainer" / "default.yaml").read_text())
    assert _schema_defaults(TrainerConfig) == trainer
    root = yaml.safe_load((CONF / "config.yaml").read_text())
    assert _schema_defaults(PreprocessConfig) == root["preprocess"]
    assert _schema_defaults(BatchesConfig) == root["batches"]
    assert _schema_defaults(SeqrecConfig)["cache_dir"] == "~/.cache/seqrec"  # config.yaml's fallback
    assert "'~/.cache/seqrec'" in root["cache_dir"]
    parameters = inspect.signature(SasRecBackbone).parameters
    for key, value in _schema_defaults(ModelConfig).items():
        if key != "_target_" and value != MISSING:
            assert _plain(parameters[key].default) == value, f"ModelConfig.{key}"
