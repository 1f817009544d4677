"""Users through the pipeline, for models with user embeddings (model=ssept).

A user's dense id is the log's user id: 0..num_users-1 in every log that load_log builds, in the log's
user order, which is also the row order of a saved model's histories.parquet. Training rows carry it
(SplitData.train_user -> TrainTensors.users -> TrainBatch.users), evaluation samples carry it
(EvalSamples.user, handed to the score function), and the saved model's users are its rows.

A model class whose constructor has a `num_users` parameter gets the log's user count at build time,
like `num_items`; every other model ignores users.
"""

from __future__ import annotations

import inspect

from hydra.utils import get_object


def takes_users(model_cfg) -> bool:
    """Whether the model class named by the config's `_target_` has a `num_users` parameter (False for a
    target that does not resolve: building the model then reports it)."""
    try:
        target = get_object(model_cfg["_target_"])
    except Exception:
        return False
    return "num_users" in inspect.signature(target).parameters


def model_sizes(model_cfg, num_items: int, num_users: int) -> dict:
    """The data-given constructor arguments of a model config: num_items, and num_users where it takes it."""
    sizes = {"num_items": num_items}
    if takes_users(model_cfg):
        sizes["num_users"] = num_users
    return sizes
