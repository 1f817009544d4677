"""What training costs, measured by the run's own process, so that runs of one sweep compare fairly.

Wall-clock seconds depend on what else ran on the machine (in a parallel sweep a run that ends up alone
trains twice as fast as its siblings). The process's own CPU seconds (`time.process_time`: every thread of
this process, nothing else) and, on a GPU, the device time between CUDA events depend much less on
scheduling; training steps and events to the best step not at all.
"""

from __future__ import annotations

import time

import torch


class TrainingClock:
    """Wall, process-CPU and CUDA seconds of the training steps, evaluation left out: `start()` before
    training and after each validation, `stop()` before each validation and at the end (with the device
    synchronised, so that queued kernels count where they ran)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.wall_seconds = 0.0
        self.cpu_seconds = 0.0
        self.cuda_seconds = 0.0 if self.cuda else None
        self._wall_started = self._cpu_started = None
        self._cuda_started: torch.cuda.Event | None = None

    def start(self) -> None:
        self._wall_started, self._cpu_started = time.perf_counter(), time.process_time()
        if self.cuda:
            self._cuda_started = torch.cuda.Event(enable_timing=True)
            self._cuda_started.record()

    def stop(self) -> None:
        if self._wall_started is None:
            return
        self.wall_seconds += time.perf_counter() - self._wall_started
        self.cpu_seconds += time.process_time() - self._cpu_started
        if self.cuda:
            ended = torch.cuda.Event(enable_timing=True)
            ended.record()
            ended.synchronize()
            self.cuda_seconds += self._cuda_started.elapsed_time(ended) / 1000  # milliseconds
        self._wall_started = None


def cost_timings(
    train_clock: TrainingClock,
    train_events: int,
    eval_seconds: float,
    steps_to_best: int,
    train_events_to_best: int,
) -> dict:
    """The scheduling-independent part of run.json's `timings`: CPU (and CUDA) microseconds per training
    event, steps and events to the best step, and the share of training plus evaluation wall time that
    evaluation took."""
    events = max(train_events, 1)
    timings = {
        "train_cpu_seconds": round(train_clock.cpu_seconds, 3),
        "train_cpu_us_per_event": round(1e6 * train_clock.cpu_seconds / events, 3),
        "steps_to_best": steps_to_best,
        "train_events_to_best": train_events_to_best,
        "eval_share": round(eval_seconds / max(eval_seconds + train_clock.wall_seconds, 1e-9), 4),
    }
    if train_clock.cuda_seconds is not None:
        timings["train_cuda_seconds"] = round(train_clock.cuda_seconds, 3)
        timings["train_cuda_us_per_event"] = round(1e6 * train_clock.cuda_seconds / events, 3)
    return timings
