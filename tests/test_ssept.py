"""SSE-PT (model=ssept) on tiny inputs: the joined embedding by hand, SSE's replacement rates in training (and
none in evaluation), the scores against their formula with the user term, the unknown-user fallback, and a
run end to end through the saved model."""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import polars as pl
import pytest
import torch

import seqrec
from helpers import SMOKE, run_in_process
from seqrec.data.batches import TrainBatch
from seqrec.models.ssept import SsePt, replace_items, replace_users, swap_items
from seqrec.recommender import RecommendError, run_test_samples
from seqrec.refit import refit
from seqrec.train import TrainingParts, training_step

ITEMS, USERS, ITEM_DIM, USER_DIM, MAX_LEN = 9, 5, 4, 2, 6


def tiny_model(**options) -> SsePt:
    settings = dict(embedding_dim=ITEM_DIM, user_embedding_dim=USER_DIM, num_heads=2, ffn_dim=8, dropout=0.0)
    torch.manual_seed(0)
    return SsePt(ITEMS, USERS, max_seq_len=MAX_LEN, **(settings | options))


INPUTS = torch.tensor([[3, 1, 4, 1, 5], [2, 6, 0, 0, 0], [8, 7, 0, 0, 0]])
LENGTHS = torch.tensor([5, 2, 1])
USER_IDS = torch.tensor([4, 0, 2])


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_the_input_is_item_and_user_embeddings_joined_plus_positions(layout):
    model = tiny_model(layout=layout).eval()
    model.user_trained[:] = True
    x, rows = model.embed(INPUTS, LENGTHS, USER_IDS)
    x = rows.layout.unpack(x) if rows.layout is not None else x
    items, users = model.item_embedding.weight, model.user_embedding.weight
    positions = model.position_embedding.weight
    for row, length in enumerate(LENGTHS.tolist()):
        for t in range(length):
            joined = torch.cat(
                [items[INPUTS[row, t]] * math.sqrt(ITEM_DIM), users[USER_IDS[row]] * math.sqrt(USER_DIM)]
            )
            expected = joined + positions[length - 1 - t]  # the newest item is position 0
            torch.testing.assert_close(x[row, t], expected)
    assert x.shape[-1] == ITEM_DIM + USER_DIM == model.position_embedding.embedding_dim


def test_scores_are_the_formula_with_the_user_term():
    model = tiny_model().eval().requires_grad_(False)
    model.user_trained[:] = True
    hidden = model.last_hidden(INPUTS, LENGTHS, USER_IDS)
    items, users = model.item_embedding.weight, model.user_embedding.weight
    expected = torch.tensor(
        [
            [
                float(hidden[s, :ITEM_DIM] @ items[j])
                + math.sqrt(USER_DIM) * float(hidden[s, ITEM_DIM:] @ users[USER_IDS[s]])
                for j in range(ITEMS)
            ]
            for s in range(len(hidden))
        ]
    )
    torch.testing.assert_close(model.score(hidden, USER_IDS), expected)
    assert model.item_vectors().shape == (ITEMS, ITEM_DIM + 1)
    assert torch.equal(model.item_vectors()[:, -1], torch.ones(ITEMS))
    # The hidden state depends on the user; forward and last_hidden agree at the last positions.
    full = model(INPUTS, LENGTHS, USER_IDS)[torch.arange(3), LENGTHS - 1]
    torch.testing.assert_close(full, hidden)
    assert not torch.allclose(model.last_hidden(INPUTS, LENGTHS, torch.tensor([1, 1, 1])), hidden)


def microsoft_recommenders_ssept(model: SsePt, inputs, lengths, users) -> torch.Tensor:
    """[B, I] scores at each row's last position, computed as Microsoft Recommenders' SSEPT.predict does: a
    left-padded window of maxlen slots (the newest item in the last slot, whose position row is seqrec's 0),
    [item * sqrt(d_i) | user * sqrt(d_u)] + position, padding zeroed after the embeddings and after each
    block, padding keys masked, Q, K, V without an output projection, per-slot norms (eps 1e-8), then
    the last slot's state against [item | user * sqrt(d_u)]."""
    width, heads = ITEM_DIM + USER_DIM, model.layers[0].attention.num_heads
    window = torch.zeros(len(inputs), MAX_LEN, dtype=torch.long)
    for row, length in enumerate(lengths.tolist()):
        window[row, MAX_LEN - length :] = inputs[row, :length] + 1
    mask = (window > 0).float()[..., None]
    items = torch.cat([torch.zeros(1, ITEM_DIM), model.item_embedding.weight])
    user = model.user_embedding.weight[users] * math.sqrt(USER_DIM)  # [B, d_u]
    joined = torch.cat([items[window] * math.sqrt(ITEM_DIM), user[:, None, :].expand(-1, MAX_LEN, -1)], -1)
    x = (joined + model.position_embedding.weight.flip(0)[None]) * mask

    def per_slot_norm(values, norm):
        mean = values.mean(-1, keepdim=True)
        variance = ((values - mean) ** 2).mean(-1, keepdim=True)
        return (values - mean) / torch.sqrt(variance + 1e-8) * norm.weight.flip(0) + norm.bias.flip(0)

    causal = torch.tril(torch.ones(MAX_LEN, MAX_LEN, dtype=torch.bool))
    for layer in model.layers:
        weight, bias = layer.attention.qkv.weight, layer.attention.qkv.bias
        queries = per_slot_norm(x, layer.norm1)
        projected = [
            source @ weight[i * width : (i + 1) * width].T + bias[i * width : (i + 1) * width]
            for i, source in enumerate([queries, x, x])
        ]
        split = [torch.cat(t.split(width // heads, dim=2), dim=0) for t in projected]  # [H * B, M, d / H]
        logits = split[0] @ split[1].transpose(1, 2) / math.sqrt(width // heads)
        keys_present = (x.sum(-1) != 0).repeat(heads, 1)[:, None, :]
        logits = torch.where(keys_present & causal, logits, torch.full_like(logits, -(2.0**32) + 1))
        weights = torch.softmax(logits, dim=-1) * (queries.sum(-1) != 0).repeat(heads, 1)[..., None]
        attended = torch.cat((weights @ split[2]).split(len(x), dim=0), dim=2) + queries
        inner = torch.relu(attended @ layer.feed_forward[0].weight.T + layer.feed_forward[0].bias)
        x = (inner @ layer.feed_forward[3].weight.T + layer.feed_forward[3].bias + attended) * mask
    last = per_slot_norm(x, model.final_norm)[:, -1]  # [B, d]
    candidates = model.item_embedding.weight  # [I, d_i]
    return torch.stack(
        [torch.cat([candidates, user[row].expand(ITEMS, -1)], -1) @ last[row] for row in range(len(last))]
    )


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_scores_match_microsoft_recommenders_ssept(layout):
    model = tiny_model(layout=layout).eval().requires_grad_(False)
    with torch.no_grad():  # non-trivial norms and biases, so that a swapped parameter shows
        for name, parameter in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                parameter.copy_(1.0 * name.endswith("weight") + 0.3 * torch.randn_like(parameter))
    model.user_trained[:] = True
    expected = microsoft_recommenders_ssept(model, INPUTS, LENGTHS, USER_IDS)
    hidden = model.last_hidden(INPUTS, LENGTHS, USER_IDS)
    torch.testing.assert_close(model.score(hidden, USER_IDS), expected, rtol=1e-5, atol=1e-5)


def test_an_unknown_user_gets_the_mean_of_the_trained_users():
    model = tiny_model().eval()
    model.user_trained[torch.tensor([1, 3])] = True
    table = model.user_embedding.weight
    mean = (table[1] + table[3]) / 2
    vectors = model.user_vectors(torch.tensor([3, 0, -1]), 3) / math.sqrt(USER_DIM)
    torch.testing.assert_close(vectors, torch.stack([table[3], mean, mean]))
    # No user at all, an untrained user and -1 are the same query.
    none = model.last_hidden(INPUTS, LENGTHS)
    untrained = model.last_hidden(INPUTS, LENGTHS, torch.tensor([0, 2, 4]))
    torch.testing.assert_close(none, untrained)
    torch.testing.assert_close(model.score(none), model.score(untrained, torch.tensor([-1, -1, -1])))
    with pytest.raises(ValueError, match="outside the model's 5 users"):
        model.last_hidden(INPUTS, LENGTHS, torch.tensor([0, 5, 1]))


def binomial_tolerance(p: float, n: int) -> float:
    return 5 * math.sqrt(p * (1 - p) / n)


def sampler_reference(inputs, targets, length, chosen, input_draws, target_draws):
    """The SSE-PT authors' sampler on one row, literally: from the last input back to the first, a chosen
    event takes a drawn item as its input and a drawn item as its position's target, and every input is
    the target of the position before it."""
    seq, pos = list(inputs), list(targets)
    nxt = targets[length - 1]
    for t in reversed(range(length)):
        item = inputs[t]
        if chosen[t]:
            item, nxt = input_draws[t], target_draws[t]
        seq[t], pos[t] = item, nxt
        nxt = item
    return seq, pos


def random_rows(rows: int, width: int, num_items: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (rows,), generator=generator)
    real = torch.arange(width)[None, :] < lengths[:, None]
    events = torch.randint(num_items, (rows, width + 1), generator=generator)  # targets: inputs shifted
    return events[:, :-1] * real, events[:, 1:] * real, lengths, real


def test_sse_replaces_items_as_the_sse_pt_sampler_does():
    inputs, targets, lengths, real = random_rows(200, 7, 20, seed=0)
    generator = torch.Generator().manual_seed(1)
    chosen = (torch.rand(inputs.shape, generator=generator) < 0.3) & real
    input_draws, target_draws = (torch.randint(20, inputs.shape, generator=generator) + 100 for _ in range(2))
    new_inputs, new_targets = swap_items(inputs, targets, chosen, input_draws, target_draws)
    for row, length in enumerate(lengths.tolist()):
        seq, pos = sampler_reference(
            inputs[row].tolist(), targets[row].tolist(), length, chosen[row].tolist(),
            input_draws[row].tolist(), target_draws[row].tolist(),
        )  # fmt: skip
        assert new_inputs[row].tolist() == seq and new_targets[row].tolist() == pos
    assert chosen.any() and (chosen[:, 1:] & ~chosen[:, :-1]).any() and (chosen[:, 1:] & chosen[:, :-1]).any()


@pytest.mark.parametrize("prob", [0.1, 0.5])
def test_sse_replaces_items_at_the_stated_rate(prob):
    num_items = 50
    inputs, targets, lengths, real = random_rows(4000, 30, num_items, seed=2)
    torch.manual_seed(3)
    new_inputs, new_targets = replace_items(inputs, targets, lengths, prob, num_items)
    rate = float((new_inputs != inputs)[real].float().mean())
    expected = prob * (1 - 1 / num_items)  # a uniform draw may give the item back
    assert abs(rate - expected) < binomial_tolerance(expected, int(real.sum())) < 0.015  # sharp
    assert torch.equal(new_inputs[~real], inputs[~real]) and torch.equal(new_targets[~real], targets[~real])
    # A target changes where its own position or the next one was chosen; the last one only by its own.
    last = torch.zeros_like(real)
    last[torch.arange(len(lengths)), lengths - 1] = True
    inner = real & ~last
    expected = (1 - (1 - prob) ** 2) * (1 - 1 / num_items)
    rate = float((new_targets != targets)[inner].float().mean())
    assert abs(rate - expected) < binomial_tolerance(expected, int(inner.sum()))
    expected = prob * (1 - 1 / num_items)
    rate = float((new_targets != targets)[last].float().mean())
    assert abs(rate - expected) < binomial_tolerance(expected, len(lengths))


def test_sse_replaces_users_at_the_stated_rate():
    torch.manual_seed(2)
    users = torch.randint(1000, (200_000,))
    new = replace_users(users, 0.92, 1000)
    expected = 0.92 * (1 - 1 / 1000)
    assert abs(float((new != users).float().mean()) - expected) < binomial_tolerance(expected, len(users))
    assert new.min() >= 0 and new.max() < 1000 and torch.equal(replace_users(users, 0.0, 1000), users)


def one_batch(rows: int = 64, width: int = MAX_LEN) -> TrainBatch:
    torch.manual_seed(3)
    lengths = torch.randint(1, width + 1, (rows,))
    real = torch.arange(width)[None, :] < lengths[:, None]
    events = torch.randint(ITEMS, (rows, width + 1))
    positions = real.flatten().nonzero().squeeze(1)
    users = torch.randint(USERS, (rows,))
    none = torch.zeros(rows, dtype=torch.long)
    return TrainBatch(events[:, :-1] * real, events[:, 1:] * real, lengths, positions, none, none, users)


def test_sse_acts_in_training_only_and_marks_the_true_users():
    model = tiny_model(sse_user_prob=0.5, sse_item_prob=0.5).train()
    batch = one_batch()
    replaced = model.training_batch(batch)
    assert not torch.equal(replaced.users, batch.users) and not torch.equal(replaced.inputs, batch.inputs)
    assert model.user_trained.tolist() == [u in set(batch.users.tolist()) for u in range(USERS)]
    model.eval()
    same = model.training_batch(batch)
    assert all(torch.equal(a, b) for a, b in zip(same, batch, strict=True))


def test_evaluation_scores_do_not_depend_on_the_sse_probabilities():
    plain, regularised = tiny_model(), tiny_model(sse_user_prob=0.9, sse_item_prob=0.9)
    regularised.load_state_dict(plain.state_dict())
    for model in (plain, regularised):
        model.user_trained[:3] = True
        model.eval()
    for _ in range(3):  # SSE would draw anew on every call
        hidden = regularised.last_hidden(INPUTS, LENGTHS, USER_IDS)
        assert torch.equal(regularised.score(hidden, USER_IDS), plain.score(hidden, USER_IDS))
        assert torch.equal(hidden, plain.last_hidden(INPUTS, LENGTHS, USER_IDS))


def test_a_training_step_uses_the_replaced_users_on_both_sides(monkeypatch):
    from seqrec.losses.base import CatalogStats
    from seqrec.losses.bce import BCE

    model = tiny_model(sse_user_prob=1.0).train()
    seen = {}
    forward, query_vectors = SsePt.forward, SsePt.query_vectors

    def spy_forward(self, inputs, lengths, users=None):
        seen["forward"] = users
        return forward(self, inputs, lengths, users)

    def spy_queries(self, hidden, users=None):
        seen["queries"] = users
        return query_vectors(self, hidden, users)

    monkeypatch.setattr(SsePt, "forward", spy_forward)
    monkeypatch.setattr(SsePt, "query_vectors", spy_queries)
    batch = one_batch()
    params = list(model.parameters())
    catalog = CatalogStats(ITEMS, torch.ones(ITEMS))
    parts = TrainingParts(
        model, BCE(), catalog, model, params, torch.optim.Adam(params), None, contextlib.nullcontext(), "cpu"
    )
    loss = training_step(parts, batch)
    assert torch.isfinite(loss)
    rows = batch.positions // batch.inputs.shape[1]
    assert torch.equal(seen["queries"], seen["forward"][rows])
    assert not torch.equal(seen["forward"], batch.users)  # every user was redrawn (some to themselves)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"num_heads": 4}, "embedding_dim \\+ model.user_embedding_dim = 6"),
        ({"sse_user_prob": 1.5}, "model.sse_user_prob must be in \\[0, 1\\]"),
        ({"user_embedding_dim": 0}, "model.user_embedding_dim must be >= 1"),
    ],
)
def test_impossible_settings_name_the_key(option, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(**option)


# ----- end to end -----
SSEPT_RUN = [*SMOKE, "model=ssept", "model.user_embedding_dim=8", "model.ffn_dim=24", "trainer.max_steps=6"]


def test_a_run_records_success_and_its_saved_model_recommends_with_users(tmp_path):
    record = run_in_process([*SSEPT_RUN, "model.sse_user_prob=0.3", "model.sse_item_prob=0.1"], tmp_path)
    assert record["status"] == "completed" and record["choices"]["model"] == "ssept"
    assert 0 < record["metrics"]["test"]["hitrate@20"] <= 1
    model = seqrec.load(tmp_path)
    info = json.loads((tmp_path / "model" / "model.json").read_text())
    assert info["model_config"]["num_users"] == record["dataset_stats"]["users"] == len(model.users)
    trained = int(model.backbone.user_trained.sum())  # the users of the batches before the best step
    assert 0 < trained <= record["dataset_stats"]["train_sequences"] < len(model.users)
    users, recommended = model.recommend_users("all", k=5)
    assert len(users) == len(model.users) and np.isfinite(recommended.scores).all()
    # The saved model reproduces the run's test ranks, each test sample scored with its user.
    samples = run_test_samples(model)
    everything = model.recommend_dense(
        samples.histories, model.num_items, exclude_seen=False, users=model.user_rows(samples.users)
    )
    ranks = [
        1 + int(np.flatnonzero(items == target)[0])
        for items, target in zip(everything.items, model.item_ids[samples.targets], strict=True)
    ]
    recorded = pl.read_parquet(tmp_path / "test_ranks.parquet")["rank"].to_numpy()
    assert np.array_equal(ranks, recorded)
    # A history without a user gets the fallback: the same as a user the model never trained on.
    history = model.history_items([model.users[0]])
    untrained = int(np.flatnonzero(~model.backbone.user_trained.cpu().numpy())[0])
    without = model.recommend(history, k=5)
    unknown = model.recommend(history, k=5, users=[model.users[untrained]])
    assert np.array_equal(without.items, unknown.items)
    np.testing.assert_allclose(without.scores, unknown.scores, rtol=1e-5)
    with pytest.raises(RecommendError, match="one user id per history \\(1\\), got 2 ids"):
        model.recommend(history, k=5, users=list(model.users[:2]))
    # A refit trains its own users (every user with >= 2 events before the test period).
    refitted = seqrec.load(refit(tmp_path, steps=2, output=tmp_path / "refit"))
    assert refitted.backbone.num_users == len(refitted.users) == len(model.users)
    assert len(refitted.recommend_users("all", k=5)[0]) == len(model.users)


def test_the_ms_recommenders_preset_gives_ssept_the_notebooks_sizes_and_no_sse():
    from hydra import compose, initialize_config_dir

    from seqrec.stats import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=ms_recommenders", "model=ssept"])
    notebook = dict(embedding_dim=100, user_embedding_dim=100, num_heads=1, num_layers=2, ffn_dim=200)
    notebook |= dict(dropout=0.1, max_seq_len=50, sse_user_prob=0.0, sse_item_prob=0.0)
    assert {key: cfg.model[key] for key in notebook} == notebook


def test_the_ms_recommenders_preset_runs_with_ssept(tmp_path):
    overrides = ["experiment=ms_recommenders", *SSEPT_RUN, "trainer.max_steps=2"]
    record = run_in_process(overrides, tmp_path)
    assert record["status"] == "completed" and record["choices"]["experiment"] == "ms_recommenders"
    assert record["config"]["model"]["_target_"] == "seqrec.models.ssept.SsePt"
    assert record["choices"]["split"] == "loo" and record["choices"]["loss"] == "bce"
