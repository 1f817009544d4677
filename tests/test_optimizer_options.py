"""trainer.adam_betas / trainer.adam_eps reach the optimizer; impossible values fail before any data."""

from __future__ import annotations

import pytest
import torch

from helpers import SMOKE, run_in_process
from seqrec.train import make_optimizer


def test_make_optimizer_uses_the_given_betas_and_eps():
    parameter = torch.nn.Parameter(torch.zeros(3))
    optimizer = make_optimizer([parameter], 1e-3, 0.0, torch.device("cpu"), (0.9, 0.98), 1e-7)
    group = optimizer.param_groups[0]
    assert group["betas"] == (0.9, 0.98) and group["eps"] == 1e-7 and group["lr"] == 1e-3


def test_config_values_reach_the_optimizer(tmp_path, monkeypatch):
    built = []
    real_adam = torch.optim.Adam

    def recording_adam(*args, **kwargs):
        built.append(kwargs)
        return real_adam(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", recording_adam)
    run_in_process([*SMOKE, "loss=bce", "trainer.adam_betas=[0.8,0.98]", "trainer.adam_eps=1e-7"], tmp_path)
    assert [(kwargs["betas"], kwargs["eps"]) for kwargs in built] == [((0.8, 0.98), 1e-7)]


@pytest.mark.parametrize(
    "override", ["trainer.adam_betas=[0.9]", "trainer.adam_betas=[0.9,1.0]", "trainer.adam_eps=0"]
)
def test_impossible_adam_settings_name_the_key(tmp_path, override):
    key = override.split("=")[0]
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        run_in_process([*SMOKE, "loss=bce", override], tmp_path)
