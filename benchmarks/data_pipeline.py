"""Data pipeline speed at MovieLens-1M size: synthetic generation and preprocessing of one million events.

    python benchmarks/data_pipeline.py [--repeats 3]

Prints the median seconds of each stage (the tests check what these stages compute, not how fast).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import polars as pl

from seqrec.data.preprocess import preprocess
from seqrec.data.synthetic import SyntheticSource


def _median_seconds(work, repeats: int) -> tuple[float, object]:
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    source = SyntheticSource(num_users=6000, num_items=3500, mean_length=170.0)
    seconds, log = _median_seconds(source.load, repeats)
    print(f"synthetic generation: {log.height:,} events in {seconds:.2f} s (median of {repeats})")
    rng = np.random.default_rng(0)
    n = 1_000_000
    raw = pl.DataFrame(
        {
            "user": rng.integers(0, 6000, n),
            "item": (rng.pareto(1.0, n) * 50).astype(np.int64),
            "timestamp": rng.integers(0, 10**9, n),
            "rating": rng.integers(1, 6, n).astype(np.float64),
        }
    )
    for duplicates in ("keep", "first"):
        seconds, result = _median_seconds(
            lambda d=duplicates: preprocess(raw, duplicates=d, min_rating=2.0), repeats
        )
        print(
            f"preprocess 1M rows (duplicates={duplicates}, 5-core): "
            f"{result.events.height:,} kept in {seconds:.2f} s"
        )


if __name__ == "__main__":
    main()
