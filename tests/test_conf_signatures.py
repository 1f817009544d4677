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


def test_schema_defaults_match_the_yaml_files():
    from seqrec.config import BatchesConfig, PreprocessConfig, SeqrecConfig, TrainerConfig

    trainer = yaml.safe_load((CONF / "trainer" / "default.yaml").read_text())
    assert _schema_defaults(TrainerConfig) == trainer
    root = yaml.safe_load((CONF / "config.yaml").read_text())
    assert _schema_defaults(PreprocessConfig) == root["preprocess"]
    assert _schema_defaults(BatchesConfig) == root["batches"]
    assert _schema_defaults(SeqrecConfig)["cache_dir"] == "~/.cache/seqrec"  # config.yaml's fallback
    assert "'~/.cache/seqrec'" in root["cache_dir"]


def test_every_model_variant_has_a_yaml_with_its_defaults():
    targets = {
        yaml.safe_load(path.read_text())["_target_"] for path in option_files() if path.parent.name == "model"
    }
    assert targets >= {
        "seqrec.model.SasRecBackbone",
        "seqrec.models.sasrec_pytorch_port.SasRecPyTorchPort",
        "seqrec.models.sasrec_tf2_port.SasRecTf2Port",
        "seqrec.models.sasrec_keras_port.SasRecKerasPort",
    }  # each configured by one YAML: test_a_class_configured_by_one_yaml_has_its_defaults checks them


def group_options() -> list[tuple[str, str]]:
    from seqrec.config import TARGET_GROUPS

    return [(group, path.stem) for group in TARGET_GROUPS for path in sorted((CONF / group).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "option"), group_options(), ids=lambda value: value)
def test_every_composed_option_has_known_keys_of_the_annotated_types(group, option):
    """Options that extend another (`defaults:`, e.g. model=two_tower) too, as Hydra composes them."""
    from hydra import compose, initialize_config_dir

    from seqrec.config import target_value_problems, unknown_keys

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"{group}={option}"])
    assert "_target_" in cfg[group]
    assert unknown_keys(cfg) == [] and target_value_problems(cfg) == []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.embedding_dim=abc", "model.embedding_dim='abc' must be int"),
        ("model.dropout=high", "model.dropout='high' must be float"),
        ("model.norm_first=3", "model.norm_first=3 must be bool"),
        ("model.num_heads=1.5", "model.num_heads=1.5 must be int"),
        ("model.similarity=null", "model.similarity=None must be str"),
        ("loss.temperature=warm", "loss.temperature='warm' must be float"),
    ],
)
def test_a_value_of_the_wrong_type_fails_in_one_line_naming_the_key(override, message):
    from hydra import compose, initialize_config_dir

    from seqrec.config import check_config
    from seqrec.errors import ConfigError

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[override])
    with pytest.raises(ConfigError) as error:
        check_config(cfg)
    assert message in str(error.value) and "\n" not in str(error.value)
