"""Using a run: the saved model, seqrec.load + recommend (reproducing the run's test ranks exactly),
the recommend and export commands, FAISS indexes and their check, refit, and the bad input of each."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
import torch
from omegaconf import OmegaConf

import seqrec
from helpers import REPO, SMOKE, ranks_by_recommend, run_in_process
from seqrec import export as export_cli
from seqrec import recommend as recommend_cli
from seqrec.ann import IndexSettings, build_index, check_index
from seqrec.app import prepare_data
from seqrec.compare.runs import scan_run_dirs
from seqrec.errors import UserError
from seqrec.export import check_similarity, read_vectors
from seqrec.metrics import top_k_items
from seqrec.recommender import Recommendations, RecommendError, run_test_samples
from seqrec.refit import refit, refit_sequences
from seqrec.saved_model import MODEL_DIR, SavedModelError

TRAIN = ["trainer.max_steps=8", "trainer.eval_every_steps=4"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    run_in_process([*SMOKE, *TRAIN], folder)
    return folder


@pytest.fixture(scope="module")
def string_run_dir(tmp_path_factory):
    """A dataset=file dataset.id_type=string run on a log the test writes: ids like 'user-007', 'sku-a03'."""
    folder = tmp_path_factory.mktemp("string_run")
    rng = np.random.default_rng(0)
    rows = ["user,item,timestamp"]
    for user in range(60):
        for step in range(int(rng.integers(8, 20))):
            rows.append(
                f"user-{user:03d},sku-{'abc'[user % 3]}{int(rng.integers(30)):02d},{user + 100 * step}"
            )
    log = folder / "log.csv"
    log.write_text("\n".join(rows) + "\n")
    overrides = [o for o in SMOKE if not o.startswith("dataset")] + [
        "dataset=file",
        f"dataset.path={log}",
        "dataset.id_type=string",
        *TRAIN,
    ]
    run_in_process(overrides, folder / "run")
    return folder / "run"


# ----- the saved model and load + recommend -----
@pytest.mark.slow
def test_completed_run_saves_a_loadable_model(run_dir):
    files = {path.name for path in (run_dir / MODEL_DIR).iterdir()}
    assert files == {"model.json", "weights.pt", "items.parquet", "histories.parquet"}
    info = json.loads((run_dir / MODEL_DIR / "model.json").read_text())
    assert info["seqrec_version"] == seqrec.__version__ and info["similarity"] == "dot"
    assert (
        info["model_config"]["embedding_dim"] == 16 and info["num_items"] == info["model_config"]["num_items"]
    )
    model = seqrec.load(run_dir)
    best = torch.load(run_dir / "best.pt", weights_only=True)
    assert all(torch.equal(best[k], v.cpu()) for k, v in model.backbone.state_dict().items())
    record = json.loads((run_dir / "run.json").read_text())
    assert (
        len(model.users) == record["dataset_stats"]["users"]
        and model.num_items == record["dataset_stats"]["items"]
    )


@pytest.mark.slow
def test_recommend_reproduces_the_runs_test_ranks_exactly(run_dir):
    model = seqrec.load(run_dir)
    samples = run_test_samples(model)
    # The rebuilt samples are the split's own (histories and targets).
    cfg = OmegaConf.create(json.loads((run_dir / "run.json").read_text())["config"])
    _, split, _ = prepare_data(cfg)
    test = split.test
    assert np.array_equal(samples.targets, test.target.numpy())
    for history, start, end in zip(samples.histories, test.history_start, test.history_end, strict=True):
        assert np.array_equal(history, split.item_seq[start:end].numpy())
    recorded = pl.read_parquet(run_dir / "test_ranks.parquet")["rank"].to_numpy()
    assert np.array_equal(ranks_by_recommend(model, samples, exclude_seen=False), recorded)


@pytest.mark.slow
def test_recommend_reproduces_test_ranks_with_exclude_seen(tmp_path):
    run_in_process([*SMOKE, *TRAIN, "evaluation.exclude_seen=true"], tmp_path)
    model = seqrec.load(tmp_path)
    samples = run_test_samples(model)
    repeats = sum(
        int(target in history) for history, target in zip(samples.histories, samples.targets, strict=True)
    )
    assert repeats > 0  # the rule's exception (a target seen before keeps competing) is exercised
    recorded = pl.read_parquet(tmp_path / "test_ranks.parquet")["rank"].to_numpy()
    assert np.array_equal(ranks_by_recommend(model, samples, exclude_seen=True), recorded)


@pytest.mark.slow
def test_recommend_excludes_seen_items_filters_allowed_ones_and_counts_unknown_ids(run_dir):
    model = seqrec.load(run_dir)
    history = model.history_items([model.users[0]])[0]
    result = model.recommend([history + [-5, 10**9], []], k=5)
    assert result.unknown_items == 2 and result.empty_histories == 1
    assert not set(result.items[0].tolist()) & set(history) and np.all(np.isinf(result.scores[1]))
    assert np.all(np.diff(result.scores[0]) <= 0)
    frame = result.to_frame(["a", "b"])
    assert frame.columns == ["user", "rank", "item", "score"] and frame["user"].unique().to_list() == ["a"]
    allowed = model.item_ids[:7].tolist()
    limited = model.recommend([history], k=7, exclude_seen=False, allowed_items=allowed)
    assert sorted(limited.items[0].tolist()) == sorted(allowed)
    vectors = model.query_vectors([history])
    scores = torch.from_numpy(vectors) @ torch.from_numpy(model.item_vectors()).T
    assert np.array_equal(
        model.item_ids[top_k_items(scores, 5)[0].numpy()], model.recommend([history], 5, False).items[0]
    )


# ----- the recommend command -----
@pytest.mark.slow
def test_recommend_command_writes_candidates_with_original_string_ids(string_run_dir, tmp_path, capsys):
    output = tmp_path / "candidates.parquet"
    assert (
        recommend_cli.main([str(string_run_dir), "--users", "all", "--k", "5", "--output", str(output)]) == 0
    )
    assert "candidates for" in capsys.readouterr().out
    candidates = pl.read_parquet(output)
    assert candidates.schema == {"user": pl.String, "rank": pl.Int64, "item": pl.String, "score": pl.Float32}
    assert (
        candidates["user"].str.starts_with("user-").all() and candidates["item"].str.starts_with("sku-").all()
    )
    model = seqrec.load(string_run_dir)
    assert candidates.height == 5 * len(model.users)
    assert candidates.group_by("user").agg(pl.col("rank").sort()).get_column("rank").to_list()[0] == [
        1,
        2,
        3,
        4,
        5,
    ]
    seen = dict(zip(model.users.tolist(), model.history_items(), strict=True))
    assert all(item not in seen[user] for user, item in candidates.select("user", "item").iter_rows())

    users_file = tmp_path / "users.txt"
    users_file.write_text(f"{model.users[3]}\nuser-unknown\n")
    assert (
        recommend_cli.main(
            [str(string_run_dir), "--users", str(users_file), "--k", "3", "--output", str(output)]
        )
        == 0
    )
    assert pl.read_parquet(output)["user"].unique().to_list() == [model.users[3]]


# ----- export, indexes, the check -----
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["parquet", "npy"])
def test_export_round_trips(string_run_dir, tmp_path, fmt, capsys):
    assert export_cli.main([str(string_run_dir), "--format", fmt, "--output", str(tmp_path)]) == 0
    assert "similarity dot" in capsys.readouterr().out
    model = seqrec.load(string_run_dir)
    item_ids, item_vectors = read_vectors(tmp_path, "item")
    user_ids, user_vectors = read_vectors(tmp_path, "user")
    assert list(item_ids) == list(model.item_ids) and np.array_equal(item_vectors, model.item_vectors())
    assert list(user_ids) == list(model.users)
    assert np.array_equal(user_vectors, model.query_vectors(model.history_items()))
    assert json.loads((tmp_path / "export.json").read_text())["similarity"] == "dot"
    # Scoring the exported vectors ranks like recommend.
    top = top_k_items(torch.from_numpy(user_vectors) @ torch.from_numpy(item_vectors).T, 5).numpy()
    _, recommended = model.recommend_users("all", k=5, exclude_seen=False)
    assert np.array_equal(item_ids[top], recommended.items)


@pytest.mark.slow
def test_flat_index_reproduces_the_exact_top_k_and_hnsw_recall_is_high(run_dir, tmp_path, capsys):
    pytest.importorskip("faiss")
    model = seqrec.load(run_dir)
    samples = run_test_samples(model)
    queries, items = model.query_vectors_of(samples.histories), model.item_vectors()
    exact = top_k_items(torch.from_numpy(queries) @ torch.from_numpy(items).T, 10).numpy()
    _, found = build_index(items, IndexSettings("flat")).search(queries, 10)
    assert np.array_equal(found, exact)

    assert (
        export_cli.main([str(run_dir), "--index", "hnsw", "--check", "--k", "10", "--output", str(tmp_path)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "hnsw index" in printed and "exact (full catalog)" in printed
    report = json.loads((tmp_path / "check.json").read_text())
    assert report["index"]["recall"] >= 0.95 and report["exact"]["recall"] == 1.0
    recorded = pl.read_parquet(run_dir / "test_ranks.parquet")["rank"].to_numpy()
    assert report["exact"]["hitrate"] == pytest.approx(np.mean(recorded <= 10))
    assert report["recorded_hitrate"] == pytest.approx(np.mean(recorded <= 10))
    assert (tmp_path / "items.hnsw.faiss").exists()


def random_catalog(num_items=3000, dim=16, num_queries=300, seed=0):
    generator = np.random.default_rng(seed)
    items = generator.standard_normal((num_items, dim)).astype(np.float32)
    queries = generator.standard_normal((num_queries, dim)).astype(np.float32)
    return items, queries


def test_indexes_against_brute_force_on_a_random_catalog():
    pytest.importorskip("faiss")
    items, queries = random_catalog()
    exact = top_k_items(torch.from_numpy(queries) @ torch.from_numpy(items).T, 10).numpy()
    targets = exact[:, 3]  # every target is in the exact top 10, at place 4
    histories = [np.array([row % 3000]) for row in range(len(queries))]
    recall = {}
    for kind in ("flat", "hnsw", "ivf"):
        settings = IndexSettings(kind, nlist=32, nprobe=32) if kind == "ivf" else IndexSettings(kind)
        report = check_index(
            build_index(items, settings), kind, items, queries, histories, targets, np.full(300, 4), 10, False
        )
        recall[kind] = report.index.recall
        assert report.exact.hitrate == 1.0 and report.exact.dcg == pytest.approx(1 / np.log2(5))
    assert recall["flat"] == 1.0 and recall["ivf"] == 1.0  # nprobe = nlist searches every cluster
    assert recall["hnsw"] >= 0.95
    few_probes = check_index(
        build_index(items, IndexSettings("ivf", nlist=32, nprobe=1)),
        "ivf",
        items,
        queries,
        histories,
        targets,
        np.full(300, 4),
        10,
        False,
    )
    assert few_probes.index.recall < recall["ivf"]  # the check sees what approximation costs


def test_check_applies_the_runs_exclusion_rule_through_the_index():
    pytest.importorskip("faiss")
    items, queries = random_catalog(num_items=200, num_queries=50)
    exact = top_k_items(torch.from_numpy(queries) @ torch.from_numpy(items).T, 10).numpy()
    # Each history holds the two best items; the target (the third best) was seen too and keeps competing.
    histories = [np.array([row[0], row[1], row[2]]) for row in exact]
    report = check_index(
        build_index(items, IndexSettings("flat")),
        "flat",
        items,
        queries,
        histories,
        exact[:, 2],
        np.ones(50),
        10,
        True,
    )
    assert report.exact.hitrate == 1.0 and report.exact.dcg == 1.0 and report.index.recall == 1.0
    assert report.index.dcg == 1.0 and "recorded test ranks" in report.format()
    sampled = check_index(
        build_index(items, IndexSettings("flat")),
        "flat",
        items,
        queries,
        histories,
        exact[:, 2],
        None,
        10,
        True,
    )
    assert sampled.recorded_hitrate is None and "recorded" not in sampled.format()  # sampled ranks: not shown


# ----- refit -----
def test_refit_sequences_end_before_each_users_first_test_target():
    counts = np.array([5, 3, 1, 4])  # users' blocks: [0, 5), [5, 8), [8, 9), [9, 13)
    test_start, test_end = np.array([0, 0, 9]), np.array([3, 4, 12])  # user 0 tested at 3 and 4, user 3 at 12
    start, end = refit_sequences(test_start, test_end, counts, "test")
    assert start.tolist() == [0, 5, 9] and end.tolist() == [3, 8, 12]  # user 2 has one event: no sequence
    start, end = refit_sequences(test_start, test_end, counts, "all")
    assert start.tolist() == [0, 5, 9] and end.tolist() == [5, 8, 13]


@pytest.mark.slow
def test_refit_retrains_the_chosen_run_as_its_own_run(run_dir, tmp_path, capsys):
    chosen = json.loads((run_dir / "run.json").read_text())
    output = refit(run_dir, "test", output=tmp_path / "refit")
    record = json.loads((output / "run.json").read_text())
    assert record["status"] == "completed" and record["refit_of"] == str(run_dir.resolve())
    assert (
        record["steps"] == chosen["best_step"]
        and record["config"]["trainer"]["max_steps"] == chosen["best_step"]
    )
    stats = record["dataset_stats"]
    assert (
        stats["refit_events"] > chosen["timings"]["train_events"] / chosen["steps"]
    )  # validation events joined
    assert pl.read_parquet(output / "test_ranks.parquet").height == stats["test_samples"]
    model = seqrec.load(output)
    assert np.array_equal(
        ranks_by_recommend(model, run_test_samples(model), False),
        pl.read_parquet(output / "test_ranks.parquet")["rank"].to_numpy(),
    )
    assert "refit" in scan_run_dirs(tmp_path).note()  # the comparison leaves refits out
    with pytest.raises(UserError, match="is itself a refit"):
        refit(output, output=tmp_path / "again")
    everything = refit(run_dir, "all", steps=2, output=tmp_path / "all")
    assert (
        not (everything / "test_ranks.parquet").exists()
        and seqrec.load(everything).num_items == model.num_items
    )


# ----- bad input -----
@pytest.mark.slow
def test_run_folders_without_a_usable_model_get_one_line(run_dir, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    shutil.rmtree(old / MODEL_DIR)
    with pytest.raises(SavedModelError, match="older seqrec, before runs saved their model; train it again"):
        seqrec.load(old)
    record = json.loads((old / "run.json").read_text()) | {"status": "failed"}
    (old / "run.json").write_text(json.dumps(record))
    with pytest.raises(SavedModelError, match="status 'failed': only completed runs save a model"):
        seqrec.load(old)
    with pytest.raises(SavedModelError, match="holds no seqrec run"):
        seqrec.load(tmp_path)
    newer = tmp_path / "newer"
    shutil.copytree(run_dir, newer)
    info = json.loads((newer / MODEL_DIR / "model.json").read_text()) | {"format": 99}
    (newer / MODEL_DIR / "model.json").write_text(json.dumps(info))
    with pytest.raises(SavedModelError, match="model format 99.*upgrade seqrec"):
        seqrec.load(newer)
    assert recommend_cli.main([str(old), "--output", str(tmp_path / "c.parquet")]) == 1


@pytest.mark.slow
def test_bad_requests_get_one_line(run_dir, tmp_path, capsys, monkeypatch):
    model = seqrec.load(run_dir)
    with pytest.raises(
        RecommendError, match=r"none of the 2 histories has an item of the model's catalog \(3 unknown"
    ):
        model.recommend([[-1, -2], [-3]])
    with pytest.raises(
        RecommendError, match=f"k=1000 is larger than the {model.num_items} items in the model's catalog"
    ):
        model.recommend([[model.item_ids[0]]], k=1000)
    with pytest.raises(RecommendError, match="k=3 is larger than the 2 allowed items"):
        model.recommend([[model.item_ids[0]]], k=3, allowed_items=model.item_ids[:2].tolist())
    with pytest.raises(RecommendError, match="each history must be a list of item ids"):
        model.recommend([model.item_ids[0]])
    assert recommend_cli.main([str(run_dir), "--k", "1000", "--output", str(tmp_path / "c.parquet")]) == 1
    assert capsys.readouterr().err.count("\n") == 1

    monkeypatch.setitem(sys.modules, "faiss", None)  # the extra is not installed
    assert export_cli.main([str(run_dir), "--index", "hnsw", "--output", str(tmp_path / "e")]) == 1
    error = capsys.readouterr().err
    install = "pip install 'seqrec[ann]' (or: pip install faiss-cpu)"
    assert error == f"error: --index needs FAISS, which is not installed: {install}\n"
    assert not (tmp_path / "e").exists()  # nothing written
    assert export_cli.main([str(run_dir), "--check", "--output", str(tmp_path / "e")]) == 1
    assert "--check measures an index: add --index" in capsys.readouterr().err


def test_a_cosine_model_exported_as_dot_gets_one_line():
    unit = np.eye(4, dtype=np.float32)
    with pytest.raises(UserError, match="scores by cosine similarity.*exporting it as dot"):
        check_similarity("cosine", "dot", unit)
    with pytest.raises(UserError, match="normalising its vectors for cosine would change its ranking"):
        check_similarity("dot", "cosine", unit)
    with pytest.raises(UserError, match="not unit length"):
        check_similarity("cosine", None, 2 * unit)
    assert (
        check_similarity("cosine", "cosine", unit) == "cosine"
        and check_similarity("dot", None, 2 * unit) == "dot"
    )


def test_recommendations_frame_leaves_out_what_is_not_a_recommendation():
    result = Recommendations(
        np.array([[3, 1], [2, 0]]), np.array([[2.0, -np.inf], [1.0, 0.5]], dtype=np.float32), 0, 0
    )
    frame = result.to_frame(np.array([10, 20]))
    assert frame.rows() == [(10, 1, 3, 2.0), (20, 1, 2, 1.0), (20, 2, 0, 0.5)]


def test_import_seqrec_stays_light():
    code = "import sys, seqrec; print(sorted(m for m in ('torch', 'hydra', 'polars') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
    assert callable(seqrec.load)
