"""Bad input, end to end: checks before any data is read or any folder written, checks right after the
data is loaded, one-line messages on the command line, earlier runs never changed, every failed sweep job
listed, and the sample-level intervals and warnings of small evaluation sets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import seqrec.app
from helpers import SMOKE, ended_process, run_in_process
from seqrec.callbacks import RunChecks
from seqrec.config import METRIC_NAMES, quote_bare_characters, unknown_keys
from seqrec.data.synthetic import SyntheticSource
from seqrec.errors import ConfigError, UserError
from seqrec.intervals import metric_intervals
from seqrec.metrics import RankingMetrics
from seqrec.records import RunRecorder
from seqrec.stats import CONF_DIR

REPO = CONF_DIR.parent
HYDRA_HINT = "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."


def no_data(*args, **kwargs):
    raise AssertionError("data was read before the config was checked")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+trainer.epoch=3", "unknown config key trainer.epoch (did you mean trainer.epochs?)"),
        ("+trainer.learning_rate=1e6", "unknown config key trainer.learning_rate (valid keys: adam_betas, "),
        ("+seeds=3", "unknown config key seeds (did you mean seed?)"),
        ("+loss.temprature=2", "unknown config key loss.temprature (did you mean loss.temperature?)"),
        ("+loss.foo=1", "config key loss.foo (valid keys: detach_item_table, max_logits, temperature"),
        ("+model.dropuot=0.3", "unknown config key model.dropuot (did you mean model.dropout?)"),
        ("+dataset.nmu_users=3", "unknown config key dataset.nmu_users (did you mean dataset.num_users?)"),
        ("+preprocess.user_cores=3", "key preprocess.user_cores (did you mean preprocess.user_core?)"),
        ("trainer.select_metric=dcg@50", "dcg@50 is not computed with evaluation.ks=[5, 10, 20]; add 50"),
        ("evaluation.ks=5", "evaluation.ks must be a list of cut-offs, got 5: write evaluation.ks=[5]"),
    ],
)  # fmt: skip
def test_unknown_keys_and_unreachable_metrics_fail_before_any_data_is_read(
    tmp_path, monkeypatch, override, message
):
    monkeypatch.setattr(seqrec.app, "load_log", no_data)
    with pytest.raises(ConfigError) as error:
        run_in_process([*SMOKE, override], tmp_path / "run")
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()


def test_every_preset_and_option_passes_the_key_check():
    overrides = [
        [f"{group}={option.stem}"]
        for group in ("experiment", "dataset", "model", "loss", "split", "evaluation", "logger", "debug")
        for option in sorted((CONF_DIR / group).glob("*.yaml"))
    ]
    overrides += [["experiment=seminar", f"loss={loss}"] for loss in ("bce", "logq", "softmax", "inbatch")]
    overrides += [["experiment=two_tower", "loss=softmax"], ["experiment=two_tower", "model=sasrec"]]
    for override in overrides:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            assert unknown_keys(compose(config_name="config", overrides=override)) == [], override


def test_metric_names_match_what_the_metrics_compute():
    metrics = RankingMetrics([3], num_items=4)
    metrics.update(torch.eye(4)[:2], torch.tensor([0, 1]))
    assert sorted(metrics.compute()) == sorted(f"{name}@3" for name in METRIC_NAMES)


def composed_with_hydra(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+trainer.epoch=3", "unknown config key trainer.epoch (did you mean trainer.epochs?); fix"),
        ("loss.temperature=-1", "loss.temperature must be > 0, got -1"),
        ("hydra.run.dir=/proc/self", "the run folder /proc/self is not usable: "),
        ("hydra.run.dir=/proc/seqrec/run", "the run folder /proc/seqrec/run is not usable: "),
        ("cache_dir=/proc/nonexistent", "the cache folder (cache_dir) /proc/nonexistent is not usable: "),
    ],
)  # fmt: skip
def test_the_hydra_callback_stops_bad_input_before_the_run_folder_exists(tmp_path, capsys, override, message):
    cfg = composed_with_hydra([*SMOKE, f"hydra.run.dir={tmp_path / 'run'}", override])
    with pytest.raises(SystemExit) as exit_status:
        RunChecks().on_run_start(config=cfg)
    assert exit_status.value.code == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(message) and lines[1:] == ["", HYDRA_HINT]
    assert not (tmp_path / "run").exists()


def test_the_hydra_callback_refuses_a_folder_with_a_run_record(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")
    with pytest.raises(SystemExit):
        RunChecks().on_run_start(config=composed_with_hydra([*SMOKE, f"hydra.run.dir={tmp_path / 'run'}"]))
    assert "already holds a run record" in capsys.readouterr().err
    sweep = composed_with_hydra([*SMOKE, f"hydra.sweep.dir={tmp_path}"])
    with pytest.raises(SystemExit):
        RunChecks().on_multirun_start(config=sweep)
    assert (
        f"{tmp_path} already holds an earlier sweep ({tmp_path / 'run' / 'run.json'})"
        in capsys.readouterr().err
    )


def test_an_unwritable_run_folder_is_a_one_line_error():
    with pytest.raises(
        UserError, match="cannot write the run record into the run folder /proc/self/seqrec: "
    ):
        RunRecorder("/proc/self/seqrec").start()


def test_command_line_separators_reach_the_source(tmp_path):
    log = tmp_path / "log.csv"
    typed_as = [(";", ";"), ("\\t", "\t"), ('"\\t"', "\t"), ("tab", "\t"), (" ", " "), (",", ",")]
    for typed, character in typed_as:  # '"\\t"': the quotes reach Hydra when the shell keeps them
        log.write_text(f"user{character}item{character}timestamp\n1{character}2{character}3\n")
        overrides = quote_bare_characters(
            ["dataset=file", f"dataset.path={log}", f"dataset.separator={typed}"]
        )
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
        source = instantiate(cfg.dataset)
        assert source.separator == character and source.load()["item"].to_list() == [2]
    assert quote_bare_characters(["-m", "loss=bce,logq", "a=b", "x=;"]) == [
        "-m",
        "loss=bce,logq",
        "a=b",
        "x=';'",
    ]


def test_evaluation_cutoffs_above_the_catalog_fail_before_training(tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(seqrec.app, "fit", no_training)
    with pytest.raises(
        ConfigError, match=r"evaluation.ks=\[5, 10, 20, 500\] has a cut-off above the \d+ items left"
    ):
        run_in_process([*SMOKE, "evaluation.ks=[5,10,20,500]"], tmp_path)
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "failed" and "evaluation.ks" in record["error"] and "metrics" not in record


def test_a_batch_larger_than_the_training_set_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(seqrec.app, "fit", lambda *args, **kwargs: pytest.fail("training started"))
    with pytest.raises(ConfigError, match=r"trainer.batch_size=5000 exceeds the \d+ training sequences"):
        run_in_process([*SMOKE, "trainer.batch_size=5000"], tmp_path)


def test_small_evaluation_sets_warn_and_every_run_has_sample_level_intervals(tmp_path, capsys):
    record = run_in_process([*SMOKE, "split.valid_quantile=0.98", "split.test_quantile=0.995"], tmp_path)
    stats = record["dataset_stats"]
    assert 0 < stats["test_samples"] < 100 and 0 < stats["valid_samples"] < 100
    assert [w.split(" (")[0] for w in record["warnings"]] == [
        f"only {stats['valid_samples']} validation samples",
        f"only {stats['test_samples']} test samples",
    ]
    test_ranks = pl.read_parquet(tmp_path / "test_ranks.parquet")
    ranks, users = test_ranks["rank"].to_numpy(), test_ranks["user"].to_numpy()
    ci = record["test_ci"]
    assert ci["level"] == 0.95 and ci["samples"] == len(ranks) == stats["test_samples"]
    assert ci["clustered_by"] == "user" and ci["users"] == len(set(users.tolist()))
    for name, interval in metric_intervals(ranks, [5, 10, 20], users=users).items():
        assert ci["intervals"][name] == pytest.approx(interval)
    assert set(ci["intervals"]) == {f"{m}@{k}" for m in ("dcg", "hitrate") for k in (5, 10, 20)}
    for name, (low, high) in ci["intervals"].items():
        assert low <= record["metrics"]["test"][name] <= high
    printed = capsys.readouterr().out
    assert f"test 95% CI over {len(ranks)} test samples of {ci['users']} users: dcg@5=[" in printed
    assert f"warning: only {stats['test_samples']} test samples (fewer than min_eval_samples=100)" in printed
    quiet = run_in_process(
        [*SMOKE, "split.valid_quantile=0.98", "split.test_quantile=0.995", "min_eval_samples=0"],
        tmp_path / "q",
    )
    assert quiet["test_ci"] == record["test_ci"]
    assert all(w.startswith("one user holds") for w in quiet["warnings"])  # no small-set warning


def test_a_log_with_every_row_twice_gives_the_clean_logs_results(tmp_path):
    events = SyntheticSource(num_users=150, num_items=60, mean_length=20, max_length=60).load()
    clean, doubled = tmp_path / "clean.csv", tmp_path / "doubled.csv"
    events.select("user", "item", "timestamp").write_csv(clean)
    pl.concat([events, events]).sort("timestamp", maintain_order=True).select(
        "user", "item", "timestamp"
    ).write_csv(doubled)
    file_smoke = [o for o in SMOKE if not o.startswith("dataset")] + ["dataset=file"]
    first = run_in_process([*file_smoke, f"dataset.path={clean}"], tmp_path / "clean")
    second = run_in_process([*file_smoke, f"dataset.path={doubled}"], tmp_path / "doubled")
    assert second["dataset_stats"]["exact_duplicates_dropped"] == events.height
    assert first["dataset_stats"]["exact_duplicates_dropped"] == 0
    assert second["metrics"]["test"] == first["metrics"]["test"]
    kept = run_in_process(
        [*file_smoke, f"dataset.path={doubled}", "preprocess.drop_exact_duplicates=false"], tmp_path / "kept"
    )
    assert (
        kept["metrics"]["test"]["dcg@10"] > 2 * first["metrics"]["test"]["dcg@10"]
    )  # copies leak the target


# --------------------------------------------------------------------------- the command line, for real


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python run.py ARGS` as a user runs it (no HYDRA_FULL_ERROR)."""
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    return subprocess.run(
        [sys.executable, str(REPO / "run.py"), *args],
        cwd=cwd,
        env=env | {"WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def snapshot(folder: Path) -> dict:
    """Every file below `folder`: bytes and modification time."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def write_log(path: Path, timestamps, separator: str = ",") -> Path:
    rows = [(user, item, timestamp) for user in range(1, 31) for item, timestamp in enumerate(timestamps)]
    pl.DataFrame(rows, schema=["user", "item", "timestamp"], orient="row").write_csv(
        path, separator=separator
    )
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "message", "before_the_run_folder"),
    [
        (["+trainer.epoch=3"], "unknown config key trainer.epoch (did you mean trainer.epochs?)", True),
        (["trainer.epoch=3"], "unknown config key trainer.epoch (did you mean trainer.epochs?)", True),
        (["dataset=file", "dataset.path={garbage}"], " is not a text file (binary data: a zero byte", False),
        (["dataset=file", "dataset.path={equal}"], "time split: all 750 events have the same", False),
        (["dataset=file", "dataset.path={equal}", "split=loo", "dataset.separator=;"], None, False),
    ],
)  # fmt: skip
def test_command_line_bad_input_gets_one_line(tmp_path, overrides, message, before_the_run_folder):
    """The last case is the fix the time split suggests, with `dataset.separator=;` as a shell passes it
    (Hydra's grammar alone rejects a bare `;`)."""
    (tmp_path / "garbage.csv").write_bytes(bytes(range(256)) * 8)
    separator = ";" if "dataset.separator=;" in overrides else ","
    equal = write_log(tmp_path / "equal.csv", [5] * 25, separator)
    overrides = [o.format(garbage=tmp_path / "garbage.csv", equal=equal) for o in overrides]
    data = [o for o in SMOKE if not (o.startswith("dataset.") and "dataset=file" in overrides)]
    result = run_cli(*data, *overrides, "hydra.run.dir=run", cwd=tmp_path)
    if message is None:
        assert result.returncode == 0, result.stderr[-2000:]
        assert (
            json.loads((tmp_path / "run" / "run.json").read_text())["config"]["dataset"]["separator"] == ";"
        )
        return
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [
        line for line in result.stderr.splitlines() if line and not line.startswith("Error executing job")
    ]
    assert len(lines) == 2 and message in lines[0] and lines[1] == HYDRA_HINT, result.stderr
    assert (tmp_path / "run").exists() != before_the_run_folder
    if not before_the_run_folder:
        record = json.loads((tmp_path / "run" / "run.json").read_text())
        assert record["status"] == "failed" and message in record["error"]


@pytest.mark.slow
def test_a_refused_rerun_changes_nothing_of_the_earlier_run(tmp_path):
    """Hydra writes .hydra/ (and opens run.log) before the task runs: the refusal must come earlier."""
    earlier = tmp_path / "sweep" / "job-0"
    run_in_process(SMOKE, earlier)
    (earlier / "run.log").write_text("the earlier run's log\n")
    (tmp_path / "sweep" / "multirun.yaml").write_text("hydra: {}\n")
    assert {p.name for p in (earlier / ".hydra").iterdir()} == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    before = snapshot(tmp_path / "sweep")
    again = run_cli(*SMOKE, "seed=1", f"hydra.run.dir={earlier}", cwd=tmp_path)
    assert again.returncode == 1 and "already holds a run record" in again.stderr
    sweep_again = run_cli("-m", *SMOKE, "seed=1,2", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert sweep_again.returncode == 1 and "sweep already holds an earlier sweep" in sweep_again.stderr
    assert snapshot(tmp_path / "sweep") == before


@pytest.mark.slow
def test_sweep_failures_are_all_listed_at_the_end(tmp_path):
    """Four jobs, all run: one completes; one shares its folder (hydra.sweep.subdir names a folder by the
    temperature only) and is refused, leaving the first job's files alone; two fail their config check."""
    result = run_cli(
        "-m", *SMOKE, "loss=softmax", "loss.temperature=1.0,-1.0", "trainer.device=cpu,auto",
        "hydra.sweep.dir=sweep", "hydra.sweep.subdir=t${loss.temperature}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    tail = result.stderr.splitlines()[-4:]
    assert tail[0] == "3 of 4 jobs of the sweep sweep failed:", result.stderr[-3000:]
    reasons = sorted(line.split(": ", 1)[1] for line in tail[1:])
    assert reasons[1:] == ["loss.temperature must be > 0, got -1.0"] * 2
    assert "already holds a run record" in reasons[0] and "never overwrites results" in reasons[0]
    (job,) = [p.parent for p in (tmp_path / "sweep").glob("*/run.json")]
    record = json.loads((job / "run.json").read_text())
    assert record["status"] == "completed" and "trainer.device=cpu" in record["overrides"]
    assert "trainer.device=cpu" in (job / ".hydra" / "overrides.yaml").read_text()  # not rewritten by job 2


def test_failed_jobs_of_a_parallel_launcher_are_listed_from_their_records(tmp_path, capsys):
    """Jobs that ran in other processes are found by their run.json (a dead process counts as failed)."""
    records = {
        "loss=bce": {"status": "completed"},
        "loss=logq": {"status": "failed", "error": "ConfigError: evaluation.ks=[500] has a cut-off above"},
        "loss=softmax": {"status": "running", "process": ended_process()},
    }
    for name, record in records.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(json.dumps(record))
    checks = RunChecks()
    checks.sweep_dir = tmp_path
    checks.report_failed_jobs()
    assert capsys.readouterr().err.splitlines() == [
        f"2 of 3 jobs of the sweep {tmp_path} failed:",
        "  loss=logq: failed: ConfigError: evaluation.ks=[500] has a cut-off above",
        "  loss=softmax: died: no error recorded",
    ]
