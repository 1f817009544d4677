"""The sasrec_original, ms_recommenders and two_tower presets: every pinned value against the reference it
comes from, and each preset end to end for a few steps (MovieLens-100K; Amazon-format and click-log files made
here)."""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from helpers import click_rows, run_in_process, write_clicks, write_lines
from seqrec import compare
from seqrec.models.legacy import OLD_DEFAULTS, flat_settings
from seqrec.stats import CONF_DIR

# The shared GroupLens file lies beside the checkout (../shared); SEQREC_ML100K points elsewhere.
ML_100K = Path(
    os.environ.get("SEQREC_ML100K", Path(__file__).resolve().parents[2] / "shared/data/ml-100k/u.data")
)
FAST = ["logger=none", "cache_dir=null", "trainer.progress=false"]

# A model.<flag> of the flat backbone that the reference ports were once options of (seqrec.models.legacy) is
# read from the settings the preset's model variant fixes (tests/test_model_parity.py: the variant computes
# what those flags did).
# Expected value of every key the preset pins, with where it comes from. "Walkthrough" is the reference
# document describing the public PyTorch port (data preparation, partition, sampler, model, hyperparameter
# table); "port source" marks what the walkthrough does not reach and was read in the port's own code.
SASREC_ORIGINAL = {
    # Walkthrough, data section: ml-1m ratings.dat. The port ships the paper's file instead of the
    # walkthrough's re-processing: users and items with < 5 ratings dropped, 6040 users and 3416 items
    # (its published checkpoints have 3417 item rows, padding included).
    "choices.dataset": "ml-1m",
    "preprocess.user_core": 5,
    "preprocess.item_core": 5,
    "preprocess.kcore_passes": None,
    "preprocess.kcore_order": "together",
    "preprocess.min_rating": None,  # every rating is an interaction
    "preprocess.duplicates": "keep",
    # Walkthrough, train/validation/test partition: users with fewer than 4 events only train; the others
    # give the last event as test and the one before as validation.
    "choices.split": "loo",
    "split.min_events": 4,
    # Walkthrough, hyperparameter table: hidden_units 50, num_blocks 2, num_heads 1, maxlen 200, dropout 0.2.
    "choices.model": "sasrec_pytorch_port",
    "model.embedding_dim": 50,
    "model.num_layers": 2,
    "model.num_heads": 1,
    "model.max_seq_len": 200,
    "model.dropout": 0.2,
    # Walkthrough, feed-forward section: two Conv1d(hidden, hidden, kernel_size=1) with a ReLU between.
    "model.ffn_dim": 50,
    "model.activation": "relu",
    # Walkthrough, model section: dropout on the embedding sum (emb_dropout, the paper's III.C).
    "model.embedding_dropout": 0.2,
    # Walkthrough, sampler: sequences are right-aligned in a maxlen window with left padding, and positions
    # are the window's slots, so the newest item always has the same position (backward order here);
    # nothing masks the padding keys (port source), so real positions attend to the padding slots.
    "model.position_order": "backward",
    "model.attend_padding": True,
    # Port source, block: Q = LN(x); x = Q + MHA(Q, x, x) (dropout on the weights only); x = LN(x);
    # x = x + FFN(x); a last LN; every LN with eps 1e-8; item embeddings times sqrt(hidden); Xavier normal
    # init of every matrix and table.
    "model.norm_first": True,
    "model.norm_keys_values": False,
    "model.residual_from_norm": True,
    "model.ffn_norm": True,
    "model.norm_per_position": False,
    "model.layer_norm_eps": 1e-8,
    "model.attention_out_projection": True,
    "model.attention_output_dropout": False,
    "model.scale_item_embeddings": True,
    "model.init": "xavier_normal",
    # Walkthrough, sampler and "negative sampling" section: BCE, one negative per positive, drawn again
    # until it is not in the user's training items.
    "choices.loss": "bce",
    "loss.num_negatives": 1,
    "loss.exclude_seen": True,
    # Walkthrough, batch count and hyperparameter table: batch 128, lr 0.001.
    "trainer.batch_size": 128,
    "trainer.lr": 1e-3,
    # Port source (main.py): 1000 epochs, Adam betas (0.9, 0.98) and PyTorch's eps, no L2 (l2_emb 0),
    # evaluation every 20 epochs, NDCG@10 / HR@10 reported, float32, no clipping or early stopping.
    "trainer.epochs": 1000,
    "trainer.adam_betas": [0.9, 0.98],
    "trainer.adam_eps": 1e-8,
    "trainer.weight_decay": 0.0,
    "trainer.eval_every_steps": None,
    "trainer.eval_every_epochs": 20,
    "trainer.validate_at_end": False,
    "trainer.select_metric": "dcg@10",
    "trainer.bf16": False,
    "trainer.grad_clip_norm": None,
    "trainer.patience": None,
    "trainer.max_steps": None,
    # Port source (evaluate): 100 draws, each redrawn while it is a training item of the user; repeats,
    # the target itself and the validation item can be drawn; NDCG@10 and HR@10 among the 101.
    "choices.evaluation": "sampled",
    "evaluation.num_negatives": 100,
    "evaluation.replacement": True,
    "evaluation.exclude": "training",
    "evaluation.ks": [5, 10, 20],
}

# The Microsoft Recommenders notebook (SASRec on Amazon Electronics), cell by cell; "library source" marks
# what the notebook calls but does not show (recommenders' SASRec model, sampler and data set classes).
MS_RECOMMENDERS = {
    # Input parameters cell: dataset reviews_Electronics_5; filter cell: filter_K_core(min_rating=10,
    # num_iter=1), one pass that filters items, then users, with 10 as the minimum count of both.
    "choices.dataset": "amazon",
    "preprocess.user_core": 10,
    "preprocess.item_core": 10,
    "preprocess.kcore_passes": 1,
    "preprocess.kcore_order": "items_first",
    "preprocess.drop_exact_duplicates": False,  # 003 data preparation: rows go straight into the filter
    "preprocess.min_rating": None,  # every review is an interaction
    "preprocess.duplicates": "keep",
    # Data set cell and its explanation: last event test, the one before validation; library source:
    # users with fewer than 3 events only train.
    "choices.split": "loo",
    "split.min_events": 3,
    # Input parameters cell: hidden_units 100, num_blocks 2, num_heads 1, maxlen 50, dropout_rate 0.1;
    # model cell: conv_dims [100, 100].
    "choices.model": "sasrec_tf2_port",
    "model.embedding_dim": 100,
    "model.num_layers": 2,
    "model.num_heads": 1,
    "model.max_seq_len": 50,
    "model.dropout": 0.1,
    "model.ffn_dim": 100,
    "model.embedding_dropout": 0.1,
    # Library source (TF2 port): Q = LN(x); x = Q + attention(Q, keys x) with padding keys masked and no
    # output projection; x = x + FFN(x) with no norm before it; a last LN; every LN has a gain and bias per
    # position and eps 1e-8; ReLU; item embeddings times sqrt(d); slot positions in a left-padded window;
    # Keras default initialisers.
    "model.position_order": "backward",
    "model.attend_padding": False,
    "model.norm_first": True,
    "model.norm_keys_values": False,
    "model.residual_from_norm": True,
    "model.ffn_norm": False,
    "model.norm_per_position": True,
    "model.layer_norm_eps": 1e-8,
    "model.activation": "relu",
    "model.attention_out_projection": False,
    "model.attention_output_dropout": False,
    "model.scale_item_embeddings": True,
    "model.init": "glorot_uniform",
    # Sampler and training cells: BCE over positive and negative logits, one negative per position that
    # the user has not interacted with in training.
    "choices.loss": "bce",
    "loss.num_negatives": 1,
    "loss.exclude_seen": True,
    # Input parameters cell: batch_size 128, lr 0.001, l2_emb 0.0; training cell: model.train(num_epochs=10,
    # val_epoch=6) (the num_epochs = 5 of the parameters cell is not used); library source: Keras Adam
    # (betas 0.9 / 0.999, epsilon 1e-7), validation only when epoch % 6 == 0, float32.
    "trainer.epochs": 10,
    "trainer.batch_size": 128,
    "trainer.lr": 1e-3,
    "trainer.weight_decay": 0.0,
    "trainer.adam_betas": [0.9, 0.999],
    "trainer.adam_eps": 1e-7,
    "trainer.eval_every_steps": None,
    "trainer.eval_every_epochs": 6,
    "trainer.validate_at_end": False,
    "trainer.select_metric": "dcg@10",
    "trainer.bf16": False,
    "trainer.grad_clip_norm": None,
    "trainer.patience": None,
    "trainer.max_steps": None,
    # Input parameters cell: num_neg_test 100; library source: draws as in the original code.
    "choices.evaluation": "sampled",
    "evaluation.num_negatives": 100,
    "evaluation.replacement": True,
    "evaluation.exclude": "training",
    "evaluation.ks": [5, 10, 20],
}
# The in-batch tutorial (reference 004, Part A), by cell: "data" (reading train_hist / valid_last and the
# DEBUG settings), "samples" (the next-item sample loop), "model" (build_sasrec_inbatch and its call),
# "training" (compile and fit), "index" (the FAISS index and evaluate_recall); "Keras" marks a library default
# the tutorial relies on without stating it.
TWO_TOWER = {
    # Data: the competition's click log (user_id, click_article_id, click_timestamp), sorted by user and time;
    # no filtering of users or articles.
    "choices.dataset": "news_clicks",
    "dataset.user_column": "user_id",
    "dataset.item_column": "click_article_id",
    "dataset.timestamp_column": "click_timestamp",
    "preprocess.user_core": 1,
    "preprocess.item_core": 1,
    "preprocess.kcore_passes": None,
    "preprocess.kcore_order": "together",
    "preprocess.min_rating": None,
    "preprocess.duplicates": "keep",  # repeated clicks on an article stay events of the history
    "preprocess.drop_exact_duplicates": True,  # not shown (an earlier notebook builds train_hist): seqrec's
    # Data and index: each user's last click (valid_last) is evaluated with all earlier clicks as history.
    # seqrec also needs a validation target: the click before it; users with 3+ clicks are evaluated.
    "choices.split": "loo",
    "split.min_events": 3,
    # Samples: one target per sample, at most MAX_SAMPLES_PER_USER = 20 (DEBUG) positions per user drawn
    # without replacement among the last 3 * 20 = 60, history = the 50 clicks before the target.
    "batches.one_target_per_sample": True,
    "batches.max_targets_per_user": 20,
    "batches.targets_drawn_from_last": 60,
    "model.max_seq_len": 50,
    # Model: emb_dim 64, num_heads 2, num_blocks 2, ff_dim 128, dropout 0.2.
    "model.embedding_dim": 64,
    "model.num_heads": 2,
    "model.num_layers": 2,
    "model.ffn_dim": 128,
    "model.dropout": 0.2,
    "model.embedding_dropout": 0.2,  # Dropout on item + position embeddings
    # Model: x + MHA(LN(x), LN(x)) with dropout on the weights only (Keras),
    # x + Dense(Dropout(Dense_relu(LN(x)))), no dropout on either output, a final LN; Keras's
    # LayerNormalization epsilon 1e-3; MHA has an output projection; item embeddings are not scaled.
    "model.norm_first": True,
    "model.norm_keys_values": True,
    "model.residual_from_norm": False,
    "model.ffn_norm": True,
    "model.norm_per_position": False,
    "model.layer_norm_eps": 1e-3,
    "model.activation": "relu",
    "model.attention_out_projection": True,
    "model.attention_output_dropout": False,
    "model.ffn_output_dropout": False,
    "model.scale_item_embeddings": False,
    # Samples and model: left padding with id 0 in a 50-slot window whose slot index is the position (so the
    # newest item always has the same position); the padding row's mask is lost at the added position
    # embedding (Keras), so attention sees the padding slots, each the padding embedding plus its position.
    "model.position_order": "backward",
    "model.attend_padding": True,
    "model.padding_embedding": True,
    # Keras: Embedding U(-0.05, 0.05), Dense Glorot uniform with zero bias, MultiHeadAttention kernels with
    # their own Glorot fans.
    "model.init": "keras_attention",
    # Model: the last state through Dense(64) and l2_normalize; the target item's embedding through Dense(64)
    # and l2_normalize; logits = their products / temperature.
    "choices.model": "two_tower_keras_port",
    "model.query_projection": True,
    "model.item_projection": True,
    "model.similarity": "cosine",
    # Model: inbatch_symmetric_loss, labels = range(batch) (repeated items are not masked), temperature 0.05;
    # training: the whole batch of 1024 is the logit matrix.
    "choices.loss": "inbatch_symmetric",
    "loss.num_negatives": 1023,
    "loss.temperature": 0.05,
    "loss.remove_accidental_hits": False,
    # Training: Adam(2e-4) with Keras's betas and epsilon 1e-7, batch 1024, 3 epochs, float32, no clipping.
    "trainer.epochs": 3,
    "trainer.batch_size": 1024,
    "trainer.lr": 2e-4,
    "trainer.weight_decay": 0.0,
    "trainer.adam_betas": [0.9, 0.999],
    "trainer.adam_eps": 1e-7,
    "trainer.grad_clip_norm": None,
    "trainer.bf16": False,
    "trainer.patience": None,
    "trainer.max_steps": None,
    # Not in the tutorial (it evaluates only the final weights): validation after every epoch, the best by the
    # tutorial's metric.
    "trainer.eval_every_steps": None,
    "trainer.eval_every_epochs": 1,
    "trainer.validate_at_end": True,
    "trainer.select_metric": "hitrate@20",
    # Index: exact inner products over every item (an exact flat index ranks as the full catalog does),
    # HitRate@20 and NDCG@20, the user's clicked items never recommended.
    "choices.evaluation": "full",
    "evaluation.ks": [5, 10, 20],
    "evaluation.exclude_seen": True,
}
PRESETS = {"sasrec_original": SASREC_ORIGINAL, "ms_recommenders": MS_RECOMMENDERS, "two_tower": TWO_TOWER}
# Pins for objectives other than the preset's own, checked with that objective chosen.
OTHER_LOSS_PINS = {
    # Not in the tutorial: the full softmax with the tutorial's head and temperature (experiments/two_tower).
    "two_tower": {"softmax": {"loss.temperature": 0.05, "loss.detach_item_table": False}},
}


def composed(experiment: str, overrides: tuple[str, ...] = ()):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            config_name="config", overrides=[f"experiment={experiment}", *overrides], return_hydra_config=True
        )


def value_at(cfg, key: str):
    if key.startswith("choices."):
        return cfg.hydra.runtime.choices[key.removeprefix("choices.")]
    if key.startswith("model.") and key.removeprefix("model.") in OLD_DEFAULTS:
        return flat_settings(OmegaConf.to_container(cfg.model))[key.removeprefix("model.")]
    value = OmegaConf.select(cfg, key)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def pinned_keys(experiment: str) -> set[str]:
    """Every key the preset and its per-objective files set: section.key, or choices.group for groups."""
    preset = OmegaConf.load(CONF_DIR / "experiment" / f"{experiment}.yaml")
    keys = set()
    for entry in preset.pop("defaults", []):
        (group,) = entry.keys()
        keys.add("choices." + group.removeprefix("override /"))
    for section, values in preset.items():
        keys.update(f"{section}.{key}" for key in values)
    for path in (CONF_DIR / "experiment_loss" / experiment).glob("*.yaml"):
        keys.update(f"loss.{key}" for key in OmegaConf.load(path))
    return keys - {"choices.trainer"}  # the only option of its group


@pytest.mark.parametrize("experiment", PRESETS)
def test_every_pinned_value_matches_the_reference(experiment):
    expected = PRESETS[experiment]
    cfg = composed(experiment)
    assert {key: value_at(cfg, key) for key in expected} == expected
    others = OTHER_LOSS_PINS.get(experiment, {})
    for loss, pins in others.items():
        cfg = composed(experiment, (f"loss={loss}",))
        assert {key: value_at(cfg, key) for key in pins} == pins
    checked = set(expected).union(*others.values())
    assert pinned_keys(experiment) <= checked, "a pinned value has no expected entry"


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.skipif(not ML_100K.is_file(), reason=f"{ML_100K} not available (set SEQREC_ML100K)")
def test_sasrec_original_runs_on_movielens_100k(tmp_path):
    overrides = ["experiment=sasrec_original", "dataset=ml-100k", f"dataset.path={ML_100K}", *FAST]
    record = run_in_process([*overrides, "trainer.max_steps=2"], tmp_path)
    assert record["status"] == "completed" and record["steps"] == 2
    stats = record["dataset_stats"]
    assert (stats["users"], stats["items"], stats["test_samples"]) == (943, 1349, 943)
    assert (stats["kcore_pass_limit"], stats["kcore_order"], stats["kcore_converged"]) == (
        None,
        "together",
        True,
    )
    test = record["metrics"]["test"]
    assert 0.0 < test["dcg@10"] <= test["hitrate@10"] <= 1.0
    ranks = pl.read_parquet(tmp_path / "test_ranks.parquet")
    assert ranks.schema["user"] == pl.Int64 and ranks["rank"].max() <= 101  # 100 negatives + the target
    assert ranks["user"].n_unique() == 943 and 1 <= ranks["user"].min() and ranks["user"].max() == 943


def amazon_reviews(seed: int = 0) -> list[dict]:
    """Reviews in the Amazon files' format: string reviewer ids and ASINs (some all digits with leading
    zeros), day-resolution times, other fields the source must ignore; dense enough for a 10-core."""
    rng = random.Random(seed)
    users = [f"A{rng.randrange(16**10):010X}" for _ in range(160)]
    items = [
        f"{rng.randrange(10**9):010d}" if n % 3 == 0 else f"B00{rng.randrange(16**7):07X}" for n in range(70)
    ]
    reviews = []
    for user in users:
        for _ in range(rng.randint(6, 30)):
            item = items[min(int(rng.expovariate(0.06)), len(items) - 1)]
            day = rng.randrange(1_300_000_000, 1_400_000_000) // 86400 * 86400
            reviews.append(
                {
                    "reviewerID": user,
                    "asin": item,
                    "reviewerName": "x",
                    "helpful": [0, 1],
                    "reviewText": "ok",
                    "overall": float(rng.randint(1, 5)),
                    "summary": "s",
                    "unixReviewTime": day,
                    "reviewTime": "t",
                }
            )
    rng.shuffle(reviews)
    return reviews


def write_reviews(path: Path, reviews: list[dict]) -> Path:
    return write_lines(path, [json.dumps(review) for review in reviews])


def one_pass_ten_core(reviews: list[dict]) -> list[dict]:
    """The notebook's filter in loops: items with >= 10 reviews, then users with >= 10 of those."""
    item_counts = Counter(review["asin"] for review in reviews)
    reviews = [review for review in reviews if item_counts[review["asin"]] >= 10]
    user_counts = Counter(review["reviewerID"] for review in reviews)
    return [review for review in reviews if user_counts[review["reviewerID"]] >= 10]


def expected_last_items(reviews: list[dict]) -> dict[str, str]:
    """Each user's last review in time order, equal times in file order (what leave-one-out tests)."""
    last = {}
    for review in sorted(reviews, key=lambda r: r["unixReviewTime"]):  # stable: file order among ties
        last[review["reviewerID"]] = review["asin"]
    return last


@pytest.mark.slow
def test_ms_recommenders_runs_on_amazon_reviews_plain_and_gzipped(tmp_path):
    reviews = amazon_reviews()
    records = {}
    for name in ("reviews.json", "reviews.json.gz"):
        path = write_reviews(tmp_path / name, reviews)
        overrides = ["experiment=ms_recommenders", f"dataset.path={path}", *FAST, "trainer.max_steps=3"]
        records[name] = run_in_process(overrides, tmp_path / f"run-{name}")
    plain, gzipped = records["reviews.json"], records["reviews.json.gz"]
    assert plain["status"] == gzipped["status"] == "completed" and plain["steps"] == 3
    assert plain["metrics"] == gzipped["metrics"] and plain["dataset_stats"] == gzipped["dataset_stats"]
    stats = plain["dataset_stats"]
    assert (stats["kcore_passes"], stats["kcore_pass_limit"], stats["kcore_order"]) == (1, 1, "items_first")
    assert (
        stats["raw_events"] == len(reviews)
        and stats["users"] > 50
        and stats["test_samples"] == stats["users"]
    )

    ranks = pl.read_parquet(tmp_path / "run-reviews.json" / "test_ranks.parquet")
    assert ranks.schema["user"] == pl.String and ranks.schema["item"] == pl.String
    assert ranks.height == stats["test_samples"] and ranks["rank"].max() <= 101
    # The original ids come back: every test target is that reviewer's last review's ASIN, zeros kept.
    kept = one_pass_ten_core(reviews)
    assert (stats["interactions"], stats["users"]) == (len(kept), len({r["reviewerID"] for r in kept}))
    assert dict(zip(ranks["user"], ranks["item"], strict=True)) == expected_last_items(kept)
    assert any(item.startswith("0") for item in ranks["item"])


@pytest.mark.slow
def test_runs_with_string_ids_pair_up_in_the_comparison(tmp_path):
    path = write_reviews(tmp_path / "reviews.json", amazon_reviews(seed=1))
    for loss in ("bce", "softmax"):
        overrides = ["experiment=ms_recommenders", f"dataset.path={path}", f"loss={loss}", *FAST]
        run_in_process([*overrides, "trainer.max_steps=2"], tmp_path / "sweep" / loss)
    runs = compare.load_runs(tmp_path / "sweep")
    table = compare.paired_significance(runs, baseline="bce", metric="dcg@10", n_bootstrap=200)
    assert table.height == 1 and table["objective"].to_list() == ["softmax"]


def test_stats_command_shows_the_kcore_settings(tmp_path, capsys):
    from seqrec.stats import main

    path = write_reviews(tmp_path / "reviews.json.gz", amazon_reviews())
    stats = main(["experiment=ms_recommenders", f"dataset.path={path}", "cache_dir=null"])
    printed = json.loads(capsys.readouterr().out)
    assert printed == stats
    assert (stats["kcore_passes"], stats["kcore_pass_limit"], stats["kcore_order"]) == (1, 1, "items_first")
    assert isinstance(stats["kcore_converged"], bool)


@pytest.mark.slow
def test_two_tower_runs_on_a_click_log(tmp_path):
    rows = click_rows(num_users=150)
    path = write_clicks(tmp_path / "train_click_log.csv", rows)
    overrides = ["experiment=two_tower", f"dataset.path={path}", *FAST, "trainer.max_steps=2"]
    record = run_in_process(overrides, tmp_path / "run")
    assert record["status"] == "completed" and record["steps"] == 2
    assert record["timings"]["train_events"] == 2 * 1024  # one target per sample
    stats = record["dataset_stats"]
    clicks = Counter(row[0] for row in rows)
    assert stats["users"] == 150 and stats["test_samples"] == sum(n >= 3 for n in clicks.values())
    ranks = pl.read_parquet(tmp_path / "run" / "test_ranks.parquet")
    last_click = {row[0]: row[1] for row in sorted(rows, key=lambda row: row[2])}
    assert dict(zip(ranks["user"], ranks["item"], strict=True)) == {
        user: item for user, item in last_click.items() if clicks[user] >= 3
    }
    assert ranks["rank"].max() <= stats["items"]
    test = record["metrics"]["test"]
    assert test["hitrate@20"] == pytest.approx((ranks["rank"] <= 20).mean())
