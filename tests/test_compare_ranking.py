"""`--baseline best` (the default) and `--pairs all` on a fabricated sweep with a known tie for first:
softmax and logq differ by a few samples per seed, bce misses 120 of softmax's hits in every seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from compare_records import write_ranked_sweep
from seqrec import compare
from seqrec.compare.ranking import all_pairs, best_objective, first_place, tied_for_first

N = 1000
LOGQ_CHANGE = [+3, -2, +2]  # logq's hits minus softmax's, per seed: a tie
BCE_CHANGE = [-120, -130, -110]  # bce clearly below both


def _sweep(root: Path) -> None:
    rng = np.random.default_rng(3)
    sets = {"bce": [], "logq": [], "softmax": []}
    for seed in range(3):
        softmax = np.full(N, 50)
        softmax[rng.choice(N, size=300 + 10 * seed, replace=False)] = 1
        sets["softmax"].append(softmax)
        for name, change in (("logq", LOGQ_CHANGE[seed]), ("bce", BCE_CHANGE[seed])):
            ranks = softmax.copy()
            pool = np.flatnonzero(softmax == (50 if change > 0 else 1))
            ranks[rng.choice(pool, size=abs(change), replace=False)] = 1 if change > 0 else 50
            sets[name].append(ranks)
    write_ranked_sweep(root, sets)  # bce is the first row of the table


@pytest.fixture
def tie_sweep(tmp_path: Path) -> Path:
    _sweep(tmp_path / "sweep")
    return tmp_path / "sweep"


def test_best_is_the_highest_mean_and_the_default_baseline(tie_sweep: Path):
    scan = compare.scan_run_dirs(tie_sweep)
    objectives = ["bce", "logq", "softmax"]
    # logq's mean is above softmax's by (3 - 2 + 2) / 3 hits: the best mean, by a hair
    assert best_objective(scan.runs, "dcg@10", objectives) == "logq"
    comparison = compare.compare(scan, [str(tie_sweep)])
    assert comparison.baseline == "logq"
    rows = {row["objective"]: row for row in comparison.significance.to_dicts()}
    assert set(rows) == {"bce", "softmax"} and all(row["baseline"] == "logq" for row in rows.values())
    # Holm over the 2 comparisons with the best
    p_values = [rows[name]["p_value"] for name in ("bce", "softmax")]
    assert [rows[name]["p_holm"] for name in ("bce", "softmax")] == pytest.approx(compare.holm(p_values))
    assert rows["bce"]["verdict"].startswith("bce is worse than logq on dcg@10 by -0.")
    assert "softmax vs logq on dcg@10: not distinguishable" in rows["softmax"]["verdict"]
    assert tied_for_first(comparison.significance, "logq") == ["logq", "softmax"]
    assert comparison.first_place.startswith(
        "Statistically tied for first on dcg@10: logq (best mean), softmax (not distinguishable from logq, "
        "Holm p = "
    )


def test_an_explicit_baseline_still_works_and_names_no_first_place(tie_sweep: Path):
    comparison = compare.compare(compare.scan_run_dirs(tie_sweep), [str(tie_sweep)], baseline="bce")
    assert comparison.baseline == "bce" and comparison.first_place is None
    assert set(comparison.significance["objective"]) == {"logq", "softmax"}


def test_all_pairs_are_holm_adjusted_over_every_pair(tie_sweep: Path):
    scan = compare.scan_run_dirs(tie_sweep)
    pairs = all_pairs(scan.runs, "dcg@10", ["bce", "logq", "softmax"])
    assert [(row["objective"], row["baseline"]) for row in pairs.to_dicts()] == [
        ("logq", "softmax"),
        ("logq", "bce"),
        ("softmax", "bce"),
    ]
    assert pairs["p_holm"].to_list() == pytest.approx(compare.holm(pairs["p_value"].to_list()))
    one_pair = compare.paired_significance(scan.runs, "bce", "dcg@10", objectives=["softmax"])
    assert pairs["p_value"][2] == pytest.approx(one_pair["p_value"][0])  # same test, other family
    verdicts = pairs["verdict"].to_list()
    assert verdicts[1].startswith("logq beats bce on dcg@10") and verdicts[2].startswith("softmax beats bce")
    assert "not distinguishable" in verdicts[0]
    assert tied_for_first(pairs, "logq") == ["logq", "softmax"]


def test_a_clear_winner_is_first_alone(tmp_path: Path):
    rng = np.random.default_rng(0)
    sets = {"bce": [], "softmax": []}
    for seed in range(3):
        bce = np.full(N, 50)
        bce[rng.choice(N, size=300, replace=False)] = 1
        softmax = bce.copy()
        softmax[rng.choice(np.flatnonzero(bce == 50), size=100 + seed, replace=False)] = 1
        sets["bce"].append(bce)
        sets["softmax"].append(softmax)
    write_ranked_sweep(tmp_path, sets)
    comparison = compare.compare(compare.scan_run_dirs(tmp_path), [str(tmp_path)])
    assert comparison.baseline == "softmax"
    assert comparison.first_place.startswith("First on dcg@10: softmax, ahead of every other objective")
    assert first_place(comparison.significance.head(0), "softmax", "dcg@10").endswith(
        "nothing to compare it with)."
    )


def test_two_seeds_cannot_tell_who_is_first(tmp_path: Path):
    sets = {"bce": [np.full(300, 5), np.full(300, 6)], "softmax": [np.full(300, 1), np.full(300, 2)]}
    write_ranked_sweep(tmp_path, sets)
    comparison = compare.compare(compare.scan_run_dirs(tmp_path), [str(tmp_path)])
    assert comparison.first_place == (
        "Best mean on dcg@10: softmax; which objective is first cannot be told with 2 seeds "
        "(a verdict needs 3)."
    )


def test_command_line_pairs_all_prints_every_pair_and_the_tie(tie_sweep: Path, capsys):
    assert compare.main([str(tie_sweep), "--pairs", "all"]) == 0
    printed = capsys.readouterr().out
    assert "Significance of every pair on dcg@10 (p-values Holm-adjusted over 3 pairs" in printed
    assert "Statistically tied for first on dcg@10: logq (best mean), softmax" in printed
    assert compare.main([str(tie_sweep), "--pairs", "all", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == "all" and len(report["significance"]) == 3
    assert report["first_place"].startswith("Statistically tied for first")


def test_pair_rows_name_their_own_baseline(tie_sweep: Path):
    pairs = all_pairs(compare.scan_run_dirs(tie_sweep).runs, "dcg@10", ["bce", "logq", "softmax"])
    plain = compare.format_significance(pairs, style="plain").splitlines()
    assert plain[0].split()[:3] == ["objective", "vs", "difference"]
    assert plain[2].split()[:2] == ["logq", "softmax"] and plain[3].split()[:2] == ["logq", "bce"]
    assert "| objective | vs | dcg@10 | baseline's | difference |" in compare.format_significance(pairs)
