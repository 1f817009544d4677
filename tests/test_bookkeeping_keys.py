"""One list of bookkeeping keys (seqrec.fingerprints.BOOKKEEPING_KEYS), used everywhere: runs that differ only
there are one variant of one setup in a comparison, and a sweep's folder names leave them out
(tests/test_run_names.py); conf/config.yaml keeps no list of its own."""

from __future__ import annotations

import logging

import pytest
from omegaconf import OmegaConf

from compare_records import write_run
from seqrec import compare
from seqrec.fingerprints import BOOKKEEPING_KEYS
from seqrec.stats import CONF_DIR


def nested(key: str, value: str) -> dict:
    """ "trainer.device", "cpu" -> {"trainer": {"device": "cpu"}}."""
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def two_seeds_differing_in(folder, key: str) -> list:
    for seed, value in enumerate(("a", "b")):
        # a record without a data fingerprint is named by its dataset.path (tests/test_compare_protocols.py)
        config = nested(key, value) if key != "dataset.path" else {}
        write_run(folder / f"s{seed}", "softmax", seed, overrides=[f"{key}={value}"], config=config)
    return compare.load_runs(folder)


@pytest.mark.parametrize("key", [*BOOKKEEPING_KEYS, "logger.mode", "trainer.device"])
def test_runs_that_differ_only_in_bookkeeping_are_one_variant_of_one_setup(tmp_path, caplog, key):
    runs = two_seeds_differing_in(tmp_path, key)
    assert [run.objective for run in runs] == ["softmax", "softmax"]
    with caplog.at_level(logging.WARNING):
        table = compare.results_table(runs, metrics=["dcg@10"])
    assert table["n_seeds"].to_list() == [2] and "the runs mix" not in caplog.text


def test_a_key_that_is_not_bookkeeping_names_a_variant(tmp_path):
    runs = two_seeds_differing_in(tmp_path, "trainer.lr")
    assert [run.objective for run in runs] == ["softmax[trainer.lr=a]", "softmax[trainer.lr=b]"]


def test_the_root_config_keeps_no_list_of_its_own():
    """Hydra's exclude_keys stays empty: a second list there would drift from BOOKKEEPING_KEYS."""
    root = OmegaConf.load(CONF_DIR / "config.yaml")
    assert OmegaConf.select(root, "hydra.job.config.override_dirname.exclude_keys") is None
