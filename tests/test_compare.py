"""seqrec.compare on fabricated run records with known values: loading, variants, the table, the command
line (plain, markdown, JSON), figures, and W&B as a source."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from compare_records import (
    N_SAMPLES,
    metric_values,
    ranks_frame,
    sample_keys,
    write_ranked_sweep,
    write_run,
    write_sweep_with_seed_differences,
)
from seqrec import compare

METRICS = compare.PROTOCOL_METRICS

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


def test_scan_keeps_completed_and_reports_every_other_status(tmp_path: Path, caplog):
    write_run(tmp_path / "a" / "ok", "bce", 0)
    write_run(tmp_path / "b" / "failed", "bce", 1, status="failed", error="CUDA out of memory")
    write_run(tmp_path / "c" / "interrupted", "bce", 2, status="interrupted")
    write_run(tmp_path / "d" / "running", "bce", 3, status="running")
    write_run(tmp_path / "g" / "died", "bce", 4, status="died", error="no heartbeat")  # a status added later
    (tmp_path / "e" / "corrupt").mkdir(parents=True)
    (tmp_path / "e" / "corrupt" / "run.json").write_text('{"status": "compl')
    (tmp_path / "f" / "nochoices").mkdir(parents=True)
    (tmp_path / "f" / "nochoices" / "run.json").write_text(
        '{"status": "completed", "seed": 0, "metrics": {}}'
    )

    scan = compare.scan_run_dirs(tmp_path)

    assert [run.location for run in scan.runs] == [str(tmp_path / "a" / "ok")]
    reasons = {Path(skipped.location).name: skipped.reason for skipped in scan.skipped}
    assert set(reasons) == {"failed", "interrupted", "running", "died", "corrupt", "nochoices"}
    assert "'failed'" in reasons["failed"] and "CUDA out of memory" in reasons["failed"]
    assert "'interrupted'" in reasons["interrupted"] and "'running'" in reasons["running"]
    assert reasons["died"] == "status 'died': no heartbeat"
    assert "unreadable run.json" in reasons["corrupt"]
    assert "choices.loss" in reasons["nochoices"]
    note = scan.note()
    assert "skipped 6" in note and str(tmp_path / "b" / "failed") in note

    with caplog.at_level(logging.WARNING, logger="seqrec.compare"):
        runs = compare.load_runs(tmp_path)
    assert len(runs) == 1 and runs[0].objective == "bce" and runs[0].seed == 0
    assert "skipped 6" in caplog.text


def test_run_record_fields_and_loaders(tmp_path: Path):
    ranks = ranks_frame(np.array([3, 1]), np.array([7, 8]), np.array([2, 1]))
    history = [
        {"step": 64, "epoch": 0.5, "train_loss": 3.0, "elapsed_seconds": 1.5, "valid": {"dcg@20": 0.1}},
        {"step": 128, "epoch": 1.0, "train_loss": 2.5, "elapsed_seconds": 2.5, "valid": {"dcg@20": 0.2}},
    ]
    write_run(tmp_path / "run", "logq", 4, ranks=ranks, history=history, best_step=64)
    write_run(tmp_path / "noranks", "bce", 0)

    with_ranks, without_ranks = sorted(
        compare.load_runs(tmp_path), key=lambda run: run.objective, reverse=True
    )

    assert with_ranks.dir == tmp_path / "run" and with_ranks.seed == 4
    assert with_ranks.choices["split"] == "time" and with_ranks.test_samples == 2
    assert with_ranks.metrics["test"]["dcg@10"] == pytest.approx((1 / np.log2(3) + 1) / 2)
    assert with_ranks.ranks().equals(ranks)
    assert with_ranks.history()["dcg@20"].to_list() == [0.1, 0.2]
    assert with_ranks.history()["step"].to_list() == [64, 128]
    assert with_ranks.seconds_to_best() == 1.5
    assert not without_ranks.has_ranks and without_ranks.history().height == 0
    assert without_ranks.seconds_to_best() is None
    with pytest.raises(compare.RecordError, match="test_ranks.parquet"):
        without_ranks.ranks()


def test_scan_of_missing_directory_says_so(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        compare.scan_run_dirs(tmp_path / "nowhere")


def test_unreadable_ranks_file_skips_the_run_with_the_reason(tmp_path: Path):
    write_run(tmp_path / "run", "bce", 0)
    (tmp_path / "run" / "test_ranks.parquet").write_text("not parquet")
    scan = compare.scan_run_dirs(tmp_path)
    assert not scan.runs and "not a readable ranks file" in scan.skipped[0].reason


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


# ------------------------------------------------------------------------------------------ variants


def test_two_sweep_folders_with_a_loss_option_give_variant_rows(tmp_path: Path):
    """The seminar setup: four objectives in one sweep, softmax with detach_item_table=false in another."""
    protocol, detached = tmp_path / "protocol", tmp_path / "detach"
    common = ["experiment=seminar", "dataset.path=/data/u.data", "trainer.progress=False"]
    detach = [
        "experiment=seminar",
        "loss.detach_item_table=false",
        "dataset.path=/elsewhere/u.data",
        "logger=none",
    ]
    for seed in range(2):
        for loss in ("bce", "softmax"):
            config = {"loss": {"detach_item_table": True}} if loss == "softmax" else {}
            write_run(protocol / f"{loss}-{seed}", loss, seed, overrides=common, config=config)
        write_run(
            detached / f"softmax-{seed}",
            "softmax",
            seed,
            overrides=detach,
            config={"loss": {"detach_item_table": False}},
            test=metric_values(0.3),
        )

    scan = compare.scan_run_dirs(protocol, detached)

    labels = sorted({run.objective for run in scan.runs})
    assert labels == ["bce", "softmax", "softmax[detach_item_table=false]"]
    table = compare.results_table(scan.runs, metrics=["dcg@10"])
    assert table.filter(objective="softmax[detach_item_table=false]")["dcg@10"][0] == pytest.approx(0.301)
    assert table["n_seeds"].to_list() == [2, 2, 2]


def test_variant_labels_use_resolved_values_and_ignore_bookkeeping(tmp_path: Path):
    for temperature in ("0.5", "1.0"):
        write_run(
            tmp_path / f"t{temperature}",
            "softmax",
            0,
            overrides=[f"loss.temperature={temperature}", f"trainer.progress={temperature == '0.5'}"],
            config={"loss": {"temperature": float(temperature)}},
        )
    # an explicit default is the same setup as no override: not a variant
    write_run(tmp_path / "default", "bce", 0, config={"loss": {"num_negatives": 1}})
    write_run(
        tmp_path / "explicit",
        "bce",
        1,
        overrides=["loss.num_negatives=1"],
        config={"loss": {"num_negatives": 1}},
    )
    write_run(tmp_path / "lr", "logq", 0, overrides=["trainer.lr=0.01"], config={"trainer": {"lr": 0.01}})
    write_run(tmp_path / "lr2", "logq", 1, config={"trainer": {"lr": 0.001}})

    labels = {Path(run.location).name: run.objective for run in compare.load_runs(tmp_path)}

    assert labels == {
        "t0.5": "softmax[temperature=0.5]",
        "t1.0": "softmax[temperature=1.0]",
        "default": "bce",
        "explicit": "bce",
        "lr": "logq[trainer.lr=0.01]",
        "lr2": "logq",
    }


def test_results_table_warns_when_runs_differ_in_more_than_the_objective(tmp_path: Path, caplog):
    write_run(tmp_path / "a", "bce", 0, config={"trainer": {"lr": 0.001}, "dataset": {"path": "/a"}})
    record = json.loads((write_run(tmp_path / "b", "bce", 1) / "run.json").read_text())
    record["choices"] |= {"dataset": "ml-1m", "experiment_loss@loss": "quick/bce"}  # pins chosen by the loss
    record["config"] = {"trainer": {"lr": 0.002}, "dataset": {"path": "/b"}}
    (tmp_path / "b" / "run.json").write_text(json.dumps(record))
    with pytest.raises(
        compare.MixedProtocols,
        match=r"refusing to put in one row \(bce\) runs of different protocols: choices.dataset is",
    ):
        compare.results_table(compare.load_runs(tmp_path))  # old records: the dataset choice is protocol
    record["choices"]["dataset"] = "ml-100k"
    (tmp_path / "b" / "run.json").write_text(json.dumps(record))
    with pytest.raises(compare.MixedProtocols, match="data is not recorded; dataset.path=/a in"):
        compare.results_table(compare.load_runs(tmp_path))  # old records: the data is named by its path
    record["config"]["dataset"]["path"] = "/a"
    (tmp_path / "b" / "run.json").write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING, logger="seqrec.compare"):
        compare.results_table(compare.load_runs(tmp_path))
    assert "mix trainer.lr = ['0.001', '0.002']" in caplog.text
    assert "dataset.path" not in caplog.text and "experiment_loss" not in caplog.text


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


def test_results_table_order_selection_single_seed_and_seconds_to_best(tmp_path: Path):
    history = [{"step": s, "elapsed_seconds": s / 10, "valid": {"dcg@20": 0.1}} for s in (10, 20, 30)]
    write_run(tmp_path / "x0", "softmax", 0, test=metric_values(0.3), history=history, best_step=20)
    write_run(tmp_path / "x1", "softmax", 1, test=metric_values(0.5), history=history, best_step=30)
    write_run(tmp_path / "y0", "bce", 0, test=metric_values(0.2))
    write_run(tmp_path / "z0", "logq", 0, test=metric_values(0.1))
    runs = compare.load_runs(tmp_path)

    assert compare.results_table(runs)["objective"].to_list() == ["softmax", "bce", "logq"]
    table = compare.results_table(runs, metrics=("dcg@10",), objectives=["logq", "softmax"])
    assert table.columns == ["objective", "n_seeds", "dcg@10", "dcg@10_ci", "seconds_to_best"]
    assert table["objective"].to_list() == ["logq", "softmax"]
    assert table["n_seeds"].to_list() == [1, 2]
    assert table["dcg@10_ci"][0] is None
    assert table["dcg@10"].to_list() == pytest.approx([0.101, 0.401])
    assert table["seconds_to_best"].to_list() == [None, pytest.approx(2.5)]  # mean of 2.0 and 3.0
    text = compare.format_table(table)
    assert "(n=1)" not in text and text.count("Rows with 1 seed show the mean only") == 1
    assert "| logq | 1 | <u>0.1010</u> | - |" in text and "| 2.5 |" in text
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
    with pytest.raises(compare.RecordError, match="partial.*coverage@5"):
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
            "seconds_to_best": [12.0, None, 3.25],
        }
    )


def test_format_table_markdown_bold_best_underline_second():
    lines = compare.format_table(three_objective_table()).splitlines()

    assert lines[0] == "| objective | seeds | m1 | m2 | s to best |"
    assert lines[2] == "| a | 3 | <u>0.2000 ± 0.0100</u> | **0.9000 ± 0.0300** | 12.0 |"
    assert lines[3] == "| b | 3 | 0.1000 ± 0.0200 | <u>0.8000 ± 0.0400</u> | - |"
    assert lines[4] == "| c | 1 | **0.3000** | 0.7000 | 3.2 |"
    assert "Rows with 1 seed show the mean only" in lines[-1]


def test_format_table_plain_marks_ties_and_chosen_columns():
    table = three_objective_table().with_columns(m2=pl.Series([0.9, 0.9, 0.7]))
    text = compare.format_table(table, style="plain", digits=2)
    rows = {line.split()[0]: line for line in text.splitlines()[2:5]}

    assert "0.20 ± 0.01 +" in rows["a"] and "0.90 ± 0.03 *" in rows["a"]
    assert "0.90 ± 0.04 *" in rows["b"]  # tie for best: both marked best
    assert "0.70 +" in rows["c"] and "0.30 *" in rows["c"]
    assert text.splitlines()[5] == "* best, + second best."
    only_m2 = compare.format_table(table, style="plain", metrics=["m2"])
    assert only_m2.splitlines()[0].split() == ["objective", "seeds", "m2", "s", "to", "best"]
    with pytest.raises(ValueError, match="style must be one of"):
        compare.format_table(table, style="latex")
    with pytest.raises(ValueError, match="no metrics"):
        compare.format_table(table, metrics=["m3"])


# ------------------------------------------------------------------------------------------------ CLI


def test_main_plain_report_ends_with_verdicts_runs_and_rerun_command(tmp_path: Path, capsys):
    write_sweep_with_seed_differences(tmp_path / "sweep", [0.02, 0.03, 0.025, 0.022])
    write_run(tmp_path / "sweep" / "crashed", "logq", 0, status="failed", error="boom")
    output = tmp_path / "report.txt"

    assert compare.main([str(tmp_path / "sweep"), "--baseline", "bce", "--output", str(output)]) == 0

    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0] == "Metrics on test: mean ± 95% CI over seeds (Student t, n-1 df)"
    assert lines[2].split() == [
        "objective",
        "seeds",
        "dcg@10",
        "hitrate@10",
        "coverage@10",
        "s",
        "to",
        "best",
    ]
    # a terminal's 120 columns: everything but the quotable verdicts and the paths of runs
    assert max(len(line) for line in lines if not line.startswith(("- ", "Runs:", "Rerun:"))) <= 120
    assert "- softmax beats bce on dcg@10 by +0.0243 [" in printed
    assert "skipped 1" in printed and "crashed: status 'failed': boom" in printed
    assert lines[-2] == f"Runs: {tmp_path / 'sweep'}"
    assert (
        lines[-1] == f"Rerun: python -m seqrec.compare {tmp_path / 'sweep'} --baseline bce --output {output}"
    )
    assert output.read_text().strip() == printed.strip()


def test_main_json_has_a_significance_row_per_objective(tmp_path: Path, capsys):
    write_sweep_with_seed_differences(tmp_path, [0.113, -0.081, 0.018])

    assert compare.main([str(tmp_path), "--format", "json", "--baseline", "bce"]) == 0

    report = json.loads(capsys.readouterr().out)
    (row,) = report["significance"]
    for key in ("objective", "baseline", "metric", "difference", "ci_low", "ci_high", "p_value"):
        assert row[key] is not None
    assert (row["objective"], row["baseline"], row["metric"]) == ("softmax", "bce", "dcg@10")
    assert row["n_seeds"] == 3 and row["n_samples"] == 1000 and row["method"] == "seeds+samples"
    assert row["per_seed_differences"] == pytest.approx([0.113, -0.081, 0.018])
    assert "not distinguishable" in row["verdict"]
    assert report["test"] == "seeds" and "seeds+samples" in report["methods"]
    assert [r["objective"] for r in report["table"]] == ["bce", "softmax"]
    assert set(report["table"][0]["metrics"]) == set(METRICS)  # every protocol metric in JSON
    assert report["skipped"] == [] and report["runs"] == 6


def test_main_markdown_and_chosen_metrics(sweep: Path, capsys):
    assert (
        compare.main(
            [str(sweep), "--format", "markdown", "--metrics", "dcg@20", "hitrate@5", "--baseline", "bce"]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| objective | seeds | dcg@20 | hitrate@5 | s to best |" in printed
    assert "## Significance vs bce on dcg@10" in printed
    # no ranks: the paired t on the recorded per-seed metrics, for this test set only
    assert "Method: paired t over seeds on the recorded per-seed metrics" in printed
    assert "- softmax beats bce on dcg@10 by +0.1167" in printed


def test_main_sample_only_test_is_named_as_such(tmp_path: Path, capsys):
    write_sweep_with_seed_differences(tmp_path, [0.113, -0.081, 0.018])
    assert (
        compare.main([str(tmp_path), "--test", "samples", "--n-bootstrap", "2000", "--baseline", "bce"]) == 0
    )
    printed = capsys.readouterr().out
    assert "these trained models, test-sample noise only" in printed
    assert "- these trained models: softmax dcg@10 +0.0167 [" in printed


def test_main_prints_the_ceiling_once(tmp_path: Path, capsys):
    oracle = metric_values(0.4)
    for seed in range(2):
        for loss in ("bce", "softmax"):
            write_run(tmp_path / f"{loss}{seed}", loss, seed, oracle=oracle)
    assert compare.main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("Ceiling: the synthetic generator's Bayes-optimal ranking") == 1
    assert "dcg@10 0.4010  hitrate@10 0.4040  coverage@10 0.4070" in printed


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
    assert compare.main([str(sweep), "--baseline", "inbatch"]) == 1
    assert "baseline 'inbatch'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ figures


def history_entries(offset: float) -> list[dict]:
    return [
        {
            "step": step,
            "epoch": step / 100,
            "train_loss": 1.0,
            "elapsed_seconds": step / 32,
            "valid": {"dcg@10": offset + step},
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
    assert curves.columns[:3] == ["objective", "seed", "step"] and "dcg@10" in curves.columns
    assert curves.height == 6
    assert curves.filter(objective="bce", seed=1)["dcg@10"].to_list() == [66.0, 130.0]

    ax = compare.plot_validation_curves(curves, metric="dcg@10")
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"bce", "softmax"} and lines["bce"].get_marker() == "o"
    np.testing.assert_allclose(lines["bce"].get_ydata(), [65.0, 129.0])  # mean of seeds 0 and 1
    np.testing.assert_allclose(lines["bce"].get_xdata(), [64, 128])
    assert any("band: lowest to highest seed" in text.get_text() for text in ax.texts)
    with pytest.raises(ValueError, match="no validation metric"):
        compare.plot_validation_curves(curves, metric="hitrate@5")

    ax = compare.plot_time_to_quality(curves, metric="dcg@10")
    line = next(line for line in ax.get_lines() if line.get_label() == "bce")
    np.testing.assert_allclose(line.get_xdata(), [2.0, 4.0])  # seconds at steps 64 and 128
    np.testing.assert_allclose(line.get_ydata(), [65.0, 129.0])

    table = compare.results_table(runs)
    ax = compare.plot_quality_coverage(table, k=10)
    points = [
        (line.get_xdata()[0], line.get_ydata()[0]) for line in ax.get_lines() if line.get_marker() == "o"
    ]
    np.testing.assert_allclose(points, list(zip(table["coverage@10"], table["dcg@10"], strict=True)))
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["bce", "softmax"]
    matplotlib.pyplot.close("all")


def test_quality_coverage_bars_are_clipped_to_the_valid_range(tmp_path: Path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    table = pl.DataFrame(
        {
            "objective": ["a"],
            "n_seeds": [3],
            "dcg@10": [0.02],
            "dcg@10_ci": [0.05],
            "coverage@10": [0.97],
            "coverage@10_ci": [0.1],
        }
    )
    ax = compare.plot_quality_coverage(table, k=10)
    (errorbar,) = ax.containers
    (x_segments, y_segments) = [collection.get_segments() for collection in errorbar.lines[2]]
    assert x_segments[0][:, 0].min() == pytest.approx(0.87) and x_segments[0][:, 0].max() == pytest.approx(
        1.0
    )
    assert y_segments[0][:, 1].min() == pytest.approx(0.0) and y_segments[0][:, 1].max() == pytest.approx(
        0.07
    )
    matplotlib.pyplot.close("all")


def test_main_plots_writes_png_and_pdf_into_the_sweep(tmp_path: Path, capsys):
    pytest.importorskip("matplotlib")
    for seed in range(3):
        for loss, offset in (("bce", 0.0), ("softmax", 5.0)):
            write_run(
                tmp_path / f"{loss}{seed}", loss, seed, history=history_entries(offset + seed), best_step=128
            )
    assert compare.main([str(tmp_path), "--plots"]) == 0
    printed = capsys.readouterr().out
    figures = tmp_path / "figures"
    names = {"quality-coverage", "validation-dcg@10", "time-to-dcg@10"}
    assert {path.name for path in figures.iterdir()} == {f"{n}.{s}" for n in names for s in ("png", "pdf")}
    assert f"Figures: {figures / 'quality-coverage.png'}" in printed
    assert (figures / "quality-coverage.png").read_bytes()[:4] == b"\x89PNG"


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
        bce = config | {"choices": {"loss": "bce", "dataset": "ml-1m"}}
        return [
            FakeRun("r1", "finished", config, {f"test/{m}": 0.1 for m in METRICS} | {"_runtime": 5}, history),
            FakeRun("r2", "finished", config | {"seed": 1}, {"test": {m: 0.2 for m in METRICS}}, []),
            FakeRun("r3", "crashed", config | {"seed": 2}, {}, []),
            FakeRun("r4", "finished", {"seed": 3}, {}, []),
            FakeRun("r5", "finished", bce, {f"test/{m}": 0.05 for m in METRICS}, []),
            FakeRun("r6", "finished", bce | {"seed": 1}, {f"test/{m}": 0.09 for m in METRICS}, []),
        ]


def test_wandb_source_with_fake_api(monkeypatch, capsys):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setattr(wandb, "Api", FakeApi)
    monkeypatch.setenv("WANDB_API_KEY", "a-fake-key-for-the-fake-api")
    FakeApi.queries.clear()

    scan = compare.scan_wandb_runs("me/seqrec", group="sweep-1")

    assert FakeApi.queries == [("me/seqrec", {"group": "sweep-1"})]
    assert [(run.objective, run.seed, run.has_ranks) for run in scan.runs][:2] == [
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
    assert [run.seed for run in compare.load_wandb_runs("me/seqrec", api=FakeApi())] == [0, 1, 0, 1]
    assert FakeApi.queries == [("me/seqrec", None)]

    assert compare.main(["--wandb", "me/seqrec", "--group", "sweep-1", "--baseline", "bce"]) == 0
    printed = capsys.readouterr().out
    assert [line.split()[:2] for line in printed.splitlines()[4:6]] == [["softmax", "2"], ["bce", "2"]]
    assert "r3: state 'crashed'" in printed
    # no ranks in W&B: the seed-aware test on the recorded metrics (2 seeds: no verdict)
    no_verdict = "not distinguishable with 2 seeds (too few to judge training randomness; +0.0800 ["
    assert f"- softmax vs bce on dcg@10: {no_verdict}" in printed


@pytest.mark.parametrize("mode", [None, "offline", "online"])
def test_wandb_without_credentials_fails_in_one_line_without_prompting(tmp_path, monkeypatch, capsys, mode):
    wandb = pytest.importorskip("wandb")

    def no_api(*args, **kwargs):
        raise AssertionError("wandb.Api must not be reached without credentials")

    monkeypatch.setattr(wandb, "Api", no_api)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    if mode:
        monkeypatch.setenv("WANDB_MODE", mode)

    assert compare.main(["--wandb", "me/seqrec"]) == 1

    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: --wandb needs W&B credentials")
    assert "wandb login" in error and "WANDB_API_KEY" in error


def test_wandb_connection_errors_are_one_line(monkeypatch, capsys):
    wandb = pytest.importorskip("wandb")

    class Unreachable:
        def runs(self, path, filters=None):
            raise ConnectionError("Max retries exceeded with url: /graphql")

    monkeypatch.setenv("WANDB_API_KEY", "a-key")
    monkeypatch.setattr(wandb, "Api", Unreachable)
    assert compare.main(["--wandb", "me/seqrec"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "could not list the runs of W&B project 'me/seqrec'" in error


def test_samples_of_one_seed_pairs_are_counted(tmp_path: Path):
    """One shared seed: a difference but no interval and no verdict (training randomness unknown)."""
    users, items = sample_keys()
    rng = np.random.default_rng(9)
    write_ranked_sweep(
        tmp_path, {"bce": [rng.integers(1, 30, N_SAMPLES)], "logq": [rng.integers(1, 30, N_SAMPLES)]}
    )
    row = compare.paired_significance(compare.load_runs(tmp_path), "bce").row(0, named=True)
    assert row["n_seeds"] == 1 and row["ci_low"] is None and row["p_value"] is None
    assert row["verdict"].endswith("seed variance unknown from 1 seed: run at least 3")
    assert users.size == row["n_samples"] and items.size == N_SAMPLES


def test_importing_seqrec_compare_loads_neither_torch_nor_hydra():
    """Reading run records needs no deep-learning stack: `python -m seqrec.compare` starts fast anywhere."""
    import subprocess
    import sys

    code = (
        "import sys, seqrec.compare; print([m for m in ('torch', 'hydra', 'omegaconf') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
