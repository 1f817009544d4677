"""seqrec next to a plain implementation of the protocol (benchmarks/plain.py), side by side.

    python benchmarks/bench.py                                 # every objective, dataset and visible device
    python benchmarks/bench.py --devices cuda --rounds 5 --output benchmarks/gpu.md

For each device, dataset and objective, seqrec and the plain implementation train and evaluate on the same
split with the same settings (the protocol's: d=64, 2 heads, 2 layers, max_seq_len 200, dropout 0.1, batch
256, Adam 1e-3; full-catalog evaluation of validation samples). Each runs in its own process (so that
seqrec's process-wide CPU allocator setting does not speed up the plain one); the two take turns, round by
round, so that both see the same machine load. Printed: each one's median throughput and the median over
rounds of seqrec's ratio, for training events/s (supervised positions) and evaluation samples/s.

Both processes get OMP_WAIT_POLICY=PASSIVE unless the environment sets it (`--omp-wait-policy inherit`
keeps the library default): when other processes occupy the cores, OpenMP threads that spin while waiting
for a descheduled partner slow every parallel operation down, the more so the more operations a step has
(measured with 2 threads beside a busy process: seqrec 5x slower than with 1 thread, the plain one 1.5x).

Datasets: ml-100k (GroupLens MovieLens-100K's u.data: `--ml-100k PATH` or $SEQREC_ML100K; skipped with a
message if absent) and synthetic-1m (MovieLens-1M-sized synthetic log: 6,040 users, 3,706 items, ~1M events).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from plain import PlainRun

from seqrec.app import prepare_data
from seqrec.config import resolve_device
from seqrec.data.batches import TrainBatches, pack_train_sequences, train_item_counts
from seqrec.data.types import EvalSamples, SplitData
from seqrec.losses.base import CatalogStats
from seqrec.records import cpu_name
from seqrec.stats import compose_config
from seqrec.train import (
    TrainingParts,
    autocast_for,
    device_sync,
    make_optimizer,
    prepare_device,
    training_step,
)

# The GroupLens file beside the checkout, as the tests find it; SEQREC_ML100K points elsewhere.
ML_100K = Path(
    os.environ.get("SEQREC_ML100K", Path(__file__).resolve().parents[2] / "shared/data/ml-100k/u.data")
)
SYNTHETIC_1M = [
    "dataset=synthetic",
    "dataset.num_users=6040",
    "dataset.num_items=3706",
    "dataset.mean_length=165",
    "dataset.max_length=2000",
]


def dataset_overrides(dataset: str, ml_100k: Path) -> list[str]:
    if dataset == "ml-100k":
        return ["dataset=ml-100k", f"dataset.path={ml_100k}"]
    if dataset == "synthetic-1m":
        return SYNTHETIC_1M
    raise SystemExit(f"unknown dataset {dataset!r}: use ml-100k or synthetic-1m")


class SeqrecRun:
    """seqrec's training step and evaluation protocol on one split, as `seqrec.app` runs them."""

    def __init__(self, split: SplitData, loss: str, device: torch.device):
        cfg = compose_config([f"loss={loss}", "cache_dir=null"])
        self.max_seq_len, self.num_items = cfg.model.max_seq_len, split.num_items
        train = pack_train_sequences(split, self.max_seq_len).to(device)
        self.catalog = CatalogStats(split.num_items, train_item_counts(train, split.num_items))
        self.item_seq, self.valid, self.device = split.item_seq.to(device), split.valid, device
        torch.manual_seed(0)
        self.model = instantiate(cfg.model, num_items=split.num_items).to(device)
        self.objective = instantiate(cfg.loss).to(device)
        self.evaluation = instantiate(cfg.evaluation)
        params = [*self.model.parameters(), *self.objective.parameters()]
        trainer = cfg.trainer
        optimizer = make_optimizer(
            params, trainer.lr, trainer.weight_decay, device, tuple(trainer.adam_betas), trainer.adam_eps
        )
        self.autocast = autocast_for(device, cfg.trainer.bf16)
        self.parts = TrainingParts(
            model=self.model,
            objective=self.objective,
            catalog=self.catalog,
            encode=self.model,
            params=params,
            optimizer=optimizer,
            grad_clip_norm=None,
            autocast=self.autocast,
            device=device,
            item_seq=train.item_seq,
        )
        self.batches = TrainBatches(train, cfg.trainer.batch_size, seed=0)
        self.batch_iterator = iter(self.batches)

    def next_batch(self):
        batch = next(self.batch_iterator, None)
        if batch is None:
            self.batch_iterator = iter(self.batches)
            batch = next(self.batch_iterator)
        return batch

    def train(self, steps: int) -> int:
        self.model.train()
        events = 0
        for _ in range(steps):
            batch = self.next_batch()
            training_step(self.parts, batch)
            events += len(batch.positions)
        return events

    def evaluate(self, num_samples: int) -> dict:
        self.model.eval()
        valid = EvalSamples(*(t if t is None else t[:num_samples] for t in vars(self.valid).values()))

        def scores(inputs: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
            with self.autocast:
                return self.model.score(self.model.last_hidden(inputs, lengths)).float()

        return self.evaluation.evaluate(
            scores, valid, self.item_seq, self.max_seq_len, self.num_items
        ).metrics


def worker(
    connection, implementation: str, overrides: list[str], device_name: str, threads: int | None
) -> None:
    """Serve ("train", loss, steps) and ("evaluate", loss, samples) with (count, seconds) until None."""
    if threads is not None:
        torch.set_num_threads(threads)
    device = resolve_device(device_name)
    if implementation == "seqrec":
        prepare_device(device)
    cfg = compose_config([*overrides, "cache_dir=null"])
    _, split, _ = prepare_data(cfg)
    runs: dict[str, SeqrecRun | PlainRun] = {}
    connection.send(("ready", len(split.valid)))
    while (command := connection.recv()) is not None:
        kind, loss, amount = command
        if loss not in runs:
            run_class = SeqrecRun if implementation == "seqrec" else PlainRun
            runs = {loss: run_class(split, loss, device)}  # one objective's model at a time
        run = runs[loss]
        device_sync(device)
        started = time.perf_counter()
        count = run.train(amount) if kind == "train" else min(amount, len(split.valid))
        if kind == "evaluate":
            run.evaluate(amount)
        device_sync(device)
        connection.send((count, time.perf_counter() - started))


class Worker:
    def __init__(self, implementation: str, overrides: list[str], device_name: str, threads: int | None):
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=worker, args=(child, implementation, overrides, device_name, threads)
        )
        self.process.start()
        _, self.num_valid = self.connection.recv()

    def rate(self, kind: str, loss: str, amount: int) -> float:
        """Events (train) or samples (evaluate) per second."""
        self.connection.send((kind, loss, amount))
        count, seconds = self.connection.recv()
        return count / seconds

    def close(self) -> None:
        self.connection.send(None)
        self.process.join()


def side_by_side(workers: dict[str, Worker], kind: str, loss: str, amount: int, rounds: int) -> dict:
    """Median rates and the median per-round ratio seqrec / plain; the order alternates every round."""
    for implementation in workers.values():
        implementation.rate(kind, loss, 2 if kind == "train" else 256)  # warm-up
    rates: dict[str, list[float]] = {"plain": [], "seqrec": []}
    for round_index in range(rounds):
        order = ["plain", "seqrec"] if round_index % 2 == 0 else ["seqrec", "plain"]
        for name in order:
            rates[name].append(workers[name].rate(kind, loss, amount))
    ratios = [s / p for s, p in zip(rates["seqrec"], rates["plain"], strict=True)]
    return {
        "plain": statistics.median(rates["plain"]),
        "seqrec": statistics.median(rates["seqrec"]),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
    }


def hardware(device_name: str, threads: int | None) -> str:
    if resolve_device(device_name).type == "cuda":
        return torch.cuda.get_device_name()
    return f"{cpu_name()}, {threads or torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--datasets", default="ml-100k,synthetic-1m")
    parser.add_argument("--losses", default="bce,softmax,inbatch,logq")
    parser.add_argument("--steps", type=int, default=2, help="training steps per round and implementation")
    parser.add_argument("--eval-samples", type=int, default=1024, help="validation samples per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the ratio is their median")
    parser.add_argument(
        "--threads", type=int, help="torch threads of both implementations (default: torch's)"
    )
    parser.add_argument(
        "--omp-wait-policy", default="passive", help="OMP_WAIT_POLICY of both processes, or `inherit`"
    )
    parser.add_argument("--ml-100k", type=Path, default=ML_100K, help="MovieLens-100K u.data")
    parser.add_argument("--output", type=Path, help="also write the table as markdown to this file")
    args = parser.parse_args()
    if args.omp_wait_policy != "inherit":
        os.environ.setdefault("OMP_WAIT_POLICY", args.omp_wait_policy.upper())  # read by the spawned workers

    header = (
        "| device | dataset | objective | train events/s plain | seqrec | ratio | "
        "eval samples/s plain | seqrec | ratio |"
    )
    conditions = (
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; "
        f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(conditions, flush=True)
    lines = [header, "|" + "---|" * 9]
    print(header, flush=True)
    for device_name in args.devices.split(","):
        if resolve_device(device_name).type == "cuda" and not torch.cuda.is_available():
            print(f"skipping device {device_name}: no CUDA device is visible", flush=True)
            continue
        for dataset in args.datasets.split(","):
            if dataset == "ml-100k" and not args.ml_100k.is_file():
                print(f"skipping ml-100k: {args.ml_100k} not found (pass --ml-100k PATH/u.data)", flush=True)
                continue
            overrides = dataset_overrides(dataset, args.ml_100k)
            workers = {
                name: Worker(name, overrides, device_name, args.threads) for name in ("plain", "seqrec")
            }
            try:
                for loss in args.losses.split(","):
                    train = side_by_side(workers, "train", loss, args.steps, args.rounds)
                    evaluate = side_by_side(workers, "evaluate", loss, args.eval_samples, args.rounds)
                    cells = [hardware(device_name, args.threads), dataset, loss]
                    for result in (train, evaluate):
                        cells += [
                            f"{result['plain']:,.0f}",
                            f"{result['seqrec']:,.0f}",
                            f"{result['ratio']:.2f}x",
                        ]
                    lines.append("| " + " | ".join(cells) + " |")
                    print(lines[-1], flush=True)
            finally:
                for implementation in workers.values():
                    implementation.close()
    conditions += f", at the end {os.getloadavg()[0]:.1f}"
    print(conditions, flush=True)
    if args.output:
        command = " ".join(["python benchmarks/bench.py", *sys.argv[1:]])
        args.output.write_text(
            f"Command: `{command}`; torch {torch.__version__}; {conditions}.\n\n" + "\n".join(lines) + "\n"
        )


if __name__ == "__main__":
    main()
