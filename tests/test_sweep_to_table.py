"""A real tiny sweep -> the comparison table, the results page and the executed notebook, from its records."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import NOTEBOOKS, SMOKE, outputs_text, run_in_process
from seqrec.compare import load_runs, main, results_table
from seqrec.report import main as report_main

LOSSES = ("bce", "logq")
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multirun")
    for loss in LOSSES:
        for seed in SEEDS:
            overrides = [*SMOKE, f"loss={loss}", f"seed={seed}"]
            run_in_process(overrides, root / f"loss={loss},seed={seed}")
    return root


def test_table_has_one_row_per_objective_with_the_recorded_means(sweep, capsys):
    runs = load_runs(sweep)
    table = results_table(runs)
    assert table["objective"].to_list() == list(LOSSES) and table["n_seeds"].to_list() == [2, 2]
    for objective in LOSSES:
        values = [r.metrics["test"]["dcg@10"] for r in runs if r.objective == objective]
        row = table.filter(table["objective"] == objective)
        assert row["dcg@10"][0] == pytest.approx(sum(values) / len(values))

    assert main([str(sweep), "--baseline", "bce", "--format", "markdown"]) == 0
    printed = capsys.readouterr().out
    assert "| logq | 2 |" in printed and "## Significance vs bce on dcg@10" in printed
    # real runs record test ranks: the seed-aware test with the test-set part, 2 seeds: no verdict yet
    assert "Method: paired by seed; interval from a Student t over seeds" in printed
    assert "- logq vs bce on dcg@10: not distinguishable with 2 seeds" in printed
    verdict = printed.split("- logq vs bce")[1].splitlines()[0]
    assert any(note in verdict for note in ("seeds would resolve", "would not resolve", "no difference"))


def test_results_page_is_generated_from_the_records(sweep, tmp_path):
    page = tmp_path / "RESULTS.md"
    assert report_main([str(sweep), "--title", "Tiny", "--output", str(page), "--baseline", "bce"]) == 0
    text = page.read_text()
    assert text.startswith("# Tiny") and "seeds [0, 1]" in text and "| bce | 2 |" in text
    assert "Data: `synthetic`, split `time`" in text
    assert "Ceiling: the synthetic generator's Bayes-optimal ranking" in text


def test_notebook_executes_on_a_real_sweep(sweep, isolated_jupyter, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("SEQREC_SWEEP_DIR", str(sweep))
    notebook = jupytext.read(NOTEBOOKS / "compare.py", fmt="py:percent")
    nbclient.NotebookClient(
        notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()
    text = outputs_text(notebook)
    table = results_table(load_runs(sweep))
    logq_dcg10 = table.filter(table["objective"] == "logq")["dcg@10"][0]
    assert "4 completed runs" in text and "| logq | 2 | " in text
    assert f"{logq_dcg10:.4f}" in text
