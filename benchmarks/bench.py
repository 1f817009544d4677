"""Training and evaluation throughput, epoch time and peak memory per objective, dataset and device.

    python benchmarks/bench.py                               # every dataset, objective and visible device
    python benchmarks/bench.py --devices cuda --steps 50 --output benchmarks/RESULTS-h100.md

Datasets: ml-100k (the shared GroupLens file), synthetic-1m (MovieLens-1M-sized: 6,040 users, ~3.7k items,
~1M events) and catalog-1m (softmax on a 1,000,000-item catalog; random sequences, since only the step's
cost matters there). The protocol's model and batch are used throughout (d=64, 2 layers, L=200, batch 256).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

from seqrec.app import prepare_data
from seqrec.config import resolve_device
from seqrec.data.batches import TrainBatches, TrainTensors, pack_train_sequences, train_item_counts
from seqrec.data.types import EvalSamples
from seqrec.losses.base import CatalogStats
from seqrec.records import cpu_name
from seqrec.stats import compose_config
from seqrec.train import (
    autocast_for,
    device_sync,
    make_optimizer,
    prepare_device,
    training_step,
)

REPO = Path(__file__).resolve().parents[1]
DATASETS = {
    "ml-100k": ["dataset=ml-100k", f"dataset.path={REPO.parent / 'shared/data/ml-100k/u.data'}"],
    "synthetic-1m": [
        "dataset=synthetic",
        "dataset.num_users=6040",
        "dataset.num_items=3706",
        "dataset.mean_length=165",
        "dataset.max_length=2000",
    ],
}
CATALOG_1M = 1_000_000


def measure(
    device: torch.device, cfg, train: TrainTensors, catalog, evaluate_fn, steps: int, compile_model: bool
):
    torch.manual_seed(0)
    model = instantiate(cfg.model, num_items=catalog.num_items).to(device)
    objective = instantiate(cfg.loss).to(device)
    params = [*model.parameters(), *objective.parameters()]
    optimizer = make_optimizer(params, 1e-3, 0.0, device)
    autocast = autocast_for(device, bf16=True)
    encode = torch.compile(model) if compile_model else model
    batches = TrainBatches(train, cfg.trainer.batch_size, seed=0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def run_steps(n: int) -> tuple[int, float]:
        events, done = 0, 0
        device_sync(device)
        started = time.perf_counter()
        while done < n:
            for batch in batches:
                training_step(encode, model, objective, batch, catalog, optimizer, params, None, autocast)
                events += len(batch.positions)
                done += 1
                if done == n:
                    break
        device_sync(device)
        return events, time.perf_counter() - started

    run_steps(3)  # warm-up: allocator, kernels, compilation
    events, seconds = run_steps(steps)
    model.eval()
    eval_samples, eval_seconds = evaluate_fn(model, autocast)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_rss_bytes()
    return {
        "train_events_per_s": events / seconds,
        "step_ms": 1000 * seconds / steps,
        "epoch_s": seconds / steps * len(batches),
        "eval_samples_per_s": eval_samples / eval_seconds,
        "peak_memory_gib": peak / 2**30,
    }


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def pipeline_case(
    name: str, loss: str, device: torch.device, steps: int, compile_model: bool, eval_samples: int | None
) -> dict:
    cfg = compose_config([*DATASETS[name], f"loss={loss}", "cache_dir=null"])
    _, split, _ = prepare_data(cfg)
    train = pack_train_sequences(split, cfg.model.max_seq_len).to(device)
    catalog = CatalogStats(split.num_items, train_item_counts(train, split.num_items))
    evaluation = instantiate(cfg.evaluation)
    item_seq = split.item_seq.to(device)
    valid = split.valid
    if eval_samples is not None and eval_samples < len(valid):
        valid = EvalSamples(
            *(t[:eval_samples] for t in (valid.user, valid.history_start, valid.history_end, valid.target))
        )

    def evaluate_fn(model, autocast):
        def scores(inputs, lengths):
            with autocast:
                return model.score(model.last_hidden(inputs, lengths)).float()

        evaluation.evaluate(scores, valid, item_seq, cfg.model.max_seq_len, split.num_items)  # warm-up
        device_sync(device)
        started = time.perf_counter()
        evaluation.evaluate(scores, valid, item_seq, cfg.model.max_seq_len, split.num_items)
        device_sync(device)
        return len(valid), time.perf_counter() - started

    return measure(device, cfg, train, catalog, evaluate_fn, steps, compile_model)


def large_catalog_case(device: torch.device, steps: int, batch_size: int, seq_len: int) -> dict:
    cfg = compose_config(["loss=softmax", f"trainer.batch_size={batch_size}", f"model.max_seq_len={seq_len}"])
    generator = torch.Generator().manual_seed(0)
    rows = 4 * batch_size
    items = torch.randint(0, CATALOG_1M, (rows, seq_len + 1), generator=generator)
    lengths = torch.full((rows,), seq_len)
    train = TrainTensors(items[:, :-1], items[:, 1:], lengths).to(device)
    catalog = CatalogStats(CATALOG_1M, torch.ones(CATALOG_1M, device=device))

    def evaluate_fn(model, autocast):
        inputs, lens = train.inputs[:batch_size], train.lengths[:batch_size]
        device_sync(device)
        started = time.perf_counter()
        with torch.inference_mode(), autocast:
            model.score(model.last_hidden(inputs, lens)).float().topk(20)
        device_sync(device)
        return batch_size, time.perf_counter() - started

    return measure(device, cfg, train, catalog, evaluate_fn, steps, compile_model=False)


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {torch.get_num_threads()} threads"


def cases(dataset: str, args, device: torch.device):
    """(objective, measure function) pairs for one dataset and device."""
    if dataset == "catalog-1m":
        # On a CPU the 1M-item softmax uses a small batch of short sequences so that it finishes.
        batch_size, seq_len = (256, 200) if device.type == "cuda" else (8, 20)
        return [("softmax", lambda: large_catalog_case(device, args.steps, batch_size, seq_len))]
    eval_samples = args.eval_samples if device.type == "cpu" else None
    return [
        (loss, lambda loss=loss: pipeline_case(dataset, loss, device, args.steps, args.compile, eval_samples))
        for loss in args.losses.split(",")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", default="cuda,cpu" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--losses", default="bce,softmax,inbatch,logq")
    parser.add_argument("--datasets", default="ml-100k,synthetic-1m,catalog-1m")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per case")
    parser.add_argument("--eval-samples", type=int, default=5000, help="validation samples timed on a CPU")
    parser.add_argument("--compile", action="store_true", help="torch.compile the backbone")
    parser.add_argument("--output", type=Path, help="also write the table as markdown to this file")
    args = parser.parse_args()

    header = (
        "| device | dataset | objective | train events/s | step ms | epoch s | eval samples/s | peak GiB |"
    )
    lines = [header, "|" + "---|" * 8]
    print(header, flush=True)
    for device_name in args.devices.split(","):
        device = resolve_device(device_name)
        prepare_device(device)
        for dataset in args.datasets.split(","):
            for loss, measure_case in cases(dataset, args, device):
                r = measure_case()
                cells = [
                    hardware(device),
                    dataset,
                    loss,
                    f"{r['train_events_per_s']:,.0f}",
                    f"{r['step_ms']:.1f}",
                    f"{r['epoch_s']:.2f}",
                    f"{r['eval_samples_per_s']:,.0f}",
                    f"{r['peak_memory_gib']:.2f}",
                ]
                lines.append("| " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
    if args.output:
        command = " ".join(["python benchmarks/bench.py", *sys.argv[1:]])
        args.output.write_text(
            f"Command: `{command}`; torch {torch.__version__}.\n\n" + "\n".join(lines) + "\n"
        )


if __name__ == "__main__":
    main()
