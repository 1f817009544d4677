"""Folders seqrec writes into (run folders, sweep folders, the cache), checked before any work starts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from seqrec.errors import UserError

CACHE_FOLDER = "the cache folder (cache_dir)"
CACHE_FIX = "Set cache_dir=null to run without a cache, or cache_dir=DIR."


def expand(path: str | Path) -> Path:
    """`~` and $VARIABLES expanded."""
    return Path(os.path.expandvars(os.path.expanduser(str(path))))


def require_writable_folder(path: str | Path, what: str, fix: str) -> Path:
    """Create `path` if needed and check that a file can be written in it; otherwise a one-line UserError
    naming `what` the folder is for and `fix`, what to do instead."""
    folder = expand(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UserError(f"{what} {folder} is not usable: {describe_os_error(error)}. {fix}") from error
    return folder


def require_cache_folder(cache_dir: str | Path, fix: str = CACHE_FIX) -> Path:
    """The cache folder, created and checked like any folder seqrec writes into."""
    return require_writable_folder(cache_dir, CACHE_FOLDER, fix)


def describe_os_error(error: OSError) -> str:
    """'No space left on device' rather than '[Errno 28] No space left on device: /x/y.tmp'."""
    return error.strerror or str(error)
