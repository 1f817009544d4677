"""seqrec.tune: search spaces, bad input before any trial, seeded sampling, trials without test metrics,
pruning, resuming a killed study, frozen presets that reproduce their trial, the final seeds."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqrec.tune.__main__ import main
from seqrec.tune.presets import compose_run
from seqrec.tune.settings import CONF_DIR, TuneSettings
from seqrec.tune.space import check_keys_exist, default_values, load_space
from seqrec.tune.study import ask_trial

REPO = CONF_DIR.parent
SMOKE = ["debug=smoke", "logger=none"]
LOSSES = sorted(path.stem for path in (CONF_DIR / "loss").glob("*.yaml"))


@pytest.mark.parametrize("loss", LOSSES)
def test_every_objective_has_a_search_space_of_its_own_keys_that_holds_its_default(loss):
    params = load_space(CONF_DIR / "search", loss)
    cfg = compose_run([*SMOKE, f"loss={loss}"])
    check_keys_exist(params, cfg, loss)
    assert {"trainer.lr", "model.dropout", "trainer.weight_decay"} <= {p.key for p in params}
    assert any(p.key.startswith("loss.") for p in params)  # the objective's own knob
    for param in params:
        default = default_values([param], cfg)[param.key]
        if param.kind == "categorical":
            assert default in param.choices
        else:
            assert param.low <= default <= param.high, (param.key, default)


def write_space(folder: Path, shared: str, **own: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "shared.yaml").write_text(shared)
    for loss, text in own.items():
        (folder / f"{loss}.yaml").write_text(text)
    return folder


GOOD_SHARED = "trainer.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"


@pytest.mark.parametrize(
    ("arguments", "space", "message"),
    [
        (["loss=bce"], {"softmax": ""}, "loss=bce has no search space"),
        (["loss=bce"], {"bce": "loss.num_negatives: {type: int, low: 8, high: 4}\n"}, "inverted range"),
        (["loss=bce"], {"bce": "loss.num_negatives: {type: int, low: 4, high: 4}\n"}, "inverted range"),
        (["loss=bce"], {"bce": "trainer.weight_decay: {choices: []}\n"}, "empty choices list"),
        (["loss=bce"], {"bce": "loss.temperature: {type: float, low: 0.1, high: 1.0}\n"},
         "tunes loss.temperature, which loss=bce does not have"),
        (["loss=bce"], {"bce": "trainer.max_steps: {type: int, low: 1, high: 9}\n"}, "per-trial budget"),
        (["loss=bce", "tune.trials=0"], {"bce": ""}, "tune.trials must be >= 1, got 0"),
        (["loss=bce", "tune.trails=3"], {"bce": ""}, "unknown setting tune.trails"),
        (["loss=bce", "tune.pruner=hyperband"], {"bce": ""}, "tune.pruner must be one of none, median"),
        (["loss=bce", "seed=0,1"], {"bce": ""}, "sweeps several values"),
        (["loss=bce", "tune.storage=sqlite:////proc/no/such/study.db"], {"bce": ""}, "cannot be opened"),
        (["loss=bce", "trainer.lr=-1"], {"bce": ""}, "trainer.lr must be > 0"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_before_any_trial_and_writes_nothing(
    tmp_path, capsys, arguments, space, message
):
    search = write_space(tmp_path / "search", GOOD_SHARED, **space)
    study = tmp_path / "study"
    code = main([*arguments, *SMOKE, f"tune.dir={study}", f"tune.search_dir={search}"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and message in err, err
    assert len(err.splitlines()) == 1
    assert not study.exists()


def test_a_study_folder_of_another_sweep_is_refused(tmp_path, capsys):
    study = tmp_path / "study"
    study.mkdir()
    manifest = {"objectives": ["softmax"], "base_overrides": SMOKE, "seed": 0, "settings": {}}
    (study / "tune.json").write_text(json.dumps(manifest))
    assert main(["loss=bce", *SMOKE, f"tune.dir={study}"]) == 1
    err = capsys.readouterr().err.strip()
    assert "belongs to another tuning sweep (objectives: ['softmax'] there, ['bce'] here)" in err
    assert sorted(p.name for p in study.iterdir()) == ["tune.json"]
    (study / "tune.json").unlink()
    (study / "notes.txt").write_text("mine")
    assert main(["loss=bce", *SMOKE, f"tune.dir={study}"]) == 1
    assert "is not a tuning study" in capsys.readouterr().err


def _sampled(seed: int, n: int = 8) -> list[dict]:
    import optuna

    cfg = compose_run([*SMOKE, "loss=gbce"])
    params = load_space(CONF_DIR / "search", "gbce")
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(default_values(params, cfg))
    drawn = []
    for _ in range(n):
        trial, values = ask_trial(study, params, sampler_seed=seed, startup_trials=3)
        study.tell(trial, values["trainer.lr"] * 10 - values["model.dropout"])  # a made-up, fixed objective
        drawn.append(values)
    return drawn


def test_the_same_sampler_seed_draws_the_same_trials_and_another_seed_others():
    first, again, other = _sampled(0), _sampled(0), _sampled(1)
    assert first == again
    assert first[0] == other[0]  # trial 0: the default configuration, whatever the seed
    assert first[1:] != other[1:]
    assert first[0]["trainer.lr"] == 1e-3 and first[0]["loss.t"] == 0.75


def test_settings_default_to_five_final_seeds_and_no_pruning():
    settings = TuneSettings()
    assert settings.final_seeds == 5 and settings.pruner == "none"


def _tune_command(study: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "seqrec.tune", "loss=bce,softmax", *SMOKE, "evaluation.valid_max_samples=60",
        "tune.trials=3", "tune.final_seeds=2", "tune.jobs=2", f"tune.dir={study}", *extra,
    ]  # fmt: skip


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}


def _records(folder: Path) -> dict[str, dict]:
    return {
        str(p.parent.relative_to(folder)): json.loads(p.read_text()) for p in sorted(folder.rglob("run.json"))
    }


@pytest.mark.slow
def test_a_killed_study_resumes_and_ends_with_equal_trials_frozen_presets_and_final_seeds(tmp_path):
    study = tmp_path / "study"
    process = subprocess.Popen(_tune_command(study), env=_env(), start_new_session=True, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    second_trial = study / "trials" / "bce" / "trial-001" / "run.json"
    deadline = time.time() + 300
    while not second_trial.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # the command and its running trials, as an OOM kill would
    process.wait()
    assert second_trial.exists()

    resumed = subprocess.run(_tune_command(study), env=_env(), cwd=tmp_path, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # the progress line counts the budget, not trial numbers (abandoned trials have numbers too)
    budget = re.findall(r"\((\d+)/(\d+) of the budget\)", resumed.stdout + resumed.stderr)
    assert budget and all(int(done) <= int(total) for done, total in budget)
    records = _records(study)
    trials = {k: r for k, r in records.items() if k.startswith("trials/")}
    finals = {k: r for k, r in records.items() if k.startswith("final/")}

    # trials killed with the command stay as they were (running: reported died) and are abandoned in the
    # study; each objective still ends with exactly 3 counted trials, trial 0 the default configuration
    import optuna

    from seqrec.tune.storage import journal_spec, open_storage

    killed = {k for k, r in trials.items() if r["status"] == "running"}
    assert "trials/bce/trial-001" in killed
    storage = open_storage(journal_spec(study / "study.journal"))
    for loss in ("bce", "softmax"):
        loaded = optuna.load_study(study_name=loss, storage=storage)
        counted = [t for t in loaded.trials if not t.user_attrs.get("abandoned")]
        assert [t.state.name for t in counted] == ["COMPLETE"] * 3
        assert counted[0].user_attrs.get("default") is True and counted[0].number == 0
        abandoned = {
            f"trials/{loss}/trial-{t.number:03d}" for t in loaded.trials if t.user_attrs.get("abandoned")
        }
        assert {k for k in killed if k.startswith(f"trials/{loss}/")} <= abandoned
        assert all(k in killed or k not in trials for k in abandoned)  # killed before its record: no folder

    # trials: validation only, never a test metric or a test rank file
    for key, record in trials.items():
        if key in killed:
            continue
        assert record["status"] == "completed" and record["tune"]["study"] in ("bce", "softmax")
        assert set(record["metrics"]) == {"best_valid"}
        assert "test_ci" not in record and not (study / key / "test_ranks.parquet").exists()
        assert record["validation_subset"]["samples"] == 60
    # final runs: the same seeds for both objectives, each tested once
    assert sorted(finals) == [f"final/{loss}/seed-{seed}" for loss in ("bce", "softmax") for seed in (0, 1)]
    for key, record in finals.items():
        assert record["status"] == "completed" and "test" in record["metrics"]
        assert (study / key / "test_ranks.parquet").exists()
        assert record["choices"]["experiment"].startswith("tuned-")
    # the frozen preset reproduces its trial's validation metric (final seed 0 = the trials' seed)
    for loss in ("bce", "softmax"):
        best = optuna.load_study(study_name=loss, storage=storage).best_trial
        final = finals[f"final/{loss}/seed-0"]
        assert final["metrics"]["best_valid"]["dcg@20"] == pytest.approx(best.value, rel=0, abs=1e-12)
        preset = (study / "presets" / "experiment" / f"tuned-{loss}.yaml").read_text()
        assert preset.startswith("# @package _global_") and f"override /loss: {loss}" in preset

    # compare: tuned verdict rows, budget flags and the tuning view from the records
    report = subprocess.run([sys.executable, "-m", "seqrec.compare", str(study), "--format", "json"],
                            env=_env(), capture_output=True, text=True)  # fmt: skip
    assert report.returncode == 0, report.stderr
    payload = json.loads(report.stdout)
    assert payload["runs"] == 4 and len(payload["budget"]["runs"]) == 4
    view = {o["objective"]: o for o in payload["tuning"][0]["objectives"]}
    assert view["bce"]["completed"] == 3 and view["bce"]["default_value"] is not None


@pytest.mark.slow
def test_a_pruned_trial_is_recorded_as_pruned_without_test_metrics(tmp_path):
    import optuna
    from optuna.distributions import FloatDistribution

    from seqrec.tune.storage import journal_spec, open_storage

    spec = journal_spec(tmp_path / "study.journal")
    study = optuna.create_study(study_name="bce", storage=open_storage(spec), direction="maximize")
    # an earlier trial far better at every validation step: the median pruner stops the next one at once
    study.add_trial(optuna.trial.create_trial(
        params={"trainer.lr": 1e-3}, distributions={"trainer.lr": FloatDistribution(1e-4, 1e-2, log=True)},
        value=1.0, intermediate_values={step: 1.0 for step in range(0, 100)},
    ))  # fmt: skip
    trial = study.ask({"trainer.lr": FloatDistribution(1e-4, 1e-2, log=True)})
    folder = tmp_path / "trial"
    result = subprocess.run(
        [sys.executable, str(REPO / "run.py"), *SMOKE, "loss=bce", f"trainer.lr={trial.params['trainer.lr']}",
         f"trial.storage={spec}", "trial.study=bce", f"trial.trial_id={trial._trial_id}",
         "trial.pruner=median", "trial.pruner_startup_trials=1", f"hydra.run.dir={folder}"],
        env=_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "pruned" and record["error"] is None
    assert record["pruned_at_step"] >= 1 and "test" not in (record.get("metrics") or {})
    assert not (folder / "test_ranks.parquet").exists()
    reported = optuna.load_study(study_name="bce", storage=open_storage(spec)).trials[1].intermediate_values
    assert list(reported) == [record["pruned_at_step"]]


def test_a_frozen_preset_keeps_interpolations_and_leaves_out_the_data_path(tmp_path):
    from seqrec.tune.presets import freeze

    cfg = compose_run(["experiment=objectives", "dataset.path=/data/u.data", "loss=logq", "trainer.lr=0.002"])
    path = tmp_path / "experiment" / "tuned-logq.yaml"
    freeze(cfg, path, ["header"])
    text = path.read_text()
    assert (
        "cache_dir: ${cache_dir}" in text and "/data/u.data" not in text
    )  # ml-100k's cache_dir interpolates
    assert "override /dataset: ml-100k" in text and "lr: 0.002" in text
