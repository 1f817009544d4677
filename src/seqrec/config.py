"""Config schema (Hydra ConfigStore) and the value checks that run before any data is read.

Groups whose options name a `_target_` (dataset, split, model, loss, evaluation, logger) are checked by
their classes' constructors; the plain sections (trainer, preprocess) are typed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from seqrec.data.preprocess import DUPLICATE_POLICIES, KCORE_ORDERS


@dataclass
class PreprocessConfig:
    min_rating: float | None = None
    duplicates: str = "keep"
    user_core: int = 5
    item_core: int = 5
    kcore_passes: int | None = None
    kcore_order: str = "together"


@dataclass
class TrainerConfig:
    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-8
    grad_clip_norm: float | None = None
    eval_every_steps: int | None = 64
    eval_every_epochs: int | None = None
    select_metric: str = "dcg@20"
    patience: int | None = None
    max_steps: int | None = None
    validate_at_end: bool = True
    device: str = "auto"
    bf16: bool = True
    compile: bool = False
    progress: bool = True


@dataclass
class ModelConfig:
    _target_: str = "seqrec.model.SasRecBackbone"
    num_items: int = MISSING
    embedding_dim: int = 64
    num_heads: int = 2
    num_layers: int = 2
    ffn_dim: int = 256
    dropout: float = 0.1
    max_seq_len: int = 200
    norm_first: bool = False
    position_order: str = "backward"
    norm_keys_values: bool = True
    residual_from_norm: bool = False
    ffn_norm: bool = True
    norm_per_position: bool = False
    layer_norm_eps: float = 1e-5
    activation: str = "gelu"
    attention_out_projection: bool = True
    attention_output_dropout: bool = True
    embedding_dropout: float = 0.0
    scale_item_embeddings: bool = False
    attend_padding: bool = False
    init: str = "trunc_normal"


@dataclass
class SeqrecConfig:
    dataset: Any = MISSING
    split: Any = MISSING
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    evaluation: Any = MISSING
    logger: Any = MISSING
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    seed: int = 0
    cache_dir: str | None = None
    name: str = "run"


ConfigStore.instance().store(name="seqrec_schema", node=SeqrecConfig)

DEVICES = ("auto", "cpu", "cuda")


def check_config(cfg: DictConfig) -> None:
    """Reject impossible values of the typed sections, naming the key and what to do."""
    trainer, preprocess = cfg.trainer, cfg.preprocess
    problems = []

    def at_least(section: str, key: str, value: Any, low: float, optional: bool = False) -> None:
        if value is None and optional:
            return
        if value is None or value < low:
            problems.append(f"{section}.{key} must be >= {low}, got {value}")

    for key in ("epochs", "batch_size"):
        at_least("trainer", key, trainer[key], 1)
    for key in ("eval_every_steps", "eval_every_epochs", "patience", "max_steps"):
        at_least("trainer", key, trainer[key], 1, optional=True)
    if trainer.lr <= 0:
        problems.append(f"trainer.lr must be > 0, got {trainer.lr}")
    at_least("trainer", "weight_decay", trainer.weight_decay, 0)
    betas = list(trainer.adam_betas)
    if len(betas) != 2 or not all(0.0 <= beta < 1.0 for beta in betas):
        problems.append(f"trainer.adam_betas must be two numbers in [0, 1), got {betas}")
    if trainer.adam_eps <= 0:
        problems.append(f"trainer.adam_eps must be > 0, got {trainer.adam_eps}")
    if trainer.grad_clip_norm is not None and trainer.grad_clip_norm <= 0:
        problems.append(f"trainer.grad_clip_norm must be > 0 or null, got {trainer.grad_clip_norm}")
    if trainer.eval_every_steps is None and trainer.eval_every_epochs is None:
        problems.append(
            "set trainer.eval_every_steps or trainer.eval_every_epochs: best weights need validation"
        )
    if trainer.device not in DEVICES:
        problems.append(f"trainer.device must be one of {DEVICES}, got {trainer.device!r}")
    if trainer.device == "cuda" and not torch.cuda.is_available():
        problems.append("trainer.device=cuda but no CUDA device is visible; use trainer.device=auto or cpu")
    if preprocess.duplicates not in DUPLICATE_POLICIES:
        problems.append(
            f"preprocess.duplicates must be one of {DUPLICATE_POLICIES}, got {preprocess.duplicates!r}"
        )
    for key in ("user_core", "item_core"):
        at_least("preprocess", key, preprocess[key], 1)
    at_least("preprocess", "kcore_passes", preprocess.kcore_passes, 1, optional=True)
    if preprocess.kcore_order not in KCORE_ORDERS:
        order = preprocess.kcore_order
        problems.append(f"preprocess.kcore_order must be one of {KCORE_ORDERS}, got {order!r}")
    if problems:
        raise ValueError("invalid config:\n  " + "\n  ".join(problems))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
