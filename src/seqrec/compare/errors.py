"""The comparison's error: a run record, ranks file or W&B project that cannot be read or compared.

A ValueError of its own rather than seqrec.data.types.DataError, so that `import seqrec.compare` needs
neither torch nor Hydra (reading run records is all it does); the command line prints it as one line.
"""

from __future__ import annotations


class RecordError(ValueError):
    """What is wrong with which record, and what to do; always one line."""

    def __init__(self, message: str):
        super().__init__("; ".join(line.strip() for line in str(message).splitlines() if line.strip()))
