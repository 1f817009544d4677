"""Bad input that used to be found late or reported badly: each now fails early, in one line, or is
recorded as what it is (a negative seed, a full disk while saving the best weights, loss sizes the data
caps or makes meaningless, sampled evaluation without enough unseen items, a typo without `+`)."""

from __future__ import annotations

import errno
import json
import os

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl

import seqrec.app
import seqrec.overrides
import seqrec.train
from helpers import SMOKE, compose_run_config, run_in_process
from seqrec.app import prepare_data
from seqrec.data.batches import TrainBatches, pack_train_sequences
from seqrec.errors import ConfigError, UserError
from seqrec.preflight import batch_positions
from seqrec.records import RunRecorder
from seqrec.stats import CONF_DIR


def no_data(*args, **kwargs):
    raise AssertionError("data was read before the config was checked")


def no_training(*args, **kwargs):
    raise AssertionError("training started")


def test_a_negative_seed_fails_before_any_data_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(seqrec.app, "load_log", no_data)
    for seed in (-1, 2**32):
        with pytest.raises(ConfigError, match=rf"seed must be an integer in \[0, 2\*\*32 - 1\], got {seed}"):
            run_in_process([*SMOKE, f"seed={seed}"], tmp_path / "run")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ a full disk


def full_disk_after_some_bytes(obj, file, *args, **kwargs):
    file.write(b"half of the weights")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def full_disk_as_torch_reports_it(obj, file, *args, **kwargs):
    """What torch 2.x raises on a full disk (seen on a 256 KiB tmpfs): a RuntimeError while handling
    the OSError of the failed write."""
    try:
        full_disk_after_some_bytes(obj, file)
    except OSError:
        raise RuntimeError(
            "[enforce fail at inline_container.cc:672] . unexpected pos 79808 vs 79760"
        ) from None


@pytest.mark.parametrize("failing_save", [full_disk_after_some_bytes, full_disk_as_torch_reports_it])
def test_a_full_disk_while_saving_the_best_weights_fails_the_run_in_one_line(
    tmp_path, monkeypatch, failing_save
):
    monkeypatch.setattr(seqrec.train.torch, "save", failing_save)
    with pytest.raises(UserError) as error:  # one line, no traceback on the command line
        run_in_process(SMOKE, tmp_path)
    message = str(error.value)
    assert message.startswith(f"no space left on device while saving the best weights to {tmp_path}/best.pt")
    assert "hydra.run.dir=DIR" in message and "\n" not in message
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "failed" and "no space left on device" in record["error"]
    assert not list(tmp_path.glob(".*.tmp")) and not (tmp_path / "best.pt").exists()


def test_the_failure_is_recorded_even_when_the_disk_has_no_room_for_a_new_file(tmp_path, monkeypatch):
    recorder = RunRecorder(tmp_path)
    recorder.start(run_name="full")

    def no_new_file(path, payload):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(seqrec.records, "write_json_atomic", no_new_file)
    recorder.finish("failed", error="CheckpointError: no space left on device")
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "failed" and record["error"].endswith("no space left on device")


# --------------------------------------------------------------------- loss sizes and the data


def test_inbatch_negatives_above_the_pool_are_recorded_as_used_and_warned(tmp_path):
    record = run_in_process([*SMOKE, "loss=inbatch", "loss.num_negatives=100000"], tmp_path)
    fewest, most = record["effective_settings"]["loss.num_negatives"]
    assert record["config"]["loss"]["num_negatives"] == 100000
    (warning,) = [w for w in record["warnings"] if w.startswith("loss.num_negatives=100000")]
    assert f"exceeds the in-batch pool of every training batch ({fewest} to {most} positions)" in warning
    # The pool bounds hold every batch the run trains on (3 steps of batches of 8 sequences).
    cfg = compose_run_config([*SMOKE, "loss=inbatch"], tmp_path / "again")
    _, split, _ = prepare_data(cfg)
    assert batch_positions(split, cfg.model.max_seq_len, 8) == (fewest, most)
    pools = [len(batch.positions) for batch in TrainBatches(pack_train_sequences(split, 20), 8, seed=0)]
    assert all(fewest <= pool <= most for pool in pools) and fewest < most
    lengths = sorted(min(int(e - s) - 1, 20) for s, e in zip(split.train_start, split.train_end, strict=True))
    assert (fewest, most) == (sum(lengths[:8]), sum(lengths[-8:]))  # by hand


def test_negatives_within_every_pool_record_nothing(tmp_path):
    record = run_in_process([*SMOKE, "loss=inbatch", "loss.num_negatives=3"], tmp_path)
    assert record["effective_settings"] == {} and record["status"] == "completed"


@pytest.mark.parametrize(
    ("loss", "key"),
    [("mixed", "num_in_batch"), ("inbatch_symmetric", "num_negatives"), ("logq", "num_negatives")],
)
def test_every_in_batch_objective_records_its_capped_draws(tmp_path, loss, key):
    record = run_in_process([*SMOKE, f"loss={loss}", f"loss.{key}=100000"], tmp_path)
    assert f"loss.{key}" in record["effective_settings"]
    assert any(w.startswith(f"loss.{key}=100000 exceeds the in-batch pool") for w in record["warnings"])


def test_gbce_with_more_negatives_than_items_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(seqrec.app, "fit", no_training)
    with pytest.raises(ConfigError, match=r"loss.num_negatives=100000 exceeds the \d+ other items") as error:
        run_in_process([*SMOKE, "loss=gbce", "loss.num_negatives=100000"], tmp_path)
    assert "beta = " in str(error.value) and "set loss.num_negatives <= " in str(error.value)
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "failed" and "loss.num_negatives=100000" in record["error"]


def test_gbce_without_calibration_may_draw_many_negatives(tmp_path):
    """t = 0 is plain BCE (beta = 1 whatever alpha): more draws than items are allowed."""
    record = run_in_process([*SMOKE, "loss=gbce", "loss.num_negatives=500", "loss.t=0"], tmp_path)
    assert record["status"] == "completed"


def test_sampled_evaluation_beyond_a_users_unseen_items_fails_before_training(tmp_path, monkeypatch):
    """60 items, users with up to 60 events: some evaluated user has seen most of the catalog, so 50
    distinct unseen negatives do not exist for them (main found it at the first validation)."""
    monkeypatch.setattr(seqrec.app, "fit", no_training)
    with pytest.raises(
        ConfigError, match=r"evaluation.num_negatives=50 exceeds the \d+ items that some evaluated"
    ):
        run_in_process([*SMOKE, "evaluation=sampled", "evaluation.num_negatives=50"], tmp_path)
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "failed" and "use evaluation=full" in record["error"]


# ------------------------------------------------------------------ a typo without `+`


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.epoch=3", "unknown config key trainer.epoch (did you mean trainer.epochs?); fix or remove"),
        ("trainr.epochs=3", "unknown config key trainr (did you mean trainer?); fix or remove it"),
        ("loss.temprature=2", "unknown config key loss.temprature (did you mean loss.temperature?)"),
        ("trainer.epochs=abc", "trainer.epochs=abc: Value 'abc' of type 'str' could not be converted to Int"),
    ],
)  # fmt: skip
def test_overrides_that_hydra_rejects_get_one_line(monkeypatch, override, message):
    monkeypatch.setattr(
        ConfigLoaderImpl, "_apply_overrides_to_config", ConfigLoaderImpl._apply_overrides_to_config
    )
    seqrec.overrides.one_line_override_errors()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        with pytest.raises(ConfigError) as error:
            compose(config_name="config", overrides=[*SMOKE, override])
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)
