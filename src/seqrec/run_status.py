"""Whether the process that writes a run record still runs: a run killed by the OS (out of memory,
SIGKILL) never writes its final status, so its run.json says "running" forever. Standard library only,
so that readers of run records (the comparison) do not import torch.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def process_identity(pid: int | None = None) -> dict:
    """Who writes a run record: host, boot, pid and the process's start time (clock ticks after boot),
    so that a later reader can tell whether that very process still runs (pids are reused)."""
    pid = os.getpid() if pid is None else pid
    state = _process_state(pid)
    return {
        "host": socket.gethostname(),
        "boot_id": _boot_id(),
        "pid": pid,
        "start_ticks": state[1] if state else None,
    }


def effective_status(record: dict) -> str | None:
    """record["status"], except "died" for a "running" run whose process is gone: same host and boot,
    and the pid is no longer alive, is a zombie, or now belongs to a process started at another time.
    On another host (or without process info) a "running" run stays "running": it cannot be checked."""
    status = record.get("status")
    process = record.get("process")
    if status != "running" or not isinstance(process, dict) or process.get("host") != socket.gethostname():
        return status
    if process.get("boot_id") is not None and process.get("boot_id") != _boot_id():
        return "died"  # the machine restarted since
    pid = process.get("pid")
    if not isinstance(pid, int) or not _pid_alive(pid):
        return "died"
    state, started = _process_state(pid), process.get("start_ticks")
    if state is not None and (state[0] == "Z" or (started is not None and state[1] != started)):
        return "died"  # killed but not yet reaped, or the pid was reused
    return status


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by someone else
        return True
    return True


def _process_state(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks after boot) from /proc (Linux); None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (command name)", which may hold spaces
    return fields[0], int(fields[19])


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
