"""A whole seqrec run on an ~800,000-item catalog: peak memory and evaluation samples/s.

    python benchmarks/large_catalog.py                       # CPU, softmax, 2 training steps
    python benchmarks/large_catalog.py --device cuda --batch-size 256

The data: a synthetic log of 1,500 users with ~2,000 events each (~3M events) over 842,000 items drawn
uniformly (so that ~800,000 of them occur), no k-core filtering of items, leave-one-out split (1,500
validation and 1,500 test samples). The run (`run.py`, in its own process) prepares the data, trains the
softmax objective for a few steps, validates, tests and scores the generator's oracle, every evaluation over
the full catalog. Printed from its run record: the catalog, the peak memory of the whole run (CPU: peak
RSS; CUDA: peak allocated), the time of each stage and the test evaluation's samples/s. As in bench.py,
the run gets OMP_WAIT_POLICY=PASSIVE unless the environment sets it (`--omp-wait-policy inherit`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = [
    "dataset=synthetic",
    "dataset.num_users=1500",
    "dataset.num_items=842000",
    "dataset.mean_length=2000",
    "dataset.min_length=100",
    "dataset.max_length=20000",
    "dataset.popularity_exponent=0",
    "preprocess.item_core=1",
    "split=loo",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--loss", default="softmax")
    parser.add_argument("--steps", type=int, default=2, help="training steps")
    parser.add_argument("--batch-size", type=int, default=16, help="training sequences per step")
    parser.add_argument(
        "--omp-wait-policy", default="passive", help="OMP_WAIT_POLICY of the run, or `inherit`"
    )
    parser.add_argument(
        "overrides", nargs="*", help="further run.py overrides, e.g. evaluation.max_scores=..."
    )
    args = parser.parse_args()
    if args.omp_wait_policy != "inherit":
        os.environ.setdefault("OMP_WAIT_POLICY", args.omp_wait_policy.upper())

    overrides = [
        *DATA,
        f"loss={args.loss}",
        f"trainer.device={args.device}",
        f"trainer.max_steps={args.steps}",
        f"trainer.batch_size={args.batch_size}",
        f"trainer.eval_every_steps={args.steps}",
        "trainer.progress=false",
        "logger=none",
        "cache_dir=null",
        *args.overrides,
    ]
    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    print(f"OMP_WAIT_POLICY={policy} python run.py " + " ".join(overrides), flush=True)
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.perf_counter()
        command = [sys.executable, str(REPO / "run.py"), *overrides, f"hydra.run.dir={run_dir}"]
        subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        record = json.loads((Path(run_dir) / "run.json").read_text())

    stats, timings = record["dataset_stats"], record["timings"]
    print(
        f"catalog: {stats['items']:,} items, {stats['interactions']:,} events, "
        f"{stats['valid_samples']:,} validation and {stats['test_samples']:,} test samples"
    )
    print(f"peak memory: {timings['peak_memory_bytes'] / 2**30:.2f} GiB ({record['device']})")
    print(
        f"time: {wall:.0f} s in all; data {timings['data_seconds']:.0f} s, training "
        f"{timings['train_seconds']:.0f} s ({args.steps} steps), evaluation {timings['eval_seconds']:.0f} s"
    )
    print(f"test evaluation: {timings['test_samples_per_second']:,.0f} samples/s over the full catalog")


if __name__ == "__main__":
    main()
