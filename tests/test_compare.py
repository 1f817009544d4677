"""seqrec.compare on fabricated run records with known values, checked against hand computations."""

from __future__ import annotations

import itertools
import json
import logging
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from seqrec import compare
from seqrec.data.types import DataError

METRICS = compare.PROTOCOL_METRICS


def metric_values(base: float) -> dict[str, float]:
    """Distinct, known test metrics: base + 0.001 * column index."""
    return {metric: base + 0.001 * index for index, metric in enumerate(METRICS)}


def write_run(
    run_dir: Path,
    objective: str,
    seed: int,
    *,
    test: dict[str, float] | None = None,
    status: str = "completed",
    error: str | None = None,
    ranks: pl.DataFrame | None = None,
    history: list[dict] | None = None,
) -> Path:
    run_dir.mkdir(parents=True)
    record = {
        "status": status,
        "error": error,
        "seed": seed,
        "choices": {"loss": objective, "split": "time", "dataset": "ml-100k"},
        "overrides": [f"loss={objective}", f"seed={seed}"],
        "run_name": f"{objective}-time-ml-100k-s{seed}",
        "metrics": {"best_valid": {"dcg@20": 0.5}, "test": test if test is not None else metric_values(0.1)},
    }
    (run_dir / "run.json").write_text(json.dumps(record))
    entries = history if history is not None else []
    (run_dir / "history.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    if ranks is not None:
        ranks.write_parquet(run_dir / "test_ranks.parquet")
    return run_dir


def ranks_frame(users: np.ndarray, items: np.ndarray, ranks: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame(
        {"user": users, "item": items, "rank": ranks},
        schema={"user": pl.Int64, "item": pl.Int64, "rank": pl.Int64},
    )


# Three seeds of two objectives; softmax is better on every metric.
SEED_BASES = {"bce": [0.10, 0.13, 0.11], "softmax": [0.20, 0.24, 0.25]}


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "sweep"
    for objective, bases in SEED_BASES.items():
        for seed, base in enumerate(bases):
            write_run(root / f"loss={objective},seed={seed}", objective, seed, test=metric_values(base))
    return root


# ------------------------------------------------------------------------------------------ loading


def test_scan_keeps_completed_and_reports_failed_interrupted_running_and_corrupt(tmp_path: Path, caplog):
    write_run(tmp_path / "a" / "ok", "bce", 0)
    write_run(tmp_path / "b" / "failed", "bce", 1, status="failed", error="CUDA out of memory")
    write_run(tmp_path / "c" / "interrupted", "bce", 2, status="interrupted")
    write_run(tmp_path / "d" / "running", "bce", 3, status="running")
    (tmp_path / "e" / "corrupt").mkdir(parents=True)
    (tmp_path / "e" / "corrupt" / "run.json").write_text('{"status": "compl')
    (tmp_path / "f" / "nochoices").mkdir(parents=True)
    (tmp_path / "f" / "nochoices" / "run.json").write_text(
        '{"status": "completed", "seed": 0, "metrics": {}}'
    )

    scan = compare.scan_run_dirs(tmp_path)

    assert [run.location for run in scan.runs] == [str(tmp_path / "a" / "ok")]
    reasons = {Path(skipped.location).name: skipped.reason for skipped in scan.skipped}
    assert set(reasons) == {"failed", "interrupted", "running", "corrupt", "nochoices"}
    assert "'failed'" in reasons["failed"] and "CUDA out of memory" in reasons["failed"]
    assert "'interrupted'" in reasons["interrupted"] and "'running'" in reasons["running"]
    assert "unreadable run.json" in reasons["corrupt"]
    assert "choices.loss" in reasons["nochoices"]
    note = scan.note()
    assert "skipped 5" in note and str(tmp_path / "b" / "failed") in note

    with caplog.at_level(logging.WARNING, logger="seqrec.compare"):
        runs = compare.load_runs(tmp_path)
    assert len(runs) == 1 and runs[0].objective == "bce" and runs[0].seed == 0
    assert "skipped 5" in caplog.text


def test_run_record_fields_and_loaders(tmp_path: Path):
    ranks = ranks_frame(np.array([3, 1]), np.array([7, 8]), np.array([2, 1]))
    history = [
        {"step": 64, "epoch": 0.5, "train_loss": 3.0, "elapsed_seconds": 1.0, "valid": {"dcg@20": 0.1}},
        {"step": 128, "epoch": 1.0, "train_loss": 2.5, "elapsed_seconds": 2.0, "valid": {"dcg@20": 0.2}},
    ]
    write_run(tmp_path / "run", "logq", 4, ranks=ranks, history=history)
    write_run(tmp_path / "noranks", "bce", 0)

    with_ranks, without_ranks = sorted(
        compare.load_runs(tmp_path), key=lambda run: run.objective, reverse=True
    )

    assert (
        with_ranks.dir == tmp_path / "run" and with_ranks.seed == 4 and with_ranks.choices["split"] == "time"
    )
    assert with_ranks.metrics["test"]["dcg@10"] == pytest.approx(0.101)
    assert with_ranks.ranks().equals(ranks)
    assert with_ranks.history()["dcg@20"].to_list() == [0.1, 0.2]
    assert with_ranks.history()["step"].to_list() == [64, 128]
    assert not without_ranks.has_ranks and without_ranks.history().height == 0
    with pytest.raises(DataError, match="test_ranks.parquet"):
        without_ranks.ranks()


def test_scan_of_missing_directory_says_so(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        compare.scan_run_dirs(tmp_path / "nowhere")


# -------------------------------------------------------------------------------------------- table


def test_results_table_means_and_ci_match_student_t(sweep: Path):
    table = compare.results_table(compare.load_runs(sweep))

    assert table["objective"].to_list() == ["bce", "softmax"]
    assert table["n_seeds"].to_list() == [3, 3]
    for row, bases in enumerate(SEED_BASES.values()):
        for index, metric in enumerate(METRICS):
            values = np.array(bases) + 0.001 * index
            half_width = stats.t.ppf(0.975, df=2) * values.std(ddof=1) / np.sqrt(3)
            assert table[metric][row] == pytest.approx(values.mean())
            assert table[f"{metric}_ci"][row] == pytest.approx(half_width)
    # by hand for bce dcg@5: mean 0.11333, sd 0.015275, t(0.975, 2) = 4.302653
    assert table["dcg@5_ci"][0] == pytest.approx(4.302653 * 0.0152753 / np.sqrt(3), rel=1e-5)


def test_results_table_order_selection_and_single_seed(tmp_path: Path):
    write_run(tmp_path / "x0", "softmax", 0, test=metric_values(0.3))
    write_run(tmp_path / "x1", "softmax", 1, test=metric_values(0.5))
    write_run(tmp_path / "y0", "bce", 0, test=metric_values(0.2))
    write_run(tmp_path / "z0", "logq", 0, test=metric_values(0.1))
    runs = compare.load_runs(tmp_path)

    assert compare.results_table(runs)["objective"].to_list() == ["softmax", "bce", "logq"]
    table = compare.results_table(runs, metrics=("dcg@10",), objectives=["logq", "softmax"])
    assert table.columns == ["objective", "n_seeds", "dcg@10", "dcg@10_ci"]
    assert table["objective"].to_list() == ["logq", "softmax"]
    assert table["n_seeds"].to_list() == [1, 2]
    assert table["dcg@10_ci"][0] is None
    assert table["dcg@10"].to_list() == pytest.approx([0.101, 0.401])
    assert "(n=1)" in compare.format_table(table)
    with pytest.raises(ValueError, match="no completed run"):
        compare.results_table(runs, objectives=["inbatch"])


def test_results_table_rejects_two_runs_for_one_objective_and_seed(tmp_path: Path):
    write_run(tmp_path / "ml-100k", "bce", 0)
    write_run(tmp_path / "ml-1m", "bce", 0)
    with pytest.raises(ValueError, match="several runs"):
        compare.results_table(compare.load_runs(tmp_path))


def test_results_table_names_the_run_missing_a_metric(tmp_path: Path):
    write_run(tmp_path / "full", "bce", 0)
    write_run(tmp_path / "partial", "bce", 1, test={"dcg@10": 0.1})
    with pytest.raises(DataError, match="partial.*coverage@5"):
        compare.results_table(compare.load_runs(tmp_path))
    assert compare.results_table(compare.load_runs(tmp_path), metrics=["dcg@10"])["n_seeds"][0] == 2


def three_objective_table() -> pl.DataFrame:
    """Column a: c best, a second; column b: a best, b second; single-seed row c has no CI."""
    return pl.DataFrame(
        {
            "objective": ["a", "b", "c"],
            "n_seeds": [3, 3, 1],
            "m1": [0.2, 0.1, 0.3],
            "m1_ci": [0.01, 0.02, None],
            "m2": [0.9, 0.8, 0.7],
            "m2_ci": [0.03, 0.04, None],
        }
    )


def test_format_table_markdown_bold_best_underline_second():
    lines = compare.format_table(three_objective_table()).splitlines()

    assert lines[0] == "| objective | seeds | m1 | m2 |"
    assert lines[2] == "| a | 3 | <u>0.2000 ± 0.0100</u> | **0.9000 ± 0.0300** |"
    assert lines[3] == "| b | 3 | 0.1000 ± 0.0200 | <u>0.8000 ± 0.0400</u> |"
    assert lines[4] == "| c | 1 | **0.3000 (n=1)** | 0.7000 (n=1) |"


def test_format_table_plain_marks_and_ties():
    table = three_objective_table().with_columns(m2=pl.Series([0.9, 0.9, 0.7]))
    text = compare.format_table(table, style="plain", digits=2)
    rows = {line.split()[0]: line for line in text.splitlines()[2:5]}

    assert "0.20 ± 0.01 +" in rows["a"] and "0.90 ± 0.03 *" in rows["a"]
    assert "0.90 ± 0.04 *" in rows["b"]  # tie for best: both marked best
    assert "0.70 (n=1) +" in rows["c"] and "0.30 (n=1) *" in rows["c"]
    assert text.splitlines()[-1] == "* best, + second best"
    with pytest.raises(ValueError, match="style must be one of"):
        compare.format_table(table, style="latex")


# ------------------------------------------------------------------------------------- significance


def test_per_sample_metrics_match_hand_values():
    ranks = np.array([1, 2, 10, 11, 25])
    dcg = compare.per_sample_metric("dcg@10")(ranks)
    hitrate = compare.per_sample_metric("hitrate@10")(ranks)

    np.testing.assert_allclose(dcg, [1.0, 1 / np.log2(3), 1 / np.log2(11), 0.0, 0.0])
    np.testing.assert_array_equal(hitrate, [1.0, 1.0, 1.0, 0.0, 0.0])
    for bad in ("coverage@10", "dcg", "dcg@0", "ndcg@10"):
        with pytest.raises(ValueError, match="metric must be"):
            compare.per_sample_metric(bad)


def test_sign_flip_p_value_matches_exact_enumeration():
    differences = np.array([0.5, 0.3, -0.1, 0.4, 0.2, 0.0, 0.6])
    signs = np.array(list(itertools.product([-1, 1], repeat=differences.size)))
    exact = np.mean(np.abs(signs @ differences) >= abs(differences.sum()) - 1e-12)

    estimate = compare.sign_flip_p_value(differences, 40_000, np.random.default_rng(1))

    # |sum| >= 1.9 only for the observed signs or with -0.1 flipped (2.1), and their negatives: 4 of 2^6
    assert exact == pytest.approx(4 / 64)
    assert estimate == pytest.approx(exact, abs=0.005)
    assert compare.sign_flip_p_value(np.zeros(5), 100, np.random.default_rng(0)) == 1.0


@pytest.mark.parametrize("nonzero_share", [1.0, 0.1])
def test_bootstrap_means_have_the_sampling_distribution_of_the_mean(nonzero_share: float):
    rng = np.random.default_rng(3)
    differences = rng.normal(loc=0.3, size=400) * (rng.random(400) < nonzero_share)
    means = compare.bootstrap_means(differences, 4000, np.random.default_rng(4))

    naive = differences[np.random.default_rng(5).integers(0, 400, size=(4000, 400))].mean(axis=1)
    assert means.shape == (4000,)
    assert means.mean() == pytest.approx(differences.mean(), abs=0.005)
    assert means.std() == pytest.approx(differences.std() / np.sqrt(400), rel=0.05)
    np.testing.assert_allclose(
        np.quantile(means, [0.025, 0.5, 0.975]), np.quantile(naive, [0.025, 0.5, 0.975]), atol=0.01
    )
    assert np.all(compare.bootstrap_means(np.zeros(7), 10, np.random.default_rng(0)) == 0.0)


N_SAMPLES = 300


def sample_keys() -> tuple[np.ndarray, np.ndarray]:
    """Users 0..149 with two test targets each; user 7 rated item 5 twice (a repeated pair)."""
    users = np.repeat(np.arange(150), 2)
    items = np.tile([5, 9], 150) + users
    items[15] = items[14]
    return users, items


def write_ranked_sweep(root: Path, rank_sets: dict[str, list[np.ndarray]]) -> None:
    users, items = sample_keys()
    for objective, per_seed in rank_sets.items():
        for seed, ranks in enumerate(per_seed):
            write_run(root / f"{objective}-{seed}", objective, seed, ranks=ranks_frame(users, items, ranks))


def test_identical_ranks_give_zero_difference_and_p_one(tmp_path: Path):
    rng = np.random.default_rng(0)
    rank_sets = [rng.integers(1, 40, size=N_SAMPLES) for _ in range(2)]
    write_ranked_sweep(tmp_path, {"bce": rank_sets, "copy": [ranks.copy() for ranks in rank_sets]})

    result = compare.paired_significance(compare.load_runs(tmp_path), baseline="bce", n_bootstrap=2000)

    assert result["objective"].to_list() == ["copy"]
    row = result.row(0, named=True)
    assert row["difference"] == 0.0 and row["ci_low"] == 0.0 and row["ci_high"] == 0.0
    assert row["p_value"] == 1.0
    assert row["n_seeds"] == 2 and row["n_samples"] == N_SAMPLES


def test_clearly_better_objective_is_significant_and_matches_hand_means(tmp_path: Path):
    rng = np.random.default_rng(1)
    worse = [rng.integers(5, 200, size=N_SAMPLES) for _ in range(3)]
    better = [np.maximum(1, ranks // 4) for ranks in worse[:2]]  # seeds 0 and 1 only
    write_ranked_sweep(tmp_path, {"bce": worse, "softmax": better})

    result = compare.paired_significance(compare.load_runs(tmp_path), baseline="bce", metric="dcg@10")
    row = result.row(0, named=True)

    dcg = compare.per_sample_metric("dcg@10")
    baseline_mean = np.mean([dcg(ranks).mean() for ranks in worse[:2]])  # only the shared seeds
    objective_mean = np.mean([dcg(ranks).mean() for ranks in better])
    assert row["n_seeds"] == 2
    assert row["baseline_mean"] == pytest.approx(baseline_mean)
    assert row["objective_mean"] == pytest.approx(objective_mean)
    assert row["difference"] == pytest.approx(objective_mean - baseline_mean)
    assert 0 < row["ci_low"] < row["difference"] < row["ci_high"]
    assert row["p_value"] < 0.001


def test_pairing_uses_user_item_keys_not_row_order(tmp_path: Path):
    rng = np.random.default_rng(2)
    baseline_ranks = rng.integers(1, 30, size=N_SAMPLES)
    objective_ranks = rng.integers(1, 30, size=N_SAMPLES)
    users, items = sample_keys()
    write_run(tmp_path / "bce", "bce", 0, ranks=ranks_frame(users, items, baseline_ranks))
    write_run(tmp_path / "ordered", "logq", 0, ranks=ranks_frame(users, items, objective_ranks))
    expected = compare.paired_significance(compare.load_runs(tmp_path), "bce", n_bootstrap=500)

    shuffled = np.random.default_rng(3).permutation(N_SAMPLES)
    shuffled_frame = ranks_frame(users[shuffled], items[shuffled], objective_ranks[shuffled])
    (tmp_path / "ordered" / "test_ranks.parquet").unlink()
    shuffled_frame.write_parquet(tmp_path / "ordered" / "test_ranks.parquet")
    result = compare.paired_significance(compare.load_runs(tmp_path), "bce", n_bootstrap=500)

    assert result.equals(expected)
    assert result["difference"][0] != 0.0


def test_pairing_refuses_runs_on_different_samples(tmp_path: Path):
    users, items = sample_keys()
    ranks = np.ones(N_SAMPLES, dtype=np.int64)
    write_run(tmp_path / "bce", "bce", 0, ranks=ranks_frame(users, items, ranks))
    write_run(tmp_path / "other", "logq", 0, ranks=ranks_frame(users, items + 1000, ranks))
    with pytest.raises(DataError, match="same data, split and seed"):
        compare.paired_significance(compare.load_runs(tmp_path), "bce", n_bootstrap=10)


def test_significance_needs_a_baseline_with_ranks(sweep: Path):
    with pytest.raises(ValueError, match="baseline 'bce' has no completed run with test_ranks"):
        compare.paired_significance(compare.load_runs(sweep), "bce")


def test_format_significance():
    table = pl.DataFrame(
        [
            {
                "objective": "softmax",
                "baseline": "bce",
                "metric": "dcg@10",
                "n_seeds": 3,
                "n_samples": 1000,
                "baseline_mean": 0.04,
                "objective_mean": 0.05,
                "difference": 0.01,
                "ci_low": 0.005,
                "ci_high": 0.015,
                "p_value": 0.0001,
            }
        ]
    )
    lines = compare.format_significance(table).splitlines()
    assert (
        lines[0]
        == "| objective | dcg@10 | bce (baseline) | difference | 95% CI | p-value | seeds | samples |"
    )
    assert lines[2] == "| softmax | 0.0500 | 0.0400 | +0.0100 | [+0.0050, +0.0150] | 0.0001 | 3 | 1000 |"
    assert "no objective" in compare.format_significance(table.clear())


# ------------------------------------------------------------------------------------ curves, plots


def history_entries(offset: float) -> list[dict]:
    return [
        {
            "step": step,
            "epoch": step / 100,
            "train_loss": 1.0,
            "elapsed_seconds": 1.0,
            "valid": {"dcg@20": offset + step},
        }
        for step in (64, 128)
    ]


def test_validation_curves_and_plots(tmp_path: Path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    write_run(tmp_path / "b0", "bce", 0, history=history_entries(0.0), test=metric_values(0.1))
    write_run(tmp_path / "b1", "bce", 1, history=history_entries(2.0), test=metric_values(0.2))
    write_run(tmp_path / "s0", "softmax", 0, history=history_entries(10.0), test=metric_values(0.3))
    runs = compare.load_runs(tmp_path)

    curves = compare.validation_curves(runs)
    assert curves.columns[:3] == ["objective", "seed", "step"] and "dcg@20" in curves.columns
    assert curves.height == 6
    assert curves.filter(objective="bce", seed=1)["dcg@20"].to_list() == [66.0, 130.0]

    ax = compare.plot_validation_curves(curves, metric="dcg@20")
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"bce", "softmax"}
    np.testing.assert_allclose(lines["bce"].get_ydata(), [65.0, 129.0])  # mean of seeds 0 and 1
    np.testing.assert_allclose(lines["bce"].get_xdata(), [64, 128])
    with pytest.raises(ValueError, match="no validation metric"):
        compare.plot_validation_curves(curves, metric="hitrate@5")

    table = compare.results_table(runs)
    ax = compare.plot_quality_coverage(table, k=10)
    points = [
        (line.get_xdata()[0], line.get_ydata()[0]) for line in ax.get_lines() if line.get_marker() == "o"
    ]
    expected = list(zip(table["coverage@10"], table["dcg@10"], strict=True))
    np.testing.assert_allclose(points, expected)
    assert [text.get_text() for text in ax.texts] == ["bce", "softmax"]
    matplotlib.pyplot.close("all")


def test_newest_sweep_dir(tmp_path: Path):
    older, newer = (
        tmp_path / "multirun" / "2024-01-01" / "10-00-00",
        tmp_path / "multirun" / "2024-01-02" / "09-00-00",
    )
    for sweep_dir, mtime in ((older, 1_000_000), (newer, 2_000_000)):
        sweep_dir.mkdir(parents=True)
        (sweep_dir / "multirun.yaml").write_text("{}")
        os.utime(sweep_dir / "multirun.yaml", (mtime, mtime))
    (tmp_path / "notebooks").mkdir()

    assert compare.newest_sweep_dir(tmp_path / "notebooks") == newer  # found in a parent
    assert compare.newest_sweep_dir(tmp_path) == newer
    os.utime(older / "multirun.yaml", (3_000_000, 3_000_000))
    assert compare.newest_sweep_dir(tmp_path) == older
    (tmp_path / "elsewhere" / "multirun").mkdir(parents=True)
    assert compare.newest_sweep_dir(tmp_path / "elsewhere") is None


# ------------------------------------------------------------------------------------------------ CLI


def test_main_prints_table_skipped_runs_and_significance(tmp_path: Path, capsys):
    rng = np.random.default_rng(5)
    worse = [rng.integers(5, 200, size=N_SAMPLES) for _ in range(2)]
    write_ranked_sweep(tmp_path / "sweep", {"bce": worse, "softmax": [np.maximum(1, r // 4) for r in worse]})
    write_run(tmp_path / "sweep" / "crashed", "logq", 0, status="failed", error="boom")
    output = tmp_path / "report.md"

    code = compare.main(
        [str(tmp_path / "sweep"), "--baseline", "bce", "--n-bootstrap", "500", "--output", str(output)]
    )

    printed = capsys.readouterr().out
    assert code == 0
    assert "| objective | seeds | dcg@5 |" in printed
    assert "| softmax | 2 | **0.1000 ± 0.0000** |" in printed  # default metrics are identical across seeds
    assert "| bce | 2 | **0.1000 ± 0.0000** |" in printed  # a tie: both bold
    assert "skipped 1" in printed and "crashed: status 'failed': boom" in printed
    assert "Paired significance vs bce on dcg@10" in printed
    assert "| softmax | 0.0" in printed
    assert output.read_text().strip() == printed.strip()


def test_main_plain_format_and_no_ranks_note(sweep: Path, capsys):
    assert compare.main([str(sweep), "--format", "plain", "--objectives", "softmax", "bce"]) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith(("softmax ", "bce "))]
    assert [row.split()[0] for row in rows] == ["softmax", "bce"]
    assert "0.2300 ± " in rows[0] and rows[0].split("0.2300 ± ")[1].split()[1] == "*"
    assert "Paired significance disabled" in printed


def test_main_fails_clearly_without_completed_runs(tmp_path: Path, capsys):
    write_run(tmp_path / "only", "bce", 0, status="interrupted")
    assert compare.main([str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert "no completed run found" in error and "'interrupted'" in error

    assert compare.main([str(tmp_path / "missing")]) == 1
    assert "not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compare.main([])


def test_main_reports_an_unknown_baseline(sweep: Path, capsys):
    users, items = sample_keys()
    write_run(
        sweep / "ranked", "logq", 0, ranks=ranks_frame(users, items, np.ones(N_SAMPLES, dtype=np.int64))
    )
    assert compare.main([str(sweep), "--baseline", "inbatch"]) == 1
    assert "baseline 'inbatch'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- wandb


class FakeRun:
    def __init__(self, run_id: str, state: str, config: dict, summary: dict, history: list[dict]):
        self.id, self.state, self.config, self.summary_metrics = run_id, state, config, summary
        self._history = history

    def scan_history(self):
        return iter(self._history)


class FakeApi:
    """Stands in for wandb.Api: `runs(path, filters)` over a fixed list; remembers the query."""

    queries: list[tuple[str, dict | None]] = []

    def runs(self, path: str, filters: dict | None = None):
        FakeApi.queries.append((path, filters))
        config = {"choices": {"loss": "softmax", "dataset": "ml-1m"}, "seed": 0, "model": {"d": 64}}
        history = [
            {"_step": 64, "epoch": 0.5, "train/loss": 3.0, "valid/dcg@20": 0.05},
            {"_step": 100, "train/loss": 2.9},  # a training-only row, not a validation
            {"_step": 128, "epoch": 1.0, "train/loss": 2.7, "valid/dcg@20": 0.07},
        ]
        return [
            FakeRun("r1", "finished", config, {f"test/{m}": 0.1 for m in METRICS} | {"_runtime": 5}, history),
            FakeRun("r2", "finished", config | {"seed": 1}, {"test": {m: 0.2 for m in METRICS}}, []),
            FakeRun("r3", "crashed", config | {"seed": 2}, {}, []),
            FakeRun("r4", "finished", {"seed": 3}, {}, []),
        ]


def test_wandb_source_with_fake_api(monkeypatch, capsys):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setattr(wandb, "Api", FakeApi)
    FakeApi.queries.clear()

    scan = compare.scan_wandb_runs("me/seqrec", group="sweep-1")

    assert FakeApi.queries == [("me/seqrec", {"group": "sweep-1"})]
    assert [(run.objective, run.seed, run.has_ranks) for run in scan.runs] == [
        ("softmax", 0, False),
        ("softmax", 1, False),
    ]
    assert scan.runs[0].location == "wandb:me/seqrec/r1" and scan.runs[0].choices["dataset"] == "ml-1m"
    assert {skipped.location.rsplit("/", 1)[1]: skipped.reason for skipped in scan.skipped} == {
        "r3": "state 'crashed'",
        "r4": "config lacks choices.loss or seed (KeyError('choices'))",
    }
    table = compare.results_table(scan.runs)
    assert table["dcg@10"][0] == pytest.approx(0.15) and table["n_seeds"][0] == 2
    history = scan.runs[0].history()
    assert history["step"].to_list() == [64, 128] and history["dcg@20"].to_list() == [0.05, 0.07]
    assert history["train_loss"].to_list() == [3.0, 2.7]

    FakeApi.queries.clear()
    assert [run.seed for run in compare.load_wandb_runs("me/seqrec", api=FakeApi())] == [0, 1]
    assert FakeApi.queries == [("me/seqrec", None)]

    assert compare.main(["--wandb", "me/seqrec", "--group", "sweep-1"]) == 0
    printed = capsys.readouterr().out
    assert "| softmax | 2 |" in printed and "Paired significance disabled" in printed
    assert "r3: state 'crashed'" in printed


def test_results_table_warns_when_runs_mix_setups(tmp_path: Path, caplog):
    write_run(tmp_path / "a", "bce", 0)
    record = json.loads((write_run(tmp_path / "b", "bce", 1) / "run.json").read_text())
    record["choices"]["dataset"] = "ml-1m"
    (tmp_path / "b" / "run.json").write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING, logger="seqrec.compare"):
        compare.results_table(compare.load_runs(tmp_path))
    assert "mix dataset = ['ml-100k', 'ml-1m']" in caplog.text


def test_unreadable_ranks_file_is_a_data_error(tmp_path: Path):
    write_run(tmp_path / "run", "bce", 0)
    (tmp_path / "run" / "test_ranks.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="not a readable ranks file"):
        compare.load_runs(tmp_path)[0].ranks()


def test_hyperparameter_variants_of_one_objective_are_separate_rows(tmp_path):
    import json

    from seqrec.compare import load_runs, results_table

    for temperature in ("0.5", "1.0"):
        run_dir = tmp_path / f"t{temperature}"
        run_dir.mkdir()
        record = {
            "status": "completed",
            "seed": 0,
            "choices": {"loss": "softmax"},
            "overrides": ["loss=softmax", f"loss.temperature={temperature}"],
            "metrics": {"test": {"dcg@10": float(temperature)}},
        }
        (run_dir / "run.json").write_text(json.dumps(record))
    table = results_table(load_runs(tmp_path), metrics=("dcg@10",))
    assert sorted(table["objective"]) == ["softmax(temperature=0.5)", "softmax(temperature=1.0)"]
