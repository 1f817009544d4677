"""Checks that a run's files agree with each other before a comparison trusts them.

A `test_ranks.parquet` copied from another run (or from another test set) would change every paired
test while the table, read from run.json, stays the same. So the ranks must reproduce the run's own
recorded test metrics (dcg@k and hitrate@k are functions of the ranks alone) and, where run.json records
a test-set fingerprint, hold exactly those (user, item) pairs.
"""

from __future__ import annotations

import polars as pl

from seqrec.fingerprints import test_set_fingerprint
from seqrec.sample_metrics import metric_from_ranks

# run.json stores float metrics from float32/float64 means; a real mismatch (other ranks) is far larger.
ABSOLUTE_TOLERANCE = 1e-5
RELATIVE_TOLERANCE = 1e-4


def ranks_mismatch(ranks: pl.DataFrame, recorded: dict[str, float]) -> str | None:
    """Why the ranks do not give the recorded test metrics ("dcg@10 is 0.0412 from the ranks but 0.0730 in
    run.json"), or None when every rank-based metric agrees."""
    rank_values = ranks["rank"].to_numpy()
    for name, value in recorded.items():
        from_ranks = metric_from_ranks(name, rank_values)
        if from_ranks is None or value is None:
            continue
        if abs(from_ranks - float(value)) > ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * abs(float(value)):
            return f"{name} is {from_ranks:.4f} from the ranks but {float(value):.4f} in run.json"
    return None


def ranks_test_set(ranks: pl.DataFrame) -> str:
    """The test-set fingerprint of the (user, item) pairs a ranks file holds, in its row order."""
    return test_set_fingerprint(ranks["user"], ranks["item"])
