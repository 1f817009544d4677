"""Experiment loggers (config group `logger`). The run record is written regardless of the logger."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

MODES = ("auto", "online", "offline", "disabled")


class NullLogger:
    """Logs nothing."""

    def start(self, *, config: dict, name: str, group: str, tags: list[str], run_dir: Path) -> dict | None:
        return None

    def log(self, metrics: dict, step: int) -> None:
        pass

    def summary(self, metrics: dict) -> None:
        pass

    def finish(self, exit_code: int) -> None:
        pass


def has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbLogger:
    """Weights & Biases, offline unless credentials exist or mode=online. Never prompts for a login."""

    def __init__(
        self, project: str = "seqrec", entity: str | None = None, mode: str = "auto", group: str | None = None
    ):
        if mode not in MODES:
            raise ValueError(f"logger.mode must be one of {MODES}, got {mode!r}")
        self.project, self.entity, self.group = project, entity, group
        self.mode = ("online" if has_wandb_credentials() else "offline") if mode == "auto" else mode
        self.run = None
        self.local_dir: Path | None = None

    def start(self, *, config: dict, name: str, group: str, tags: list[str], run_dir: Path) -> dict | None:
        import wandb

        self.run = wandb.init(
            project=self.project,
            entity=self.entity,
            mode=self.mode,
            group=self.group or group,
            name=name,
            tags=tags,
            config=config,
            dir=str(run_dir),
            reinit="finish_previous",  # joblib workers run several jobs in one process
            settings=wandb.Settings(silent=True, console="off"),
        )
        # wandb's own folder for this run (run_dir/wandb/offline-run-...): what `wandb sync` uploads
        self.local_dir = Path(self.run.settings.sync_dir).resolve()
        return {
            "mode": self.mode,
            "project": self.project,
            "group": self.group or group,
            "run_id": self.run.id,
            "local_dir": str(self.local_dir),
            "sync_command": f"wandb sync {self.local_dir}" if self.mode == "offline" else None,
        }

    def log(self, metrics: dict, step: int) -> None:
        self.run.log(metrics, step=step)

    def summary(self, metrics: dict) -> None:
        self.run.summary.update(metrics)

    def finish(self, exit_code: int) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None
            if self.mode == "offline":
                print(f"wandb: offline run in {self.local_dir}")
                print(f"wandb: upload it with: wandb sync {self.local_dir}")
