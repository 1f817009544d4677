"""Folder names of a sweep's runs: the swept keys only, short enough for any file system.

Hydra's default names a job's folder after all of its overrides, so a sweep with a dozen fixed settings gets
names longer than the 255-byte file-name limit (`OSError: [Errno 36] File name too long`). Here a job's
folder is named after the keys that take several values in the sweep (`loss=bce,seed=0`), read from the
sweep's own `multirun.yaml` (written before any job starts, by every launcher); a name longer than
MAX_NAME_CHARS keeps its start and ends in a hash of all the job's overrides, so names stay unique.
Bookkeeping keys (seqrec.fingerprints.BOOKKEEPING_KEYS: paths, logging, the device, ...) and Hydra's
`hydra.job.config.override_dirname.exclude_keys` never name a folder; a job that sweeps one of them gets the
hash too, so that jobs which differ only there do not share a folder. The full overrides are in each run's
run.json and .hydra/overrides.yaml.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from seqrec.fingerprints import BOOKKEEPING_KEYS, is_under
from seqrec.record_files import SWEEP_FILE

MAX_NAME_CHARS = 120  # well below the 255 bytes of common file systems, with room for Hydra's own suffixes
RESOLVER = "seqrec_run_dirname"


def swept_keys(sweep_overrides: list[str], sweeper_params: dict | None = None) -> set[str]:
    """Keys with more than one value: `key=a,b`, ranges and choice sweeps on the command line, and the keys
    of `hydra.sweeper.params` (a preset's own sweep)."""
    keys = set((sweeper_params or {}).keys())
    for override in OverridesParser.create().parse_overrides(sweep_overrides):
        if override.is_sweep_override():
            keys.add(override.get_key_element().lstrip("+~"))
    return keys


def run_dirname(job_overrides: list[str], swept: set[str], exclude: set[str], job_num: int) -> str:
    """`key=value,...` of the swept keys among `job_overrides` (Hydra's override_dirname of those), or
    `job{num}` when nothing is swept; with a hash suffix when too long or when a swept key was left out
    (bookkeeping or `exclude`)."""
    chosen, left_out = [], False
    for override in job_overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in swept and (key in exclude or is_under(key, BOOKKEEPING_KEYS)):
            left_out = True
        elif key in swept:
            chosen.append(override.lstrip("+~"))
    name = ",".join(sorted(chosen)) if chosen else f"job{job_num}"
    name = name.replace("/", "_")  # a value with a path separator must not nest folders
    if len(name) <= MAX_NAME_CHARS and not (left_out and chosen):
        return name
    digest = hashlib.sha1("\n".join(sorted(job_overrides)).encode()).hexdigest()[:10]
    return f"{name[: MAX_NAME_CHARS - 12]}-h{digest}"


def _current_run_dirname() -> str:
    hydra = HydraConfig.get()
    job_overrides = list(hydra.overrides.task)
    exclude = set(hydra.job.config.override_dirname.exclude_keys)
    multirun = Path(str(hydra.sweep.dir)) / SWEEP_FILE
    if multirun.is_file():
        sweep = OmegaConf.load(multirun).hydra
        params = sweep.sweeper.get("params")
        params = OmegaConf.to_container(params) if params is not None else {}
        swept = swept_keys(list(sweep.overrides.task), params)
    else:  # a launcher that runs without Hydra's sweeper file: every override names the folder
        swept = {override.split("=", 1)[0].lstrip("+~") for override in job_overrides}
    return run_dirname(job_overrides, swept, exclude, int(hydra.job.num))


OmegaConf.register_new_resolver(RESOLVER, _current_run_dirname, replace=True)
