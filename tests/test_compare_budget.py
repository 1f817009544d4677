"""Budget flags: runs whose best validation step is the first or the last one, and objectives where that
happens in most seeds, in every format and on the verdict lines (fabricated histories)."""

from __future__ import annotations

import json

import torch

from compare_records import metric_values, write_run
from seqrec.compare import compare, format_report, report_json, scan_run_dirs
from seqrec.compare.budget import FIRST, LAST, budget_flags
from seqrec.data.types import EvalSamples
from seqrec.valid_subset import validation_subset


def history(steps: list[int]) -> list[dict]:
    return [{"step": step, "epoch": step / 10, "valid": {"dcg@20": 0.1}} for step in steps]


def fabricate(tmp_path):
    steps = [64, 128, 192, 200]
    best = {"bce": [200, 200, 128], "softmax": [64, 64, 64], "logq": [128, 192, 200]}
    for objective, best_steps in best.items():
        for seed, best_step in enumerate(best_steps):
            base = {"bce": 0.10, "softmax": 0.12, "logq": 0.11}[objective] + 0.001 * seed
            write_run(tmp_path / f"{objective}-{seed}", objective, seed, test=metric_values(base),
                      history=history(steps), best_step=best_step)  # fmt: skip
    return scan_run_dirs(tmp_path)


def test_first_and_last_validation_flags_per_run_and_per_objective(tmp_path):
    per_run, per_objective = budget_flags(fabricate(tmp_path).runs)
    flags = {(b.objective, b.seed): b.flag for b in per_run}
    assert flags[("bce", 0)] == LAST and flags[("bce", 2)] is None and flags[("softmax", 1)] == FIRST
    assert flags[("logq", 2)] == LAST
    assert per_objective["bce"].flag == LAST and per_objective["bce"].flagged_seeds == 2
    assert per_objective["softmax"].flag == FIRST and per_objective["softmax"].flagged_seeds == 3
    assert per_objective["logq"].flag is None  # 1 of 3 seeds is not most seeds
    assert per_objective["bce"].message == "still improving at the end of its budget (2 of 3 seeds)"


def test_a_single_validation_gets_no_flag(tmp_path):
    write_run(tmp_path / "bce-0", "bce", 0, history=history([10]), best_step=10)
    (budget,), _ = budget_flags(scan_run_dirs(tmp_path).runs)
    assert budget.flag is None


def test_every_format_and_the_verdict_lines_carry_the_flags(tmp_path):
    comparison = compare(fabricate(tmp_path), [str(tmp_path)], baseline="bce", metric="dcg@10")
    verdicts = dict(
        zip(comparison.significance["objective"], comparison.significance["verdict"], strict=True)
    )
    assert "[budget: softmax: best at the first validation" in verdicts["softmax"]
    assert "bce: still improving at the end of its budget (2 of 3 seeds)" in verdicts["softmax"]
    assert "logq:" not in verdicts["logq"].partition("[budget:")[2]
    for style in ("plain", "markdown"):
        text = format_report(comparison, style)
        assert "Budget: best validation step = first or last validation" in text
        assert (
            "- `softmax`: best at the first validation: the schedule may be too coarse (3 of 3 seeds)" in text
        )
    payload = json.loads(report_json(comparison))
    assert payload["budget"]["objectives"]["bce"]["flag"] == "last"
    assert {r["flag"] for r in payload["budget"]["runs"] if r["objective"] == "softmax"} == {"first"}
    assert any("[budget:" in row["verdict"] for row in payload["significance"])


def test_the_validation_subset_is_fixed_and_independent_of_the_run():
    n = 500
    samples = EvalSamples(
        user=torch.arange(n), history_start=torch.zeros(n, dtype=torch.long),
        history_end=torch.arange(n) + 1, target=torch.arange(n) * 3, train_end=torch.arange(n),
    )  # fmt: skip
    torch.manual_seed(1)
    first = validation_subset(samples, 40)
    torch.manual_seed(99)  # a run's own seed does not move the subset
    second = validation_subset(samples, 40)
    assert len(first) == 40 and torch.equal(first.user, second.user)
    assert torch.equal(first.target, first.user * 3) and torch.all(first.user.diff() > 0)
    assert validation_subset(samples, None) is samples and validation_subset(samples, n) is samples


def write_trial(study, loss: str, number: int, status: str, value: float | None, seconds: float) -> None:
    folder = study / "trials" / loss / f"trial-{number:03d}"
    folder.mkdir(parents=True)
    record = {
        "status": status,
        "tune": {"study": loss, "number": number, "params": {"trainer.lr": 0.001 * (number + 1)}},
        "config": {"trainer": {"select_metric": "dcg@20"}},
        "timings": {"train_seconds": seconds, "eval_seconds": 1.0},
        "metrics": {"best_valid": {"dcg@20": value}} if value is not None else {},
    }
    (folder / "run.json").write_text(json.dumps(record))
    history = [{"step": 8, "valid": {"dcg@20": 0.01}}] if status == "pruned" else []
    (folder / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))


def test_the_tuning_view_of_a_study_folder(tmp_path):
    from seqrec.compare.report_text import tuning_only_report
    from seqrec.compare.tuning import plot_tuning_curves, study_views

    study = tmp_path / "study"
    study.mkdir()
    manifest = {"objectives": ["bce"], "base_overrides": ["trainer.max_steps=32"], "seed": 0,
                "settings": {"trials": 4, "sampler_seed": 0, "pruner": "median"}}  # fmt: skip
    (study / "tune.json").write_text(json.dumps(manifest))
    for number, status, value in [(0, "completed", 0.05), (1, "completed", 0.07), (2, "pruned", None),
                                  (3, "completed", 0.06)]:  # fmt: skip
        write_trial(study, "bce", number, status, value, seconds=10.0)
    (view,) = study_views([study / "final"])  # found from a folder inside the study too
    (bce,) = view.objectives
    assert bce.default.value == 0.05 and bce.best.number == 1 and bce.count("pruned") == 1
    assert bce.curve() == ([1, 2, 3, 4], [10.0, 20.0, 30.0, 40.0], [0.05, 0.07, 0.07, 0.07])
    text = tuning_only_report([str(study)], "markdown", scan_run_dirs(study))
    assert (
        "| bce (dcg@20) | 3/1/0 | 0.0500 | 0.0700 (trial 1) | +0.0200 (+40%) | 0.0500 / 0.0600 / 0.0700 |"
        in text
    )
    assert "trainer.lr=0.002" in text and "per-trial budget: trainer.max_steps=32" in text
    assert "No completed final run yet" in text
    assert plot_tuning_curves([view], tmp_path / "figures").stat().st_size > 0


def test_a_database_url_opens_as_shared_storage(tmp_path):
    import optuna

    from seqrec.tune.storage import open_storage

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    optuna.create_study(study_name="bce", storage=open_storage(url))
    assert [s.study_name for s in optuna.get_all_study_summaries(open_storage(url))] == ["bce"]
