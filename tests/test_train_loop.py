"""The training loop's bookkeeping, against hand-computed sequences of validation values: which step is the
best, how stale it is, when patience stops the run, which steps validate, what the checkpoint holds."""

from __future__ import annotations

import json
import math

import pytest
import torch
from omegaconf import OmegaConf

from seqrec.data.batches import TrainTensors
from seqrec.losses.base import CatalogStats
from seqrec.losses.softmax import Softmax
from seqrec.records import HISTORY_FILE, RunRecorder
from seqrec.train import TrainingParts, fit, load_checkpoint
from seqrec.validation import BestWeights, Validation

NUM_ITEMS, SEQUENCES, BATCH_SIZE = 6, 8, 2  # 4 batches per epoch


class ItemEmbeddings(torch.nn.Module):
    """The smallest model of the interface training uses: hidden state = the input item's embedding."""

    def __init__(self):
        super().__init__()
        self.item_embeddings = torch.nn.Embedding(NUM_ITEMS, 3)

    def forward(self, inputs, lengths, users=None):
        return self.item_embeddings(inputs)

    def query_vectors(self, hidden, users=None):
        return hidden

    def item_vectors(self):
        return self.item_embeddings.weight


def weight_of(path) -> float:
    model = torch.nn.Linear(1, 1, bias=False)
    load_checkpoint(model, path)
    return model.weight.item()


def test_best_weights_follow_a_sequence_of_validations(tmp_path):
    model = torch.nn.Linear(1, 1, bias=False)
    best = BestWeights(model, tmp_path / "best.pt", patience=3)
    values = [0.1, 0.3, 0.2, 0.3, math.nan, 0.25]
    expected = [  # (best step, best value, stale, out of patience) after each validation
        (10, 0.1, 0, False),
        (20, 0.3, 0, False),
        (20, 0.3, 1, False),
        (20, 0.3, 2, False),  # a tie is no improvement
        (20, 0.3, 3, True),  # nor is NaN
        (20, 0.3, 4, True),
    ]
    for index, (value, state) in enumerate(zip(values, expected, strict=True)):
        step = 10 * (index + 1)
        with torch.no_grad():
            model.weight.fill_(step)  # the weights say which step they are from
        best.update(value, {"dcg@20": value}, step, train_events=100 * step)
        assert (best.step, best.value, best.stale, best.out_of_patience) == state
        assert weight_of(tmp_path / "best.pt") == best.step
    assert best.metrics == {"dcg@20": 0.3} and best.train_events == 2000


def test_without_patience_a_run_never_runs_out_of_it(tmp_path):
    best = BestWeights(torch.nn.Linear(1, 1), tmp_path / "best.pt", patience=None)
    for step, value in enumerate([0.5, 0.4, 0.3, 0.2], start=1):
        best.update(value, {}, step, train_events=step)
    assert (best.step, best.stale, best.out_of_patience) == (1, 3, False)


def fit_with_validation_values(tmp_path, values: list[float], **trainer) -> tuple:
    """fit on 8 tiny sequences (4 batches an epoch, 3 epochs unless `trainer` says) with validations that
    return `values` in turn; returns its FitResult and the (step, epoch) of each history.jsonl entry."""
    settings = OmegaConf.create(
        {
            "epochs": 3,
            "batch_size": BATCH_SIZE,
            "lr": 1e-2,
            "weight_decay": 0.0,
            "adam_betas": [0.9, 0.999],
            "adam_eps": 1e-8,
            "grad_clip_norm": None,
            "eval_every_steps": None,
            "eval_every_epochs": None,
            "select_metric": "dcg@20",
            "patience": None,
            "max_steps": None,
            "validate_at_end": True,
            "bf16": False,
            "compile": False,
            "progress": False,
        }
        | trainer
    )
    generator = torch.Generator().manual_seed(0)
    item_seq = torch.randint(NUM_ITEMS, (SEQUENCES * 4,), generator=generator)
    starts = torch.arange(0, SEQUENCES * 4, 4)
    train = TrainTensors(
        inputs=item_seq.view(SEQUENCES, 4)[:, :3],
        targets=item_seq.view(SEQUENCES, 4)[:, 1:],
        lengths=torch.full((SEQUENCES,), 3),
        item_seq=item_seq,
        sequence_start=starts,
        sequence_end=starts + 4,
    )
    model = ItemEmbeddings()
    catalog = CatalogStats(NUM_ITEMS, torch.ones(NUM_ITEMS))
    parts = TrainingParts.build(model, Softmax(), catalog, settings, torch.device("cpu"), item_seq)
    remaining = iter(values)
    recorder = RunRecorder(tmp_path)
    validation = Validation(lambda: {"dcg@20": next(remaining)}, parts, settings, recorder, lambda *_: None)
    result = fit(parts, train, settings, 0, validation, lambda *_: None)
    assert next(remaining, None) is None, "fewer validations than values"
    history = [json.loads(line) for line in (tmp_path / HISTORY_FILE).read_text().splitlines()]
    return result, [(entry["step"], entry["epoch"]) for entry in history]


def test_validations_on_the_step_cadence_keep_the_first_best(tmp_path):
    result, validated = fit_with_validation_values(tmp_path, [0.1, 0.3, 0.3, 0.2], eval_every_steps=3)
    assert validated == [(3, 0.75), (6, 1.5), (9, 2.25), (12, 3.0)]  # step 12 is on the cadence: no extra
    assert (result.best_step, result.steps, result.stopped_early) == (6, 12, False)
    assert result.best_metrics == {"dcg@20": 0.3} and result.best_train_events == 6 * BATCH_SIZE * 3


@pytest.mark.parametrize("validate_at_end, expected", [(True, [5, 10, 12]), (False, [5, 10])])
def test_the_final_weights_validate_unless_the_protocol_says_not(tmp_path, validate_at_end, expected):
    values = [0.1, 0.2, 0.3][: len(expected)]
    result, validated = fit_with_validation_values(
        tmp_path, values, eval_every_steps=5, validate_at_end=validate_at_end
    )
    assert [step for step, _ in validated] == expected and result.best_step == expected[-1]


def test_patience_stops_after_that_many_validations_without_improvement(tmp_path):
    result, validated = fit_with_validation_values(
        tmp_path, [0.5, 0.6, 0.4, 0.3], epochs=5, eval_every_epochs=1, patience=2
    )
    assert validated == [(4, 1.0), (8, 2.0), (12, 3.0), (16, 4.0)]  # stale 2 after epoch 4: no epoch 5
    assert (result.best_step, result.steps, result.stopped_early, result.epochs) == (8, 16, True, 4.0)


def test_a_stale_final_validation_does_not_count_as_stopping_early(tmp_path):
    result, validated = fit_with_validation_values(tmp_path, [0.1, 0.2, 0.1], eval_every_steps=5, patience=1)
    assert [step for step, _ in validated] == [5, 10, 12]
    assert (result.best_step, result.steps, result.stopped_early) == (10, 12, False)


def test_an_epoch_boundary_on_the_step_cadence_validates_once(tmp_path):
    _, validated = fit_with_validation_values(
        tmp_path, [0.1, 0.2, 0.3], eval_every_steps=4, eval_every_epochs=1
    )
    assert validated == [(4, 1.0), (8, 2.0), (12, 3.0)]


def test_both_cadences_together(tmp_path):
    _, validated = fit_with_validation_values(
        tmp_path, [0.1] * 3, eval_every_steps=5, eval_every_epochs=2, validate_at_end=False
    )
    assert validated == [(5, 1.25), (8, 2.0), (10, 2.5)]  # epoch 2 ends at step 8, off the step cadence


def test_a_run_without_a_cadence_validates_its_final_weights_once(tmp_path):
    result, validated = fit_with_validation_values(tmp_path, [0.2], validate_at_end=False)
    assert validated == [(12, 3.0)] and result.best_step == 12
