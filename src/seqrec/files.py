"""Files seqrec writes whole or not at all: run records, ranks, checkpoints, saved models, caches, reports.

Standard library only: `seqrec.compare` (which loads neither torch nor Hydra) writes its reports with it too.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A fresh path beside `target` for the block to write a file or make a folder at. When the block
    finishes, it replaces `target` by one rename, so a reader finds the old or the new one whole, never
    half of one; when the block raises, it is removed and `target` stays as it was.

    Beside `target`: on its file system, where a rename is atomic. A name of its own (`.NAME.<random>.tmp`):
    two processes writing one file (sweep jobs filling the cache) never write into each other's file.
    """
    target = Path(target)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield temp
        if temp.is_dir() and target.is_dir():
            shutil.rmtree(target)  # a rename replaces an empty folder only
        os.replace(temp, target)
    finally:
        if temp.is_dir():
            shutil.rmtree(temp, ignore_errors=True)
        else:
            temp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """`path.write_text(text)`, whole or not at all (`atomic_path`)."""
    with atomic_path(path) as temp:
        temp.write_text(text)
