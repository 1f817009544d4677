"""The comparison notebook runs headless on fabricated run records and its paired .ipynb is in sync."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from helpers import NOTEBOOKS, outputs_text

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

METRICS = ("dcg@5", "dcg@10", "dcg@20", "hitrate@5", "hitrate@10", "hitrate@20")
COVERAGE = ("coverage@5", "coverage@10", "coverage@20")


def write_run(run_dir: Path, objective: str, seed: int, ranks: np.ndarray) -> None:
    """A run whose recorded test metrics are those of its ranks (1: a hit, 50: a miss at every k <= 20)."""
    run_dir.mkdir(parents=True)
    quality = float((ranks == 1).mean())  # dcg@k = hitrate@k = the share of hits
    test = {metric: quality for metric in METRICS} | {metric: 0.5 for metric in COVERAGE}
    record = {"status": "completed", "seed": seed, "choices": {"loss": objective}, "metrics": {"test": test}}
    (run_dir / "run.json").write_text(json.dumps(record))
    history = [
        {"step": step, "elapsed_seconds": step / 10, "valid": {m: quality * step / 128 for m in METRICS}}
        for step in (64, 128)
    ]
    (run_dir / "history.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in history))
    pl.DataFrame(
        {"user": np.arange(ranks.size), "item": np.arange(ranks.size) + 100, "rank": ranks},
        schema={"user": pl.Int64, "item": pl.Int64, "rank": pl.Int64},
    ).write_parquet(run_dir / "test_ranks.parquet")


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """bce (quality 0.10, 0.12, 0.14) and softmax (0.30, 0.32, 0.34) on 200 samples: softmax hits the
    samples bce hits and 40 more."""
    root = tmp_path / "multirun" / "2025-01-01" / "12-00-00"
    rng = np.random.default_rng(0)
    for seed in range(3):
        order = rng.permutation(200)
        bce, softmax = np.full(200, 50), np.full(200, 50)
        bce[order[: 20 + 4 * seed]] = 1
        softmax[order[: 60 + 4 * seed]] = 1
        write_run(root / f"loss=bce,seed={seed}", "bce", seed, bce)
        write_run(root / f"loss=softmax,seed={seed}", "softmax", seed, softmax)
    (root / "loss=logq,seed=0").mkdir()
    (root / "loss=logq,seed=0" / "run.json").write_text('{"status": "failed", "error": "boom"}')
    return root


def execute(notebook, monkeypatch, sweep_dirs: str, parameters: dict[str, str] | None = None):
    """Run the notebook headless on `sweep_dirs` (SEQREC_SWEEP_DIR), with the parameters cell's
    assignments replaced by `parameters` (name -> Python source), as papermill would."""
    monkeypatch.setenv("SEQREC_SWEEP_DIR", sweep_dirs)
    (cell,) = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    for name, value in (parameters or {}).items():
        lines = cell.source.splitlines()
        assert any(line.startswith(f"{name} = ") for line in lines), name
        cell.source = "\n".join(
            f"{name} = {value}" if line.startswith(f"{name} = ") else line for line in lines
        )
    client = nbclient.NotebookClient(
        notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]
    assert errors == []
    return outputs_text(notebook)


def figures(notebook) -> int:
    return sum(
        "image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", [])
    )


def test_notebook_executes_on_fabricated_sweep(sweep: Path, isolated_jupyter: Path, monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager

    assert Path(KernelSpecManager().get_kernel_spec("python3").resource_dir) == isolated_jupyter
    notebook = jupytext.read(NOTEBOOKS / "compare.py", fmt="py:percent")

    text = execute(notebook, monkeypatch, str(sweep))

    assert f"Source: {sweep}" in text
    assert "6 completed runs; skipped 1" in text and "status 'failed': boom" in text
    # bce dcg@10 mean 0.12, softmax 0.32 (bold, best); CI = t(0.975, 2) * 0.02 / sqrt(3) = 0.0497
    assert "| objective | seeds | dcg@10 | hitrate@10 | coverage@10 | s to best |" in text
    assert "| bce | 3 | <u>0.1200 ± 0.0497</u> |" in text
    assert "| softmax | 3 | **0.3200 ± 0.0497** |" in text
    # no BASELINE: the best mean (softmax) against every other, and who is first
    assert "**Significance vs softmax on dcg@10**" in text and "| bce | 0." in text
    assert "- bce is worse than softmax on dcg@10 by -0." in text
    assert "First on dcg@10: softmax, ahead of every other objective" in text
    # these records predate the segment columns and the timings: one line, and a cost table of dashes
    assert "segments need a re-run with this seqrec" in text
    assert "| objective | seeds | steps to best | events to best | CPU µs/event |" in text
    assert figures(notebook) == 3  # validation curves, time to quality, quality vs coverage


def test_notebook_parameters_drive_every_cell(
    sweep: Path, tmp_path: Path, isolated_jupyter: Path, monkeypatch
):
    notebook = jupytext.read(NOTEBOOKS / "compare.py", fmt="py:percent")
    parameters = {
        "METRIC": '"hitrate@20"',
        "K": "5",
        "BASELINE": '"softmax"',
        "PAIRS": '"all"',
        "FIGURES_DIR": repr(str(tmp_path)),
    }

    text = execute(notebook, monkeypatch, str(sweep), parameters)

    assert "| objective | seeds | dcg@5 | hitrate@5 | coverage@5 | hitrate@20 | s to best |" in text
    assert "**Significance of every pair on hitrate@20 (p-values Holm-adjusted over 1 pairs" in text
    assert "- softmax beats bce on hitrate@20" in text
    names = {path.name for path in tmp_path.iterdir()}
    assert {"quality-coverage.png", "validation-hitrate@20.pdf", "time-to-hitrate@20.png"} <= names


def test_paired_ipynb_matches_the_percent_source_and_has_no_outputs():
    source = jupytext.read(NOTEBOOKS / "compare.py", fmt="py:percent")
    paired = jupytext.read(NOTEBOOKS / "compare.ipynb")

    assert paired.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert [(cell.cell_type, cell.source) for cell in paired.cells] == [
        (cell.cell_type, cell.source) for cell in source.cells
    ], "notebooks/compare.ipynb is stale: run `jupytext --sync notebooks/compare.py`"
    assert all(
        not cell.get("outputs") and cell.get("execution_count") is None
        for cell in paired.cells
        if cell.cell_type == "code"
    )


def test_notebook_labels_runs_of_other_protocols_when_allowed(
    sweep: Path, tmp_path: Path, isolated_jupyter: Path, monkeypatch
):
    other = tmp_path / "sampled"
    for run_json in sweep.glob("*/run.json"):  # the same runs, recorded as a sampled evaluation
        record = json.loads(run_json.read_text())
        (other / run_json.parent.name).mkdir(parents=True)
        for name in ("history.jsonl", "test_ranks.parquet"):
            if (run_json.parent / name).exists():
                (other / run_json.parent.name / name).write_bytes((run_json.parent / name).read_bytes())
        record["config"] = {
            "evaluation": {"_target_": "seqrec.evaluation.SampledCandidates", "num_negatives": 9}
        }
        (other / run_json.parent.name / "run.json").write_text(json.dumps(record))
    notebook = jupytext.read(NOTEBOOKS / "compare.py", fmt="py:percent")

    # BASELINE "bce": the first group's bce (by default the best mean, which may lie in either group)
    text = execute(notebook, monkeypatch, f"{sweep}:{other}", {"ALLOW_MIXED": "True", "BASELINE": '"bce"'})

    assert (
        "| bce @ evaluation=SampledCandidates | 3 |" in text
        and "| softmax @ evaluation=(unset) | 3 |" in text
    )
    assert "No significance row or verdict for bce @ " in text
    assert "**Significance vs bce @ " in text
