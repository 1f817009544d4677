"""Cost that does not depend on scheduling: the cost table and its notes on fabricated records, and the
process clock of a training run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from compare_records import write_run
from seqrec import compare
from seqrec.compare.cost import cost_table, format_cost, load_notes
from seqrec.cost import TrainingClock, cost_timings


def _with_timings(run_dir: Path, **timings) -> None:
    record = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps(record | {"timings": timings}))


def _sweep(root: Path, logq_speeds: list[float]) -> None:
    """bce at a steady 11,700-12,000 events/s; logq at the given speeds (one per seed)."""
    for seed in range(3):
        for objective, speed in (("bce", 11_700 + 150 * seed), ("logq", logq_speeds[seed])):
            run_dir = write_run(root / f"{objective}{seed}", objective, seed, best_step=40 + 10 * seed)
            _with_timings(
                run_dir,
                train_seconds=100.0,
                eval_seconds=45.0,
                train_events_per_second=speed,
                train_cpu_us_per_event=80.0 + seed,
                train_events_to_best=4000 * (seed + 1),
                eval_share=0.31,
            )


def test_a_run_alone_at_the_end_is_flagged_as_different_load(tmp_path: Path):
    _sweep(tmp_path, [11_736, 11_800, 21_978])  # the sweep: one logq run ran alone
    runs = compare.scan_run_dirs(tmp_path).runs
    table = cost_table(runs, ["bce", "logq"])
    logq = table.row(1, named=True)
    assert logq["events_per_second_min"] == 11_736 and logq["events_per_second_max"] == 21_978
    assert logq["steps_to_best"] == pytest.approx(50) and logq["events_to_best"] == pytest.approx(8000)
    assert logq["cpu_us_per_event"] == pytest.approx(81.0) and logq["eval_share"] == pytest.approx(0.31)
    notes = load_notes(table)
    assert notes[0] == (  # bce's 3% spread is no note
        "note: runs of one objective ran under different load, training events/s: logq 11,736 to 21,978 "
        "(+87%); compare cost by steps, events and CPU time per event, not by wall-clock seconds (s to best)."
    )
    assert notes[1].startswith("note: evaluation took 31%-31% of each run's training + evaluation wall time")
    text = format_cost(table)
    assert "steps to best" in text and "11,736-21,978" in text and "CUDA" not in text


def test_steady_runs_with_cheap_evaluation_get_no_note(tmp_path: Path):
    _sweep(tmp_path, [12_000, 13_000, 14_000])  # 17% apart: same load
    for run_json in tmp_path.rglob("run.json"):
        record = json.loads(run_json.read_text())
        record["timings"]["eval_share"] = 0.05
        run_json.write_text(json.dumps(record))
    assert load_notes(cost_table(compare.scan_run_dirs(tmp_path).runs, ["bce", "logq"])) == []


def test_old_records_fall_back_to_history_and_wall_times(tmp_path: Path):
    history = [{"step": 10, "train_events": 640, "valid": {"dcg@10": 0.1}}]
    run_dir = write_run(tmp_path / "a", "bce", 0, best_step=10, history=history)
    _with_timings(run_dir, train_seconds=30.0, eval_seconds=10.0, train_events_per_second=900.0)
    row = cost_table(compare.scan_run_dirs(tmp_path).runs, ["bce"]).row(0, named=True)
    assert row["events_to_best"] == 640 and row["eval_share"] == pytest.approx(0.25)
    assert row["cpu_us_per_event"] is None


def test_the_report_has_a_cost_section(tmp_path: Path, capsys):
    _sweep(tmp_path, [11_736, 11_800, 21_978])
    assert compare.main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert compare.main([str(tmp_path), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    per_run = {(row["objective"], row["seed"]): row for row in report["cost_per_run"]}
    assert per_run[("logq", 2)]["events_per_second"] == 21_978 and per_run[("bce", 0)]["eval_seconds"] == 45.0
    assert "\nCost\n" in printed and "ran under different load, training events/s: logq 11,736" in printed


def test_training_clock_counts_process_time_and_leaves_pauses_out():
    clock = TrainingClock(torch.device("cpu"))
    started = time.perf_counter()
    clock.start()
    busy_until = time.process_time() + 0.05
    while time.process_time() < busy_until:
        pass
    clock.stop()
    time.sleep(0.05)  # a pause (evaluation) after stop does not count
    clock.start()
    clock.stop()
    assert clock.wall_seconds <= time.perf_counter() - started - 0.05
    assert 0.05 <= clock.cpu_seconds < 0.09 and clock.cuda_seconds is None
    timings = cost_timings(
        clock, 1000, eval_seconds=clock.wall_seconds, steps_to_best=5, train_events_to_best=600
    )
    assert timings["train_cpu_us_per_event"] == pytest.approx(1e6 * clock.cpu_seconds / 1000, abs=1e-3)
    assert timings["eval_share"] == pytest.approx(0.5, abs=1e-3) and timings["steps_to_best"] == 5
