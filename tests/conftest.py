"""Shared fixtures: a factory for random ObjectiveInput batches, a spy on helper functions, an isolated
Jupyter kernel (the functions that tests import are in helpers.py)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from seqrec.losses.base import CatalogStats, ObjectiveInput


def make_objective_input(
    num_items: int = 12,
    lengths: Sequence[int] = (5, 3, 4),
    dim: int = 6,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    positives: torch.Tensor | None = None,
    item_counts: torch.Tensor | None = None,
) -> ObjectiveInput:
    """A random batch: right-padded sequences of the given lengths, one supervised position per real
    item (row-major), leaf queries [N, D] and item_embeddings [I, D] that require grad."""
    generator = torch.Generator().manual_seed(seed)
    lengths_tensor = torch.tensor(lengths, dtype=torch.long)
    max_len = int(lengths_tensor.max())
    sequences = torch.randint(num_items, (len(lengths), max_len), generator=generator)
    sequences[torch.arange(max_len)[None, :] >= lengths_tensor[:, None]] = 0
    rows = torch.repeat_interleave(torch.arange(len(lengths)), lengths_tensor)
    if positives is None:
        positives = torch.randint(num_items, (len(rows),), generator=generator)
    if item_counts is None:
        item_counts = torch.randint(1, 10, (num_items,), generator=generator).float()
    queries = torch.randn(len(rows), dim, generator=generator).to(dtype).requires_grad_()
    item_embeddings = torch.randn(num_items, dim, generator=generator).to(dtype).requires_grad_()
    return ObjectiveInput(
        queries=queries,
        positives=positives,
        rows=rows,
        sequences=sequences,
        lengths=lengths_tensor,
        item_embeddings=item_embeddings,
        catalog=CatalogStats(num_items, item_counts),
    )


@pytest.fixture
def make_input():
    """The `make_objective_input` factory."""
    return make_objective_input


@pytest.fixture
def spy(monkeypatch):
    """spy(owner, name) wraps owner.name so every return value is appended to the returned list;
    tests use it to read the random draws an objective made and feed them to a reference."""

    def install(owner, name: str) -> list:
        returned = []
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            result = real(*args, **kwargs)
            returned.append(result)
            return result

        monkeypatch.setattr(owner, name, wrapper)
        return returned

    return install


@pytest.fixture
def isolated_jupyter(tmp_path: Path, monkeypatch) -> Path:
    """A python3 kernelspec for this interpreter (the venv) in tmp_path; nothing in the user's home."""
    jupyter = tmp_path / "jupyter"
    spec_dir = jupyter / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (seqrec tests)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(jupyter))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jupyter_config"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter_runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend: figures as PNG outputs
    return spec_dir
