"""Refit the chosen configuration for serving: retrain it on every event up to the test period (or on all
events), for as many steps as the chosen run's best validation step, recorded as its own run.

    python -m seqrec.refit RUN_DIR                 # events before each user's first test target
    python -m seqrec.refit RUN_DIR --until all     # every event (nothing left to test on)

A separate step, not a trainer option: the configuration is chosen after a sweep, by comparing runs on
validation, so only the winner is refitted, from its own run record (resolved config, seed, best step).
Nothing validates the refit (its training includes the validation events), so it trains a fixed number
of steps; with `--until test` the untouched test events still measure it (test_ranks.parquet, run.json).
Its run.json names the run it refits (`refit_of`); `python -m seqrec.compare` leaves refits out.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from seqrec.errors import UserError, one_line

UNTIL = ("test", "all")


def refit_sequences(
    history_start: np.ndarray, history_end: np.ndarray, counts: np.ndarray, until: str
) -> tuple[np.ndarray, np.ndarray]:
    """Training windows [start, end) into item_seq, one per user with >= 2 events in it: the user's events
    before their first test target (until="test"; every event for users without one) or all of them.

    history_start, history_end: [S] the test samples' windows (history_start is the user's first event);
    counts: [U] each user's events, users in item_seq order."""
    block_start = np.cumsum(counts) - counts
    end = block_start + counts
    if until == "test" and len(history_start):
        np.minimum.at(end, np.searchsorted(block_start, history_start), history_end)
    keep = end - block_start >= 2
    return block_start[keep], end[keep]


def read_chosen_run(run_dir: Path) -> dict:
    """The chosen run's record; a one-line UserError unless it is a completed run with a best step."""
    run_json = Path(run_dir) / "run.json"
    if not run_json.exists():
        raise UserError(f"{run_dir} holds no run.json; pass the folder of the run you chose")
    record = json.loads(run_json.read_text())
    if record.get("status") != "completed":
        raise UserError(f"{run_dir} has status {record.get('status')!r}; refit a completed run")
    if record.get("refit_of"):
        raise UserError(f"{run_dir} is itself a refit (of {record['refit_of']}); refit the chosen run")
    if not record.get("best_step") or not record.get("config"):
        raise UserError(f"{run_dir}/run.json lacks best_step or config; it was not written by seqrec run.py")
    return record


def train_steps(model, objective, train, catalog, settings, device, seed: int, steps: int) -> float:
    """`steps` optimizer steps over shuffled batches (epoch after epoch); returns the last mean loss."""
    from seqrec.data.batches import TrainBatches
    from seqrec.train import NonFiniteLossError, TrainingParts, training_step

    batches = TrainBatches(train, settings.batch_size, seed)
    parts = TrainingParts.build(model, objective, catalog, settings, device, train.item_seq)
    model.train()
    step, total, count = 0, torch.zeros((), device=device), 0
    while step < steps:
        for batch in batches:
            loss = training_step(parts, batch)
            step, total, count = step + 1, total + loss.detach(), count + 1
            if step % 64 == 0 or step == steps:
                mean = float(total / count)
                if not math.isfinite(mean):
                    raise NonFiniteLossError(f"refit loss became {mean} by step {step}; the refit diverged")
                total, count = torch.zeros((), device=device), 0
            if step >= steps:
                break
    model.eval()
    return mean


def refit(run_dir: Path, until: str = "test", steps: int | None = None, output: Path | None = None) -> Path:
    """Retrain the run at `run_dir` for serving into a new run folder; returns that folder."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from seqrec.app import prepare_data, seed_everything
    from seqrec.config import resolve_device
    from seqrec.data.batches import pack_train_sequences, train_item_counts
    from seqrec.losses.base import CatalogStats
    from seqrec.models.legacy import upgrade_model_config
    from seqrec.preflight import build_run_parts, check_run_folder, check_training_fits
    from seqrec.records import RunRecorder
    from seqrec.saved_model import save_model, user_blocks
    from seqrec.train import autocast_for, inference_scores, prepare_device, save_checkpoint
    from seqrec.users import model_sizes

    if until not in UNTIL:
        raise UserError(f"--until must be one of {', '.join(UNTIL)}, got {until!r}")
    record = read_chosen_run(run_dir)
    steps = int(record["best_step"]) if steps is None else steps
    if steps < 1:
        raise UserError(f"--steps must be >= 1, got {steps}")
    cfg = OmegaConf.create(record["config"])
    # A run recorded before the model variants names the flat backbone: the variant it built.
    cfg.model = upgrade_model_config(OmegaConf.to_container(cfg.model))
    cfg.trainer.max_steps = steps
    parts = build_run_parts(cfg)
    output = (
        output
        or Path("outputs/refit") / time.strftime("%Y-%m-%d") / f"{time.strftime('%H-%M-%S')}-{cfg.name}"
    )
    check_run_folder(output)
    recorder = RunRecorder(output)
    recorder.start(
        run_name=f"{cfg.name}-refit",
        seed=cfg.seed,
        choices=record.get("choices", {}),
        overrides=record.get("overrides", []),
        config=OmegaConf.to_container(cfg, resolve=True),
        refit_of=str(Path(run_dir).resolve()),
        refit={"until": until, "steps": steps, "chosen_best_step": record["best_step"]},
    )
    try:
        started = time.perf_counter()
        log_data, split, stats = prepare_data(cfg, parts.source, parts.split_rule)
        users = user_blocks(log_data)
        del log_data
        start, end = refit_sequences(
            split.test.history_start.numpy(), split.test.history_end.numpy(), users[1], until
        )
        # A load_log log's dense user id is its user block's index in item_seq.
        block_start = np.cumsum(users[1]) - users[1]
        train_user = torch.from_numpy(np.searchsorted(block_start, start).astype(np.int64))
        refit_split = replace(
            split, train_start=torch.from_numpy(start), train_end=torch.from_numpy(end), train_user=train_user
        )
        check_training_fits(cfg.trainer.batch_size, len(start))
        device = resolve_device(cfg.trainer.device)
        prepare_device(device)
        train = pack_train_sequences(refit_split, cfg.model.max_seq_len).to(device)
        catalog = CatalogStats(split.num_items, train_item_counts(train, split.num_items))
        seed_everything(cfg.seed)
        model = instantiate(cfg.model, **model_sizes(cfg.model, split.num_items, split.num_users)).to(device)
        objective = parts.objective.to(device)
        train_started = time.perf_counter()
        final_loss = train_steps(model, objective, train, catalog, cfg.trainer, device, cfg.seed, steps)
        train_seconds = time.perf_counter() - train_started
        save_checkpoint(model, recorder.checkpoint_path)
        updates = {
            "dataset_stats": stats | {"refit_sequences": len(start), "refit_events": train.num_events},
            "steps": steps,
            "best_step": steps,
            "final_train_loss": final_loss,
            "device": str(device),
            "timings": {
                "train_seconds": round(train_seconds, 3),
                "seconds": round(time.perf_counter() - started, 3),
            },
        }
        if until == "test":
            scores = inference_scores(model, autocast_for(device, cfg.trainer.bf16))
            item_seq = split.item_seq.to(device)
            test = parts.evaluation.evaluate(
                scores, split.test, item_seq, cfg.model.max_seq_len, split.num_items
            )
            recorder.write_test_ranks(
                split.original_users(split.test.user), split.original_items(split.test.target), test.ranks
            )
            updates["metrics"] = {"test": test.metrics}
            row = "  ".join(f"{key}={value:.4f}" for key, value in test.metrics.items())
            print(
                f"{cfg.name} refit ({steps} steps, events before the test period): test metrics\n  test {row}"
            )
        recorder.update(**updates)
        what = "before each user's first test target" if until == "test" else "of the log"
        save_model(
            output, recorder.checkpoint_path, model, cfg, split.item_seq, users, split.item_ids,
            trained_on=f"all events {what}, {steps} steps (refit of {Path(run_dir).resolve()})",
        )  # fmt: skip
        recorder.finish("completed")
    except KeyboardInterrupt as interrupt:
        recorder.finish("interrupted", error=f"{type(interrupt).__name__}: {interrupt}".rstrip(": "))
        raise
    except BaseException as error:
        recorder.finish("failed", error=f"{type(error).__name__}: {error}")
        raise
    return output


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seqrec.refit", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("run_dir", type=Path, help="the folder of the chosen run")
    parser.add_argument(
        "--until",
        choices=UNTIL,
        default="test",
        help="train on events before the test period (default) or all",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="optimizer steps (default: the run's best step)"
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="new run folder (default outputs/refit/DATE/TIME-NAME)"
    )
    args = parser.parse_args(argv)
    try:
        output = refit(args.run_dir, args.until, args.steps, args.output)
    except UserError as error:
        print(f"error: {one_line(str(error))}", file=sys.stderr)
        return 1
    print(f"refit run: {output} (load it with seqrec.load({str(output)!r}))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
