"""A finished fit's results: the one test of the best weights and its records (test_ranks.parquet, segments,
confidence intervals, the other seen-items convention, the synthetic oracle), run.json's metrics, steps and
timings, and the block printed at the end of a run."""

from __future__ import annotations

import time

import numpy as np
import torch

from seqrec.cost import cost_timings
from seqrec.evaluation import EvaluationResult, ScoreFn
from seqrec.intervals import LEVEL, metric_intervals
from seqrec.records import OTHER_RANK_COLUMN, RunRecorder
from seqrec.run_data import RunData
from seqrec.segment_keys import sample_keys, segment_definitions
from seqrec.train import FitResult


def evaluate_best_weights(
    evaluation, model_scores: ScoreFn, data: RunData, item_seq: torch.Tensor, max_seq_len: int, recorder
) -> tuple[dict, dict, float]:
    """Tests the model behind `model_scores` (the best weights, loaded) once; writes test_ranks.parquet, the
    segment definitions and the test confidence intervals. Returns run.json's test metrics (`test`, and
    `test_other`, `best_valid_other`, `oracle_test` where they exist), the intervals (`test_ci`) and the
    seconds the test took."""
    split = data.split
    # Full-catalog protocols rank each sample under both seen-items conventions in the same pass: the
    # primary one (evaluation.exclude_seen) and the other one (`test_other`), as peers report either.
    both = {"both_conventions": True} if hasattr(evaluation, "exclude_seen") else {}
    test_started = time.perf_counter()
    test = evaluation.evaluate(model_scores, split.test, item_seq, max_seq_len, split.num_items, **both)
    test_seconds = time.perf_counter() - test_started
    _write_test_ranks(recorder, data, test)
    metrics = {"test": test.metrics}
    if test.other is not None:
        metrics["test_other"] = test.other.metrics
        valid = evaluation.evaluate(model_scores, split.valid, item_seq, max_seq_len, split.num_items, **both)
        metrics["best_valid_other"] = valid.other.metrics
    if data.oracle is not None:  # the generator's Bayes-optimal ranking: the ceiling for any objective
        oracle = evaluation.evaluate(data.oracle, split.test, item_seq, max_seq_len, split.num_items)
        metrics["oracle_test"] = oracle.metrics
    test_ci = confidence_intervals(test, data, evaluation.ks)
    recorder.update(test_ci=test_ci)
    return metrics, test_ci, test_seconds


def _write_test_ranks(recorder: RunRecorder, data: RunData, test: EvaluationResult) -> None:
    split = data.split
    extra = {OTHER_RANK_COLUMN: test.other.ranks} if test.other is not None else {}
    if split.item_train_events is not None:
        extra |= sample_keys(split.test, split.item_train_events)
        recorder.update(segments=segment_definitions(split.user_train_events, split.item_train_events))
    test_users, test_items = split.original_users(split.test.user), split.original_items(split.test.target)
    recorder.write_test_ranks(test_users, test_items, test.ranks, extra)


def confidence_intervals(test: EvaluationResult, data: RunData, ks) -> dict:
    """run.json's `test_ci`: confidence intervals of the test metrics, clustered by user."""
    test_user_ids = data.split.test.user.numpy()
    return {
        "level": LEVEL,
        "samples": len(test.ranks),
        "users": len(np.unique(test_user_ids)),
        "clustered_by": "user",
        "intervals": metric_intervals(test.ranks.numpy(), ks, users=test_user_ids),
    }


def record_fit(recorder, result: FitResult, metrics: dict, device, data_seconds: float, test) -> None:
    """Metrics, steps and timings of a finished fit; test: (seconds, samples), None for a tuning trial."""
    peak_memory = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _peak_rss_bytes()
    test_seconds = test[0] if test is not None else 0.0
    timings = {
        "data_seconds": round(data_seconds, 3),
        "train_seconds": round(result.train_seconds, 3),
        "train_events": result.train_events,
        "train_events_per_second": round(result.train_events / max(result.train_seconds, 1e-9), 1),
        "eval_seconds": round(result.eval_seconds + test_seconds, 3),
    }
    if test is not None:
        timings["test_seconds"] = round(test_seconds, 3)
        timings["test_samples_per_second"] = round(test[1] / max(test_seconds, 1e-9), 1)
    timings |= cost_timings(
        result.clock,
        result.train_events,
        result.eval_seconds + test_seconds,
        result.best_step,
        result.best_train_events,
    )
    recorder.update(
        metrics=metrics,
        best_step=result.best_step,
        steps=result.steps,
        epochs=result.epochs,
        stopped_early=result.stopped_early,
        device=str(device),
        timings=timings | {"peak_memory_bytes": peak_memory},
    )


def _peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def format_metrics(name: str, metrics: dict, test_ci: dict | None = None, warnings: list[str] = ()) -> str:
    """The metrics block printed at the end of a run: test metrics, their sample-level confidence
    intervals, and the run's warnings. The synthetic ceiling (`oracle_test`) stays in run.json:
    `python -m seqrec.compare` prints it once for a whole sweep."""
    row = "  ".join(f"{k}={v:.4f}" for k, v in metrics["test"].items())
    lines = [f"{name}: test metrics (best validation step)", f"  test {row}"]
    if test_ci is not None:
        row = "  ".join(f"{k}=[{low:.4f}, {high:.4f}]" for k, (low, high) in test_ci["intervals"].items())
        users = f" of {test_ci['users']} users" if "users" in test_ci else ""
        lines.append(f"  test {test_ci['level']:.0%} CI over {test_ci['samples']} test samples{users}: {row}")
    lines += [f"  warning: {warning}" for warning in warnings]
    return "\n".join(lines)
