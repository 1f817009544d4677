"""A comparison never compares the incomparable (issue 17): runs of other protocols, data or test sets are
refused or labelled, ranks must match their run, runs without ranks are named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from compare_records import metrics_of_ranks, ranks_frame, write_run
from seqrec import compare
from seqrec.fingerprints import run_fingerprints

FULL = {"_target_": "seqrec.evaluation.FullCatalog", "ks": [5, 10, 20], "exclude_seen": False}
SAMPLED = {
    "_target_": "seqrec.evaluation.SampledCandidates",
    "ks": [5, 10, 20],
    "num_negatives": 50,
    "seed": 0,
}


def config(evaluation: dict = FULL, **dataset) -> dict:
    return {
        "dataset": {"_target_": "seqrec.data.sources.InteractionFile", "path": "/data/log.csv", **dataset},
        "split": {"_target_": "seqrec.data.splits.TimeSplit", "valid_quantile": 0.8, "test_quantile": 0.9},
        "preprocess": {"user_core": 5, "item_core": 5},
        "evaluation": evaluation,
        "model": {"max_seq_len": 50, "embedding_dim": 64},
        "trainer": {"epochs": 10, "lr": 0.001, "progress": False},
    }


def keys(n_users: int) -> tuple[np.ndarray, np.ndarray]:
    users = np.arange(n_users)
    return users, users % 37 + 1


def write_sweep(
    root: Path,
    losses: dict[str, float],
    *,
    run_config: dict | None = None,
    data: str = "InteractionFile size=100 mtime_ns=1",
    n_users: int = 300,
    seeds: int = 3,
    oracle: dict | None = None,
    id_type: type = int,
) -> None:
    """Runs of each loss with a hit rate near losses[loss] (ranks 1 or 40), with recorded fingerprints."""
    run_config = run_config or config()
    users, items = keys(n_users)
    rng = np.random.default_rng(len(str(root)))
    for loss, quality in losses.items():
        for seed in range(seeds):
            ranks = np.where(rng.random(n_users) < quality + 0.01 * seed, 1, 40)
            frame = ranks_frame(users, items, ranks)
            if id_type is str:
                frame = frame.with_columns(pl.col("user", "item").cast(pl.String))
            write_run(
                root / f"loss={loss},seed={seed}",
                loss,
                seed,
                ranks=frame,
                config=run_config,
                oracle=oracle,
                fingerprints=run_fingerprints(run_config, data, frame["user"], frame["item"]),
            )


def run_main(capsys, *args) -> tuple[int, str, str]:
    code = compare.main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------------- case 1: other protocols


def test_runs_of_different_evaluation_protocols_are_refused_in_one_line(tmp_path: Path, capsys):
    write_sweep(tmp_path / "SA", {"bce": 0.2, "softmax": 0.25})
    write_sweep(tmp_path / "SB", {"bce": 0.5, "softmax": 0.6}, run_config=config(SAMPLED))
    picked = [*sorted((tmp_path / "SA").glob("loss=bce*")), *sorted((tmp_path / "SB").glob("loss=softmax*"))]

    code, out, err = run_main(capsys, *picked, "--format", "json")

    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: refusing to compare runs of different protocols")
    assert "evaluation is FullCatalog in " in err and " but SampledCandidates in " in err
    assert (
        f"FullCatalog in 3 runs in {tmp_path / 'SA'} but SampledCandidates in 3 runs in {tmp_path / 'SB'}"
        in err
    )
    assert "--allow-mixed" in err


@pytest.mark.parametrize("style", ["plain", "markdown", "json"])
def test_allow_mixed_labels_every_row_and_draws_no_verdict_across(tmp_path: Path, capsys, style):
    write_sweep(tmp_path / "SA", {"bce": 0.2, "softmax": 0.25})
    write_sweep(tmp_path / "SB", {"bce": 0.5, "softmax": 0.6}, run_config=config(SAMPLED))
    output = tmp_path / "report.txt"

    code, out, _ = run_main(
        capsys,
        tmp_path / "SA",
        tmp_path / "SB",
        "--allow-mixed",
        "--format",
        style,
        "--output",
        output,
        "--baseline",
        "bce",  # the first group's bce: the best mean is in the other group
    )

    assert code == 0 and output.read_text() == out
    full, sampled = "evaluation=FullCatalog", "evaluation=SampledCandidates"
    if style == "json":
        report = json.loads(out)
        assert [row["objective"] for row in report["table"]] == [
            f"bce @ {full}",
            f"softmax @ {full}",
            f"bce @ {sampled}",
            f"softmax @ {sampled}",
        ]
        assert [row["protocol"] for row in report["table"]] == [full, full, sampled, sampled]
        assert report["mixed"] and [group["label"] for group in report["protocols"]] == [full, sampled]
        rows = report["significance"]
        assert [(row["objective"], row["baseline"]) for row in rows] == [
            (f"softmax @ {full}", f"bce @ {full}")
        ]
        assert any("No significance row or verdict for bce @ " + sampled in note for note in report["notes"])
    else:
        for label in (f"bce @ {full}", f"softmax @ {sampled}"):
            assert label in out
        best = "**" if style == "markdown" else " *"
        rows = [line for line in out.splitlines() if line.lstrip("| ").startswith(("bce @", "softmax @"))]
        assert any(best in row for row in rows if full in row) and any(
            best in row for row in rows if sampled in row
        )
        assert "Marked within each protocol and test set only." in out
        verdicts = [line for line in out.splitlines() if line.startswith("- softmax")]
        assert verdicts and all(sampled not in line for line in verdicts)
        assert "Mixed protocols or test sets (2 groups, --allow-mixed)" in out


# --------------------------------------------------------------------------- case 2: other data


def test_runs_of_one_loss_on_different_data_are_not_pooled_as_seeds(tmp_path: Path, capsys):
    write_sweep(tmp_path / "A", {"bce": 0.2}, data="InteractionFile size=100 mtime_ns=1", seeds=2)
    write_sweep(
        tmp_path / "B", {"bce": 0.3}, data="InteractionFile size=222 mtime_ns=9", seeds=1, n_users=200
    )
    shutil.move(tmp_path / "B" / "loss=bce,seed=0", tmp_path / "B" / "loss=bce,seed=2")
    record = json.loads((tmp_path / "B" / "loss=bce,seed=2" / "run.json").read_text())
    (tmp_path / "B" / "loss=bce,seed=2" / "run.json").write_text(json.dumps(record | {"seed": 2}))

    code, _, err = run_main(capsys, tmp_path)
    assert code == 1 and "data is InteractionFile size=100 mtime_ns=1 in " in err

    code, out, _ = run_main(capsys, tmp_path, "--allow-mixed", "--format", "json")
    table = json.loads(out)["table"]
    assert code == 0 and [row["n_seeds"] for row in table] == [2, 1]
    assert all(row["objective"].startswith("bce @ data=#") for row in table)


def test_old_records_on_different_data_paths_are_not_pooled(tmp_path: Path):
    """Records without fingerprints: the protocol comes from the config, the data from its path."""
    for seed, path in enumerate(["/data/a.csv", "/data/a.csv", "/data/b.csv"]):
        write_run(tmp_path / f"bce-{seed}", "bce", seed, config={"dataset": {"path": path}})
    scan = compare.scan_run_dirs(tmp_path)
    with pytest.raises(compare.MixedProtocols, match=r"data is not recorded; dataset.path=/data/a.csv in"):
        compare.compare(scan, [str(tmp_path)])
    table = compare.compare(scan, [str(tmp_path)], allow_mixed=True).table
    assert table["n_seeds"].to_list() == [2, 1]


# ------------------------------------------------------------------------ case 3: other test sets


def test_no_coverage_verdict_across_different_test_sets(tmp_path: Path, capsys):
    write_sweep(tmp_path / "A", {"bce": 0.2}, n_users=300, data="synthetic num_users=300")
    write_sweep(tmp_path / "B", {"softmax": 0.3}, n_users=400, data="synthetic num_users=400")

    code, _, err = run_main(capsys, tmp_path, "--metric", "coverage@10")
    assert code == 1 and "data is synthetic num_users=300 in 3 runs in " in err

    code, out, _ = run_main(capsys, tmp_path, "--metric", "coverage@10", "--allow-mixed", "--format", "json")
    report = json.loads(out)
    assert code == 0 and report["significance"] == [] and "No significance row" in report["notes"][0]


def test_same_settings_but_other_test_samples_are_refused(tmp_path: Path):
    """Old records (no fingerprints) whose ranks hold other samples: the test sets come from the ranks."""
    users, items = keys(300)
    for seed in range(2):
        for loss, offset in (("bce", 0), ("softmax", 1000)):
            ranks = ranks_frame(users, items + offset, np.full(300, 3))
            write_run(tmp_path / f"{loss}-{seed}", loss, seed, ranks=ranks)
    with pytest.raises(compare.MixedProtocols, match="runs of different test sets: test set is "):
        compare.compare(compare.scan_run_dirs(tmp_path), [str(tmp_path)], metric="coverage@10")


# --------------------------------------------------------------------------------- case 4: ceiling


def test_the_ceiling_is_per_protocol_and_test_set(tmp_path: Path, capsys):
    write_sweep(tmp_path / "SA", {"bce": 0.2, "softmax": 0.25}, oracle=metrics_of_ranks(np.ones(3)) | {})
    sampled_oracle = {name: 0.9 for name in metrics_of_ranks(np.ones(3))}
    write_sweep(tmp_path / "SB", {"bce": 0.5}, run_config=config(SAMPLED), oracle=sampled_oracle)

    code, out, _ = run_main(capsys, tmp_path, "--allow-mixed", "--format", "json")
    report = json.loads(out)
    assert code == 0 and report["ceiling"] is None
    ceilings = {entry["protocol"]: entry["metrics"]["dcg@10"] for entry in report["ceilings"]}
    assert ceilings == {"evaluation=FullCatalog": 1.0, "evaluation=SampledCandidates": 0.9}

    code, out, _ = run_main(capsys, tmp_path, "--allow-mixed")
    assert "Ceiling for bce @ evaluation=FullCatalog, softmax @ evaluation=FullCatalog only" in out
    assert "Ceiling for bce @ evaluation=SampledCandidates only" in out
    assert "no objective can beat it" not in out  # no ceiling is claimed over runs evaluated otherwise
    assert compare.ceiling(compare.scan_run_dirs(tmp_path).runs) is None


# ------------------------------------------------------------------------------ case 5: ranks lie


def test_a_ranks_file_of_another_run_is_skipped_with_the_reason(tmp_path: Path, capsys):
    write_sweep(tmp_path, {"bce": 0.2, "softmax": 0.4})
    shutil.copy(tmp_path / "loss=softmax,seed=0" / "test_ranks.parquet", tmp_path / "loss=bce,seed=0")

    code, out, _ = run_main(capsys, tmp_path, "--format", "json")

    report = json.loads(out)
    assert code == 0 and [row["n_seeds"] for row in report["table"]] == [2, 3]
    (skipped,) = report["skipped"]
    assert skipped["location"].endswith("loss=bce,seed=0")
    assert "does not reproduce the recorded test metrics (dcg@5 is " in skipped["reason"]


def test_ranks_of_other_test_samples_are_skipped_even_when_the_metrics_agree(tmp_path: Path):
    write_sweep(tmp_path, {"bce": 0.2}, seeds=2)
    path = tmp_path / "loss=bce,seed=1" / "test_ranks.parquet"
    ranks = pl.read_parquet(path).with_columns(pl.col("item") + 1000)
    ranks.write_parquet(path)
    scan = compare.scan_run_dirs(tmp_path)
    assert len(scan.runs) == 1 and "holds other test samples than the run recorded" in scan.skipped[0].reason


# ----------------------------------------------------------------------- case 6: runs without ranks


def test_a_run_without_ranks_is_named_where_it_changes_the_method(tmp_path: Path, capsys):
    write_sweep(tmp_path, {"bce": 0.2, "softmax": 0.4})
    (tmp_path / "loss=softmax,seed=2" / "test_ranks.parquet").unlink()

    code, out, _ = run_main(capsys, tmp_path, "--format", "json", "--baseline", "bce")
    (row,) = json.loads(out)["significance"]
    assert code == 0 and row["method"] == "seeds"
    assert "seeds-only test" in row["note"] and "loss=softmax,seed=2" in row["note"]

    code, out, _ = run_main(capsys, tmp_path, "--baseline", "bce")
    assert "Runs without test ranks:\n- softmax: seeds-only test" in out and "loss=softmax,seed=2" in out


def test_with_the_sample_test_a_dropped_seed_is_stated(tmp_path: Path, capsys):
    write_sweep(tmp_path, {"bce": 0.2, "softmax": 0.4})
    (tmp_path / "loss=softmax,seed=2" / "test_ranks.parquet").unlink()

    code, out, _ = run_main(capsys, tmp_path, "--test", "samples", "--format", "json")

    report = json.loads(out)
    (row,) = report["significance"]
    assert code == 0 and [entry["n_seeds"] for entry in report["table"]] == [3, 3] and row["n_seeds"] == 2
    assert "left out of this test" in row["note"] and "softmax seed 2" in row["note"]
    assert "the results table still counts them" in row["note"]


# ---------------------------------------------------------------------------- unclear cases


def test_integer_and_string_ids_of_different_sources_give_one_line(tmp_path: Path, capsys):
    write_sweep(tmp_path / "int", {"bce": 0.2}, run_config=config(id_type="integer"))
    write_sweep(tmp_path / "str", {"softmax": 0.3}, run_config=config(id_type="string"), id_type=str)
    code, _, err = run_main(capsys, tmp_path)
    assert code == 1 and err.count("\n") == 1 and "dataset.id_type is integer in " in err


def test_integer_and_string_ids_of_the_same_samples_pair_as_text(tmp_path: Path):
    write_sweep(tmp_path / "int", {"bce": 0.2, "softmax": 0.4})
    write_sweep(tmp_path / "mixed", {"bce": 0.2, "softmax": 0.4})
    for seed in range(3):  # the same runs, softmax's ranks written with string ids
        path = tmp_path / "mixed" / f"loss=softmax,seed={seed}" / "test_ranks.parquet"
        shutil.copy(tmp_path / "int" / f"loss=softmax,seed={seed}" / "test_ranks.parquet", path)
        pl.read_parquet(path).with_columns(pl.col("user", "item").cast(pl.String)).write_parquet(path)
        shutil.copy(
            tmp_path / "int" / f"loss=bce,seed={seed}" / "test_ranks.parquet",
            tmp_path / "mixed" / f"loss=bce,seed={seed}" / "test_ranks.parquet",
        )
    for folder in ("int", "mixed"):  # the fabricated metrics must follow the copied ranks
        for run_json in (tmp_path / folder).rglob("run.json"):
            record = json.loads(run_json.read_text())
            ranks = pl.read_parquet(run_json.parent / "test_ranks.parquet")["rank"].to_numpy()
            record["metrics"]["test"] = metrics_of_ranks(ranks)
            run_json.write_text(json.dumps(record))
    expected = compare.paired_significance(compare.load_runs(tmp_path / "int"), "bce")
    result = compare.paired_significance(compare.load_runs(tmp_path / "mixed"), "bce")
    assert result["method"][0] == "seeds+samples"
    assert result.drop("note").equals(expected.drop("note"))


def test_a_folder_name_with_brackets_reads_its_ranks(tmp_path: Path):
    write_sweep(tmp_path / "evaluation.ks=[5,10,20]", {"bce": 0.2, "softmax": 0.4})
    scan = compare.scan_run_dirs(tmp_path)
    assert len(scan.runs) == 6 and not scan.skipped
    assert compare.paired_significance(scan.runs, "bce")["method"][0] == "seeds+samples"


# --------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_real_runs_record_fingerprints_and_compare_refuses_other_evaluations(tmp_path: Path, capsys):
    from helpers import SMOKE, run_in_process
    from seqrec.fingerprints import test_set_fingerprint

    full = run_in_process([*SMOKE, "loss=bce", "seed=0"], tmp_path / "full" / "bce")
    other_loss = run_in_process(
        [*SMOKE, "loss=softmax", "loss.temperature=0.5", "trainer.lr=0.01"], tmp_path / "full" / "sm"
    )
    sampled = run_in_process(
        [*SMOKE, "loss=bce", "evaluation=sampled", "evaluation.num_negatives=20"],
        tmp_path / "sampled" / "bce",
    )

    prints = full["fingerprints"]
    ranks = pl.read_parquet(tmp_path / "full" / "bce" / "test_ranks.parquet")
    assert prints["test_set"] == test_set_fingerprint(ranks["user"], ranks["item"])
    assert prints["test_samples"] == full["dataset_stats"]["test_samples"] == ranks.height
    assert prints["protocol_settings"]["data"].startswith("synthetic-")
    assert {"model.max_seq_len", "trainer.epochs", "split._target_", "evaluation.ks"} <= set(
        prints["protocol_settings"]
    )
    assert not any(key.startswith(("loss", "seed", "trainer.lr")) for key in prints["protocol_settings"])
    assert (
        other_loss["fingerprints"]["protocol"] == prints["protocol"]
    )  # nor the objective or its learning rate
    assert sampled["fingerprints"]["test_set"] == prints["test_set"]  # same samples, evaluated otherwise
    assert sampled["fingerprints"]["protocol"] != prints["protocol"]

    code, _, err = run_main(capsys, tmp_path / "full", tmp_path / "sampled")
    assert (
        code == 1
        and "evaluation is FullCatalog in 2 runs in " in err
        and "SampledCandidates in 1 run in " in err
    )
    code, out, _ = run_main(
        capsys,
        tmp_path / "full",
        tmp_path / "sampled",
        "--allow-mixed",
        "--format",
        "json",
        "--baseline",
        "bce",
    )
    report = json.loads(out)
    assert code == 0 and len(report["protocols"]) == 2 and len(report["significance"]) == 1


def test_protocol_settings_hold_the_protocol_and_nothing_else():
    from seqrec.fingerprints import digest, protocol_settings

    base = config() | {"seed": 0, "cache_dir": "/c", "name": "run", "loss": {"temperature": 1.0}}
    base["trainer"] |= {"max_steps": None, "patience": 3, "batch_size": 128, "device": "cpu"}
    base["evaluation"] = FULL | {"batch_size": 256, "max_scores": 1 << 26}
    source = "InteractionFile path=/data/log.csv size=100 mtime_ns=1 id_type=integer"
    reference = digest(protocol_settings(base, source))

    def changed(section: str, key: str, value) -> dict:
        if isinstance(base.get(section), dict):
            return base | {section: base[section] | {key: value}}
        return base | {key: value}

    same = [
        ("loss", "temperature", 0.5),
        ("trainer", "lr", 0.1),
        ("trainer", "batch_size", 64),
        ("trainer", "device", "cuda"),
        ("trainer", "progress", True),
        ("model", "embedding_dim", 32),
        ("evaluation", "batch_size", 16),
        ("evaluation", "max_scores", 1000),
        ("dataset", "path", "/elsewhere/log.csv"),
        ("dataset", "cache_dir", "/tmp"),
        ("seed", "seed", 7),
        ("cache_dir", "cache_dir", None),
        ("name", "name", "other"),
    ]
    for section, key, value in same:
        assert digest(protocol_settings(changed(section, key, value), source)) == reference, key
    differ = [
        ("evaluation", "ks", [5, 10, 50]),
        ("evaluation", "exclude_seen", True),
        ("split", "valid_quantile", 0.7),
        ("preprocess", "user_core", 10),
        ("model", "max_seq_len", 200),
        ("trainer", "epochs", 20),
        ("trainer", "max_steps", 100),
        ("trainer", "patience", None),
        ("dataset", "id_type", "string"),
    ]
    for section, key, value in differ:
        assert digest(protocol_settings(changed(section, key, value), source)) != reference, key
    moved = source.replace("/data/log.csv", "/other place/log.csv")  # where the file lies is bookkeeping
    assert digest(protocol_settings(base, moved)) == reference
    assert digest(protocol_settings(base, source.replace("size=100", "size=101"))) != reference


def test_test_set_fingerprint_follows_the_samples_not_their_order_or_id_type():
    from seqrec.fingerprints import test_set_fingerprint

    users, items = np.array([3, 1, 2, 2]), np.array([10, 11, 12, 12])
    reference = test_set_fingerprint(users, items)
    order = np.array([2, 0, 3, 1])
    assert test_set_fingerprint(users[order], items[order]) == reference
    assert test_set_fingerprint(users.astype(str), items.astype(str)) == reference
    assert test_set_fingerprint(users[:3], items[:3]) != reference  # a repeated sample counts
    assert test_set_fingerprint(users, items + 1) != reference
    assert test_set_fingerprint(items, users) != reference


def test_report_pages_refuse_mixed_protocols_or_label_their_rows(tmp_path: Path, capsys):
    from seqrec import report

    write_sweep(tmp_path / "SA", {"bce": 0.2, "softmax": 0.25})
    write_sweep(tmp_path / "SB", {"bce": 0.5}, run_config=config(SAMPLED))
    for run_json in tmp_path.rglob("run.json"):  # what the page's setup section reads
        record = json.loads(run_json.read_text())
        record["timings"] = {"train_seconds": 1.0, "train_events_per_second": 100.0}
        run_json.write_text(json.dumps(record))
    page = tmp_path / "page.md"
    arguments = [str(tmp_path / "SA"), str(tmp_path / "SB"), "--title", "t", "--output", str(page)]

    assert report.main(arguments) == 1 and not page.exists()
    assert "evaluation is FullCatalog in 6 runs in " in capsys.readouterr().err
    assert report.main([*arguments, "--allow-mixed"]) == 0
    text = page.read_text()
    assert (
        "| bce @ evaluation=SampledCandidates | 3 |" in text and "- `evaluation=SampledCandidates`:" in text
    )
    assert "SampledCandidates on dcg@10" not in text  # no test against a baseline of another protocol


@pytest.mark.parametrize(
    ("page", "folders"),
    [("experiments/quick/RESULTS.md", 1), ("experiments/objectives/RESULTS-ml-100k.md", 1)],
)
def test_committed_result_pages_regenerate_from_their_runs(page: str, folders: int, tmp_path: Path, capsys):
    """Old run records (no fingerprints): the protocol comes from their configs, the test set from their
    ranks where committed; the pages regenerate exactly (their first lines name the command)."""
    import shlex

    from seqrec import report

    repo = Path(__file__).resolve().parents[1]
    committed = (repo / page).read_text()
    command = committed.splitlines()[2].split("`")[1]
    arguments = shlex.split(command)[3:]
    arguments[arguments.index("--output") + 1] = str(tmp_path / "page.md")
    assert arguments[0].startswith("experiments/")
    arguments[0] = str(repo / arguments[0])

    assert report.main(arguments) == 0
    regenerated = (tmp_path / "page.md").read_text()
    assert regenerated.splitlines()[3:] == committed.splitlines()[3:]


def test_the_data_entry_names_the_file_content_not_its_place(tmp_path: Path):
    from seqrec.data.sources import InteractionFile
    from seqrec.fingerprints import data_identity

    original = tmp_path / "a" / "log.csv"
    original.parent.mkdir()
    original.write_text("user,item,timestamp\n1,2,3\n1,3,4\n")
    copy = tmp_path / "elsewhere" / "log.csv"
    copy.parent.mkdir()
    copy.write_bytes(original.read_bytes())  # a new path and modification time, the same bytes
    assert data_identity(InteractionFile(str(copy)).fingerprint()) == data_identity(
        InteractionFile(str(original)).fingerprint()
    )
    copy.write_text("user,item,timestamp\n1,2,3\n1,4,4\n")  # same size, other content
    assert data_identity(InteractionFile(str(copy)).fingerprint()) != data_identity(
        InteractionFile(str(original)).fingerprint()
    )
