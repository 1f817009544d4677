"""Model configs recorded before the reference ports became variants (the flat seqrec.model.SasRecBackbone
with its port flags) map to the variant they built: every recorded run in experiments/, the parity
fixture's old settings, and a saved model and a refit of a run recorded that way; a config that no variant
has gets one line saying what to do."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hydra.utils import get_object, instantiate

import seqrec
from seqrec.errors import ConfigError
from seqrec.models.legacy import (
    OLD_DEFAULTS,
    OLD_TARGET,
    flat_settings,
    is_old_model_config,
    upgrade_model_config,
)

REPO = Path(__file__).resolve().parents[1]
PORTS = "seqrec.models.sasrec_{}_port.SasRec{}Port"


def recorded_model_configs() -> dict[str, dict]:
    """One recorded run's config.model per distinct model section under experiments/."""
    found = {}
    for path in sorted(REPO.glob("experiments/**/.hydra/config.yaml")):
        model = yaml.safe_load(path.read_text())["model"]
        found.setdefault(json.dumps(model, sort_keys=True), (str(path.relative_to(REPO)), model))
    return dict(found.values())


RECORDED = recorded_model_configs()


def test_the_recorded_runs_include_old_flat_configs_of_seqrec_and_of_the_keras_port():
    targets = {
        upgrade_model_config(model)["_target_"] for model in RECORDED.values() if is_old_model_config(model)
    }
    assert targets == {OLD_TARGET, PORTS.format("keras", "Keras")}


@pytest.mark.parametrize("path", RECORDED)
def test_every_recorded_model_config_builds_its_variant(path):
    upgraded = upgrade_model_config(RECORDED[path])
    parameters = inspect.signature(get_object(upgraded["_target_"])).parameters
    assert set(upgraded) - {"_target_"} <= set(parameters)
    model = instantiate(upgraded | {"num_items": 40})
    assert model.max_seq_len == RECORDED[path]["max_seq_len"]


def test_the_two_tower_runs_map_to_the_keras_port_with_their_head():
    cosine = next(m for p, m in RECORDED.items() if "two_tower" in p and m.get("similarity") == "cosine")
    dot = next(m for p, m in RECORDED.items() if "two_tower" in p and m.get("similarity") == "dot")
    expected = dict(embedding_dim=64, num_heads=2, num_layers=2, ffn_dim=128, dropout=0.2, max_seq_len=50)
    heads = dict(query_projection=True, item_projection=True, similarity="cosine")
    assert upgrade_model_config(cosine) == {
        "_target_": PORTS.format("keras", "Keras"),
        "num_items": "???",
    } | (expected | heads)
    no_heads = dict(query_projection=False, item_projection=False, similarity="dot")
    assert upgrade_model_config(dot) == {"_target_": PORTS.format("keras", "Keras"), "num_items": "???"} | (
        expected | no_heads
    )


FIXTURE = torch.load(REPO / "tests" / "data" / "model_parity.pt", weights_only=True)
VARIANT_OF_CASE = {
    "pytorch_port": PORTS.format("pytorch", "PyTorch"),
    "tf2_port": PORTS.format("tf2", "Tf2"),
    "keras_port": PORTS.format("keras", "Keras"),
}


@pytest.mark.parametrize("name", FIXTURE["cases"])
def test_each_presets_old_settings_map_to_its_variant_and_back(name):
    settings = {"_target_": OLD_TARGET} | FIXTURE["cases"][name]["settings"]
    upgraded = upgrade_model_config(settings)
    assert upgraded["_target_"] == VARIANT_OF_CASE.get(name, OLD_TARGET)
    assert flat_settings(upgraded) | {"num_items": 30} == {
        k: v for k, v in settings.items() if k != "_target_"
    }


@pytest.mark.parametrize(
    ("changes", "closest", "differs"),
    [
        ({"activation": "gelu"}, "sasrec_tf2_port", "activation='gelu'"),
        ({"embedding_dropout": 0.3}, "sasrec_tf2_port", "embedding_dropout=0.3"),
    ],
)
def test_an_old_config_that_no_variant_has_gets_one_line(changes, closest, differs):
    settings = {"_target_": OLD_TARGET} | FIXTURE["cases"]["tf2_port"]["settings"] | changes
    with pytest.raises(ConfigError) as error:
        upgrade_model_config(settings)
    message = str(error.value)
    assert f"closest: model={closest}" in message and differs in message and "train it again" in message
    assert "\n" not in message


def test_current_configs_pass_unchanged():
    for path in sorted((REPO / "conf" / "model").glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        assert upgrade_model_config(config) == config


def as_recorded_before(config: dict) -> dict:
    """A current variant's model config as the flat backbone recorded it (every flag, resolved)."""
    return {"_target_": OLD_TARGET} | OLD_DEFAULTS | flat_settings(config)


@pytest.mark.slow
def test_a_run_recorded_before_the_variants_loads_and_refits(tmp_path):
    from helpers import SMOKE, ranks_by_recommend, run_in_process
    from seqrec.recommender import run_test_samples
    from seqrec.refit import refit

    run_dir = tmp_path / "run"
    run_in_process([*SMOKE, "model=sasrec_tf2_port", "trainer.max_steps=4"], run_dir)
    expected = ranks_by_recommend(seqrec.load(run_dir), run_test_samples(seqrec.load(run_dir)), False)
    for path, key in [(run_dir / "model" / "model.json", "model_config"), (run_dir / "run.json", "config")]:
        record = json.loads(path.read_text())
        if key == "config":
            record["config"]["model"] = as_recorded_before(record["config"]["model"])
        else:
            record["model_config"] = as_recorded_before(record["model_config"])
        path.write_text(json.dumps(record))
    old = seqrec.load(run_dir)
    assert type(old.backbone).__name__ == "SasRecTf2Port"
    assert np.array_equal(ranks_by_recommend(old, run_test_samples(old), False), expected)
    output = refit(run_dir, "test", steps=2, output=tmp_path / "refit")
    record = json.loads((output / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["config"]["model"]["_target_"] == PORTS.format("tf2", "Tf2")
