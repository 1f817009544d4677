"""What a run's results depend on besides the objective: its protocol and its test set, as fingerprints.

Two runs may share a table row, a paired test or a verdict only when both fingerprints agree:
- the **protocol** fingerprint hashes `protocol_settings`: the data (the source's own `fingerprint()`,
  without where the file lies), every dataset setting that changes the data, the preprocessing, the split,
  the evaluation, the model's input length and the training budget (the keys are listed below, in one
  place). The objective and its hyperparameters, the seed and bookkeeping (paths, logging, progress,
  device, batch sizes that do not change results) stay out: they are what a comparison varies or ignores;
- the **test-set** fingerprint hashes the (original user id, original target item id) pairs of the test
  samples (sorted, repeats kept), so two runs that claim the same protocol but evaluated other samples are
  told apart.

Run records written before fingerprints existed get the protocol fingerprint from their recorded config
(the data then named by `dataset.path` only) and the test-set one from their `test_ranks.parquet`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

import polars as pl

# Config sections whose every key is protocol, except the listed ones.
PROTOCOL_SECTIONS: dict[str, tuple[str, ...]] = {
    # where the file lies, where it is cached, where it is downloaded from, how it is verified; the data's
    # identity is the source fingerprint ("data" below)
    "dataset": ("path", "cache_dir", "url", "checksum"),
    "preprocess": (),
    "split": (),
    "evaluation": ("batch_size", "max_scores"),  # evaluation memory bounds: the same results
}
# Single protocol keys of other sections: the model's input length and the training budget (how long, how
# often validated, on what the best weights are picked, when training stops early).
PROTOCOL_KEYS: tuple[str, ...] = (
    "model.max_seq_len",
    "trainer.epochs",
    "trainer.max_steps",
    "trainer.patience",
    "trainer.eval_every_steps",
    "trainer.eval_every_epochs",
    "trainer.validate_at_end",
    "trainer.select_metric",
)
# Config groups whose chosen option is part of a protocol derived from an old record (its config may lack
# the keys that tell the options apart).
PROTOCOL_CHOICES: tuple[str, ...] = ("dataset", "split", "evaluation")
# Bookkeeping: keys that never change what a run computes (where the data lies and is cached, the run's
# name, logging, progress bars, the device, Hydra's own settings), each with every key under it. The one
# list that variant labels (seqrec.compare.runs), the check that compared runs share a setup
# (seqrec.compare.table) and sweep run-folder names (seqrec.run_names) leave out.
BOOKKEEPING_KEYS: tuple[str, ...] = (
    "dataset.path",
    "cache_dir",
    "name",
    "logger",
    "trainer.progress",
    "trainer.device",
    "hydra",
)
DATA_KEY = "data"  # the source's fingerprint, without the file's location
UNSET = "(unset)"

_LOCATION = re.compile(r"\bpath=.*?(?= [a-z_]+=|$)\s?")


def data_identity(source_fingerprint: str) -> str:
    """The source fingerprint without `path=...`: where a file lies is bookkeeping, what it holds is not
    (the rest names its size and a hash of its bytes, and the reading options)."""
    return _LOCATION.sub("", source_fingerprint).strip()


def is_under(key: str, names: Sequence[str]) -> bool:
    """`key` is one of `names` or lies under one: `logger.mode` and a choice `hydra/launcher` lie under
    `logger` and `hydra`, `experiment_loss@loss` (a group's package) under `experiment_loss`."""
    return any(key == name or key.startswith((f"{name}.", f"{name}/", f"{name}@")) for name in names)


def _value(config: dict, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return UNSET
        value = value[part]
    return value


def protocol_settings(
    config: dict, source_fingerprint: str | None, choices: dict | None = None
) -> dict[str, Any]:
    """The settings that make up the protocol, flat and sorted: {"data": ..., "evaluation.ks": [5, 10, 20],
    "split._target_": "seqrec.data.splits.TimeSplit", "trainer.epochs": 100, ...}. `config` is a resolved
    run config; `source_fingerprint` the dataset source's `fingerprint()`, None for records that lack it
    (the data is then named by its path: its content was not recorded, and the `choices` of the protocol's
    config groups count too)."""
    settings: dict[str, Any] = {}
    for section, excluded in PROTOCOL_SECTIONS.items():
        node = config.get(section)
        for key, value in node.items() if isinstance(node, dict) else ():
            if key not in excluded:
                settings[f"{section}.{key}"] = value
    for key in PROTOCOL_KEYS:
        settings[key] = _value(config, key)
    if source_fingerprint is not None:
        settings[DATA_KEY] = data_identity(source_fingerprint)
    else:
        settings[DATA_KEY] = f"not recorded; dataset.path={_value(config, 'dataset.path')}"
        for group in PROTOCOL_CHOICES if choices is not None else ():
            settings[f"choices.{group}"] = choices.get(group, UNSET)
    return dict(sorted(settings.items()))


def digest(settings: dict[str, Any]) -> str:
    """sha256 hex of the settings as canonical JSON."""
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def test_set_fingerprint(users: Sequence | pl.Series, items: Sequence | pl.Series) -> str:
    """sha256 hex of the (user, target item) pairs, each id as its text (integer ids and the same ids read
    as strings give one fingerprint), sorted: the same samples in another file order are the same test set
    (paired tests join them by key). users, items: [S] original ids."""
    pairs = pl.DataFrame({"user": pl.Series(users), "item": pl.Series(items)})
    # unit and record separators: characters no id file uses, so pairs cannot run into each other
    text = pairs.select(
        pl.concat_str([pl.col("user").cast(pl.String), pl.col("item").cast(pl.String)], separator="\x1f")
        .sort()
        .str.join("\x1e")
        .fill_null("")
    ).item()
    return hashlib.sha256((text or "").encode()).hexdigest()


def run_fingerprints(config: dict, source_fingerprint: str | None, users, items) -> dict[str, Any]:
    """The `fingerprints` entry of run.json."""
    settings = protocol_settings(config, source_fingerprint)
    return {
        "protocol": digest(settings),
        "protocol_settings": settings,
        "test_set": test_set_fingerprint(users, items),
        "test_samples": len(users),
    }
