"""Every model variant computes what the flat SasRecBackbone computed before the reference ports became
variants: the same initial weights under the same seed (every preset trains the same weights), and with the
same weights the same outputs of forward(), last_hidden() and score() in every layout, and of a training
forward() under the same seed (the same dropout draws).

tests/data/model_parity.pt was made from the model code of the commit it names (FIXTURE["commit"]) by
tests/data/make_model_parity.py, which imported that code's flat SasRecBackbone and was removed when the
variants replaced it (`git log --diff-filter=A -- tests/data/model_parity.pt` names the commit that added
both). For each preset's model settings composed with Hydra,
sizes made tiny (30 items, d=8, 2 heads, 2 layers, ffn 16, max_seq_len 6), torch.manual_seed(0), the old
SasRecBackbone's initial state_dict; then the norms and biases perturbed, and the outputs for a batch of 5
rows of lengths 6, 1, 3, 5, 2 in each layout the settings allowed (padded, packed; the left-padded window).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seqrec.models.legacy import upgrade_model_config

FIXTURE = torch.load(Path(__file__).parent / "data" / "model_parity.pt", weights_only=True)
CASES = FIXTURE["cases"]


def build(name: str, layout: str | None = None) -> torch.nn.Module:
    from hydra.utils import instantiate

    config = upgrade_model_config(CASES[name]["settings"] | {"_target_": "seqrec.model.SasRecBackbone"})
    if layout is not None and "layout" in config:
        config["layout"] = layout
    torch.manual_seed(0)
    return instantiate(config)


@pytest.mark.parametrize("name", CASES)
def test_the_same_seed_gives_the_same_initial_weights(name):
    state, expected = build(name).state_dict(), CASES[name]["initial_state"]
    assert list(state) == list(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


LAYOUTS = [(name, layout) for name, case in CASES.items() for layout in case["outputs"]]


@pytest.mark.parametrize(("name", "layout"), LAYOUTS)
def test_the_same_weights_give_the_same_outputs(name, layout):
    model = build(name, layout)
    model.load_state_dict(CASES[name]["state"])
    model.layout = layout
    inputs, lengths, expected = FIXTURE["inputs"], FIXTURE["lengths"], CASES[name]["outputs"][layout]
    real = torch.arange(inputs.shape[1])[None, :] < lengths[:, None]
    with torch.no_grad():
        model.eval()
        last = model.last_hidden(inputs, lengths)
        torch.testing.assert_close(model(inputs, lengths)[real], expected["forward"][real])
        torch.testing.assert_close(last, expected["last_hidden"])
        torch.testing.assert_close(model.score(last), expected["score"])
        users = torch.arange(len(lengths))  # the interface's user ids, which SASRec variants ignore
        assert torch.equal(model.last_hidden(inputs, lengths, users), last)
        assert torch.equal(model.score(last, users), model.score(last))
        model.train()
        torch.manual_seed(1)
        torch.testing.assert_close(model(inputs, lengths)[real], expected["train_forward"][real])
