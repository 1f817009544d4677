"""A results page for a recorded sweep, generated from its run records (never typed by hand).

    python -m seqrec.report experiments/seminar/ml-100k --title "Seminar protocol on MovieLens-100K" \
        --output experiments/seminar/RESULTS-ml-100k.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from seqrec.compare import RunScan, compare, format_report, scan_run_dirs
from seqrec.compare.report_text import tuning_only_report
from seqrec.compare.tuning import study_views
from seqrec.files import write_text_atomic
from seqrec.record_files import RUN_FILE, SWEEP_FILE

STAT_KEYS = (
    "users",
    "items",
    "interactions",
    "kcore_passes",
    "train_sequences",
    "train_events",
    "valid_samples",
    "test_samples",
    "test_cold_users",
    "test_cold_items",
)


def sweep_commands(sweep_dirs: list[Path]) -> list[str]:
    """The `python run.py -m ...` commands that produced the sweeps, from Hydra's multirun.yaml files."""
    commands = []
    for multirun in sorted(p for d in sweep_dirs for p in d.rglob(SWEEP_FILE)):
        task = OmegaConf.load(multirun).hydra.overrides.task
        commands.append("python run.py -m " + " ".join(o for o in task if not o.startswith("dataset.path=")))
    return commands


def tune_commands(sweep_dirs: list[Path]) -> list[str]:
    """The `python -m seqrec.tune ...` commands of the study folders among (or above) the sweep folders."""
    commands = []
    for view in study_views([str(d) for d in sweep_dirs]):
        manifest, settings = view.manifest, view.manifest.get("settings", {})
        base = [o for o in manifest.get("base_overrides", []) if not o.startswith("dataset.path=")]
        tune = [
            f"tune.{k}={v}"
            for k, v in settings.items()
            if v is not None and k in ("trials", "final_seeds", "sampler_seed", "pruner")
        ]
        commands.append(
            shlex.join(
                ["python", "-m", "seqrec.tune", "loss=" + ",".join(manifest["objectives"]), *base, *tune]
            )
        )
    return commands


def setup_section(scan: RunScan, sweep_dirs: list[Path]) -> str:
    records = [json.loads((run.dir / RUN_FILE).read_text()) for run in scan.runs]
    first = records[0]
    stats = first.get("dataset_stats", {})
    versions = first.get("versions", {})
    seeds = sorted({r["seed"] for r in records})
    train_seconds = [r["timings"]["train_seconds"] for r in records]
    events_per_second = [r["timings"]["train_events_per_second"] for r in records]
    lines = [
        f"- Runs: {len(records)} completed ({len(scan.skipped)} skipped), seeds {seeds}, "
        f"objectives {sorted({r.objective for r in scan.runs})}.",
        f"- Data: `{first['choices'].get('dataset')}`, split `{first['choices'].get('split')}`; "
        + ", ".join(f"{k} {stats[k]:,}" for k in STAT_KEYS if k in stats)
        + ".",
        f"- Hardware: {first.get('device')} ({versions.get('device_name') or 'unknown'}, "
        f"{versions.get('cpu_count')} CPUs); torch {versions.get('torch')}, "
        f"seqrec git {first.get('git_revision')}.",
        f"- Training time per run: {np.mean(train_seconds):.0f} s on average "
        f"({np.mean(events_per_second):,.0f} training events/s).",
    ]
    lines += [f"- Sweep: `{command}`" for command in sweep_commands(sweep_dirs)]
    lines += [f"- Tuning: `{command}`" for command in tune_commands(sweep_dirs)]
    return "\n".join(lines) + "\n  (plus `dataset.path=` where the data is local)."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seqrec.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dirs", type=Path, nargs="+", help="folders holding run directories")
    parser.add_argument("--title", required=True)
    parser.add_argument("--baseline", help="objective the others are tested against (default: the best mean)")
    parser.add_argument("--metric", default="dcg@10")
    parser.add_argument("--objectives", nargs="+")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument(
        "--allow-mixed",
        action="store_true",
        help="runs of different protocols or test sets on one page, rows labelled, no verdict across them",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    sources = " ".join(str(d) for d in args.sweep_dirs)
    try:
        scan = scan_run_dirs(*args.sweep_dirs)
        if not scan.runs and study_views([str(d) for d in args.sweep_dirs]):
            return write_page(
                args, argv, [tuning_only_report([str(d) for d in args.sweep_dirs], "markdown", scan)]
            )
        if not scan.runs:
            print(f"error: no completed run in {sources}\n{scan.note()}", file=sys.stderr)
            return 1
        comparison = compare(
            scan,
            [str(d) for d in args.sweep_dirs],
            baseline=args.baseline,
            metric=args.metric,
            objectives=args.objectives,
            allow_mixed=args.allow_mixed,
            segments=True,  # where the differences come from (a one-line note for runs that predate them)
        )
    except (FileNotFoundError, ValueError) as error:  # RecordError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 1
    setup = setup_section(scan, args.sweep_dirs) + (
        f"\n- Mixed (--allow-mixed): {len(comparison.groups)} protocol groups, listed below; the "
        "data line above describes the first run."
        if comparison.mixed
        else ""
    )
    return write_page(args, argv, ["## Setup", setup, format_report(comparison, "markdown")])


def write_page(args: argparse.Namespace, argv: list[str], sections: list[str]) -> int:
    header = [
        f"# {args.title}",
        f"Generated by `python -m seqrec.report {shlex.join(argv)}` from the run records in those "
        "folders; do not edit by hand.",
    ]
    page = "\n\n".join(header + sections).rstrip()
    write_text_atomic(args.output, page + "\n")
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
