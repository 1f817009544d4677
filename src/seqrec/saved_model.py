"""A completed run's saved model: everything needed to use it without the training data or its config.

RUN_DIR/model/ holds
- model.json: the format, seqrec's version, the resolved model config, the similarity, how the run's
  evaluation scored (exclusion rule, batch size, bf16), the catalog size and what the histories cover;
- weights.pt: the best weights as a state_dict (a hard link to RUN_DIR/best.pt where the file system
  allows), read with torch.load(weights_only=True), the only unpickling;
- items.parquet: the catalog order: row i is dense item id i, column `item` its original id;
- histories.parquet: one row per user: `user` (original id) and `items` (the dense item ids of all of
  the user's events in the filtered log, in time order), for exclude_seen and `--users all`; row u is
  the dense user id u that a model with user embeddings (model=ssept) was trained with.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from seqrec.errors import UserError
from seqrec.files import atomic_path

MODEL_DIR = "model"
MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.pt"
ITEMS_FILE = "items.parquet"
HISTORIES_FILE = "histories.parquet"
MODEL_FORMAT = 1
"""Bump when the folder's layout changes; load refuses folders of a newer format."""

HISTORIES_COVER = "all events of the filtered log (training, validation and test), per user in time order"


class SavedModelError(UserError, ValueError):
    """A run folder without a usable saved model (the message says why and what to do)."""


def _id_series(name: str, ids: np.ndarray) -> pl.Series:
    if np.asarray(ids).dtype.kind in "iu":
        return pl.Series(name, np.asarray(ids), dtype=pl.Int64)
    return pl.Series(name, [str(value) for value in ids], dtype=pl.String)


def user_blocks(log) -> tuple[np.ndarray, np.ndarray]:
    """The users of an InteractionLog in its order, with their original ids [U] and event counts [U]:
    user u's events are the next counts[u] entries of SplitData.item_seq (which follows the log's order)."""
    users = log.events["user"].to_numpy()
    starts = np.flatnonzero(np.concatenate([[True], users[1:] != users[:-1]]))
    counts = np.diff(np.append(starts, len(users)))
    block_users = users[starts]
    return (block_users if log.user_ids is None else log.user_ids[block_users]), counts


def save_model(
    run_dir: Path,
    weights_path: Path,
    model: torch.nn.Module,
    cfg,
    item_seq: torch.Tensor,
    users: tuple[np.ndarray, np.ndarray],
    item_ids: np.ndarray,
    trained_on: str,
) -> Path:
    """Write RUN_DIR/model/ for `model` (its weights already saved at `weights_path`).

    cfg: the run's config (model, evaluation, trainer.bf16 are read); item_seq: SplitData.item_seq [E];
    users: user_blocks(log); item_ids: the original id of each dense item id; trained_on: which events
    trained the weights (said in model.json).
    """
    folder = Path(run_dir) / MODEL_DIR
    with atomic_path(folder) as tmp:  # a run that fails here keeps no half-written model
        tmp.mkdir()
        _write_model_files(tmp, weights_path, model, cfg, item_seq, users, item_ids, trained_on)
    return folder


def _write_model_files(tmp: Path, weights_path, model, cfg, item_seq, users, item_ids, trained_on) -> None:
    from omegaconf import OmegaConf

    import seqrec

    try:
        os.link(weights_path, tmp / WEIGHTS_FILE)
    except OSError:
        shutil.copyfile(weights_path, tmp / WEIGHTS_FILE)
    pl.DataFrame([_id_series("item", item_ids)]).write_parquet(tmp / ITEMS_FILE)
    user_ids, counts = users
    histories = (
        pl.DataFrame({"row": np.repeat(np.arange(len(counts)), counts), "items": item_seq.cpu().numpy()})
        .group_by("row", maintain_order=True)
        .agg(pl.col("items"))
        .select(_id_series("user", user_ids), pl.col("items"))
    )
    histories.write_parquet(tmp / HISTORIES_FILE)
    evaluation = OmegaConf.to_container(cfg.evaluation, resolve=True)
    info = {
        "format": MODEL_FORMAT,
        "seqrec_version": seqrec.__version__,
        "model_config": OmegaConf.to_container(cfg.model, resolve=True) | _data_sizes(model, len(item_ids)),
        "num_items": len(item_ids),
        "similarity": getattr(model, "similarity", "dot"),
        "item_id_type": "int" if np.asarray(item_ids).dtype.kind in "iu" else "string",
        "user_id_type": "int" if histories.schema["user"] == pl.Int64 else "string",
        "scoring": {
            "protocol": str(evaluation.get("_target_", "")).rsplit(".", 1)[-1],  # e.g. FullCatalog
            "exclude_seen": bool(evaluation.get("exclude_seen", False)),
            "ks": [int(k) for k in evaluation.get("ks", [20])],
            "batch_size": int(evaluation.get("batch_size", 256)),
            "max_scores": int(evaluation.get("max_scores", 2**26)),
            "bf16": bool(cfg.trainer.bf16),
        },
        "trained_on": trained_on,
        "histories": HISTORIES_COVER,
    }
    (tmp / MODEL_FILE).write_text(json.dumps(info, indent=2))


def _data_sizes(model, num_items: int) -> dict:
    """The constructor arguments the data gave the model: num_items, and num_users for a model with user
    embeddings (its users are the rows of histories.parquet)."""
    sizes = {"num_items": num_items}
    if getattr(model, "num_users", None) is not None:
        sizes["num_users"] = int(model.num_users)
    return sizes


@dataclass(frozen=True)
class SavedModelFiles:
    """The saved model of a run, read from disk (weights not yet loaded)."""

    folder: Path
    run_dir: Path | None
    info: dict
    item_ids: np.ndarray
    history_users: np.ndarray
    histories: list[np.ndarray]

    @property
    def weights_path(self) -> Path:
        return self.folder / WEIGHTS_FILE


def model_folder(path: str | Path) -> Path:
    """RUN_DIR/model for a run folder, or the model folder itself; SavedModelError saying what is missing."""
    path = Path(path)
    if (path / MODEL_FILE).exists():
        return path
    if (path / MODEL_DIR / MODEL_FILE).exists():
        return path / MODEL_DIR
    if not path.is_dir():
        raise SavedModelError(f"{path} is not a folder; pass a run folder (outputs/DATE/TIME-NAME)")
    run_json = path / "run.json"
    if not run_json.exists():
        raise SavedModelError(
            f"{path} holds no seqrec run (no run.json, no {MODEL_DIR}/{MODEL_FILE}); pass a run folder"
        )
    try:
        record = json.loads(run_json.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SavedModelError(
            f"{run_json} is not readable JSON ({error}); the run folder is damaged"
        ) from None
    status = record.get("status")
    if status != "completed":
        raise SavedModelError(
            f"{path} is a run with status {status!r}: only completed runs save a model; "
            "use a completed run or train again"
        )
    raise SavedModelError(
        f"{path} has no saved model ({MODEL_DIR}/{MODEL_FILE}): it was recorded by an older seqrec, before "
        "runs saved their model; train it again with this version (its overrides: "
        f"{path / '.hydra' / 'overrides.yaml'})"
    )


def read_saved_model(path: str | Path) -> SavedModelFiles:
    """The files of the saved model in a run folder (or its model/ folder)."""
    folder = model_folder(path)
    try:
        info = json.loads((folder / MODEL_FILE).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SavedModelError(
            f"{folder / MODEL_FILE} is not readable JSON ({error}); save it again"
        ) from None
    found = info.get("format")
    if not isinstance(found, int) or found > MODEL_FORMAT:
        raise SavedModelError(
            f"{folder} was saved by seqrec {info.get('seqrec_version', '?')} in model format {found!r}; this "
            f"seqrec reads format {MODEL_FORMAT} and older: upgrade seqrec (pip install -U seqrec)"
        )
    missing = [name for name in (WEIGHTS_FILE, ITEMS_FILE, HISTORIES_FILE) if not (folder / name).exists()]
    if missing:
        raise SavedModelError(f"{folder} lacks {', '.join(missing)}; the saved model is incomplete")
    item_column = pl.read_parquet(folder / ITEMS_FILE)["item"]
    histories = pl.read_parquet(folder / HISTORIES_FILE)
    if item_column.len() != info["num_items"]:
        raise SavedModelError(
            f"{folder / ITEMS_FILE} lists {item_column.len()} items but {MODEL_FILE} says "
            f"{info['num_items']}; the saved model is damaged"
        )
    run_dir = folder.parent if (folder.parent / "run.json").exists() else None
    return SavedModelFiles(
        folder=folder,
        run_dir=run_dir,
        info=info,
        item_ids=_ids(item_column),
        history_users=_ids(histories["user"]),
        histories=[np.asarray(items, dtype=np.int64) for items in histories["items"].to_list()],
    )


def _ids(column: pl.Series) -> np.ndarray:
    """int64 for integer ids, an object array of str for string ids (as InteractionLog holds them)."""
    if column.dtype == pl.String:
        return np.array(column.to_list(), dtype=object)
    return column.to_numpy().astype(np.int64)
