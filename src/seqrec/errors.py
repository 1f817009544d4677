"""The error class of bad input: its message says what is wrong and what to do, in one line.

It derives from Hydra's CompactHydraException, so `python run.py` prints only that line (set
HYDRA_FULL_ERROR=1 for the traceback); every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from hydra.errors import CompactHydraException


class UserError(CompactHydraException):
    """Bad input, settings or surroundings (a file, a folder); the message is one line: what is wrong and
    what to do."""

    def __init__(self, message: str):
        super().__init__(one_line(message))


class ConfigError(UserError, ValueError):
    """A config key or value that cannot work; raised before any data is read."""


def one_line(text: str) -> str:
    """`text` with its lines joined by "; " (a user sees the whole message at once)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return "; ".join(lines)


def require(condition: bool, message: str) -> None:
    """Raise ValueError(message) unless condition holds: for the checks of a constructor's settings (a Hydra
    `_target_`), whose ValueError `seqrec.preflight.instantiate_group` reports in one line."""
    if not condition:
        raise ValueError(message)
