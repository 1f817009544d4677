"""Freeze tests/data/model_parity.pt from the model code of the commit this script is committed with.

Run once, before the backbone was split into variants (it imports that commit's flat SasRecBackbone):
    PYTHONPATH=src python tests/data/make_model_parity.py

For every preset's model settings (composed with Hydra, sizes made tiny), with torch.manual_seed(0): the
initial state_dict; then, with the norms and biases perturbed (so that a swapped parameter shows), the
outputs of forward() and last_hidden() in eval mode for every layout the settings allow, of score() on
the last hidden states, and of forward() in training mode under torch.manual_seed(1) (same dropout draws).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import seqrec.config  # noqa: F401  (registers the schema the configs compose with)
from seqrec.model import SasRecBackbone

ROOT = Path(__file__).resolve().parents[2]
SIZES = dict(num_items=30, embedding_dim=8, num_heads=2, num_layers=2, ffn_dim=16, max_seq_len=6)
LENGTHS = torch.tensor([6, 1, 3, 5, 2])
CASES = {  # name -> (overrides composed, extra model settings)
    "sasrec": ([], {}),
    "sasrec_norm_first": ([], {"norm_first": True}),
    "sasrec_forward": ([], {"position_order": "forward"}),
    "seminar": (["experiment=seminar"], {}),
    "two_tower": (["model=two_tower"], {}),
    "pytorch_port": (["experiment=sasrec_original"], {}),
    "tf2_port": (["experiment=ms_recommenders"], {}),
    "keras_port": (["experiment=two_tower"], {}),
}


def model_settings(overrides: list[str]) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    settings = OmegaConf.to_container(cfg.model, resolve=True)
    settings.pop("_target_")
    return settings


def perturb(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                parameter.add_(0.3 * torch.randn_like(parameter))


def main() -> None:
    generator = torch.Generator().manual_seed(7)
    inputs = torch.randint(30, (len(LENGTHS), 6), generator=generator)
    inputs = inputs.masked_fill(torch.arange(6)[None, :] >= LENGTHS[:, None], 0)
    commit = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=ROOT, text=True).strip()
    cases = {}
    for name, (overrides, extra) in CASES.items():
        settings = model_settings(overrides) | SIZES | extra
        torch.manual_seed(0)
        model = SasRecBackbone(**settings)
        initial = {key: value.clone() for key, value in model.state_dict().items()}
        torch.manual_seed(2)
        perturb(model)
        layouts = ["padded"] if settings["attend_padding"] else ["padded", "packed"]
        outputs = {}
        for layout in layouts:
            model.layout = layout
            model.eval()
            with torch.no_grad():
                hidden = model(inputs, LENGTHS)
                last = model.last_hidden(inputs, LENGTHS)
                outputs[layout] = {"forward": hidden, "last_hidden": last, "score": model.score(last)}
            model.train()
            torch.manual_seed(1)
            with torch.no_grad():
                outputs[layout]["train_forward"] = model(inputs, LENGTHS)
        model.layout = settings["layout"]
        cases[name] = {
            "settings": settings,
            "initial_state": initial,
            "state": {key: value.clone() for key, value in model.state_dict().items()},
            "outputs": outputs,
        }
    fixture = {"commit": commit, "inputs": inputs, "lengths": LENGTHS, "cases": cases}
    torch.save(fixture, ROOT / "tests" / "data" / "model_parity.pt")


if __name__ == "__main__":
    main()
