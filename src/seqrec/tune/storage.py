"""Where a study lives: Optuna storage, opened the same way by the tuning command and by each trial.

A storage is spelled as a string so that it travels in a trial's config (`trial.storage`):
- `journal:PATH` (the default, PATH = STUDY_DIR/study.journal): Optuna's journal file, an append-only
  log that several processes on one machine, or on a shared file system, can write at once;
- any database URL Optuna's RDB storage accepts (`sqlite:///PATH.db`, `postgresql://...`,
  `mysql+pymysql://...`): `tune.storage=URL` lets many jobs (e.g. a SLURM array) share one study, in
  Optuna's own distributed mode.
"""

from __future__ import annotations

from pathlib import Path

from seqrec.errors import UserError

JOURNAL_PREFIX = "journal:"
JOURNAL_FILE = "study.journal"


def journal_spec(path: str | Path) -> str:
    return f"{JOURNAL_PREFIX}{Path(path).resolve()}"


def open_storage(spec: str):
    """The Optuna storage named by `spec`; one-line UserError if it cannot be opened."""
    import optuna

    try:
        if spec.startswith(JOURNAL_PREFIX):
            path = Path(spec[len(JOURNAL_PREFIX) :])
            if not path.parent.is_dir():
                raise OSError(f"folder {path.parent} does not exist")
            backend = optuna.storages.journal.JournalFileBackend(str(path))
            return optuna.storages.JournalStorage(backend)
        return optuna.storages.RDBStorage(spec)
    except Exception as error:  # noqa: BLE001  (SQLAlchemy, OS and Optuna errors all mean the same here)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(
            f"tune.storage={spec} cannot be opened ({reason}); give a database URL Optuna can open "
            "(sqlite:///PATH.db, postgresql://...), or leave tune.storage unset (a journal file in tune.dir)"
        ) from error
