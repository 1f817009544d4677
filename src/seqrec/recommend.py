"""Candidates for every user (or a list of users) from a run's saved model, with the log's original ids.

    python -m seqrec.recommend RUN_DIR --users all --k 100 --output candidates.parquet

writes one row per (user, rank): user, rank (1-based), item, score. Each user's stored history (all of
their events in the run's filtered log) is the model's input; `--exclude-seen` (default) leaves out the
items the user already has.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from seqrec.errors import UserError, one_line
from seqrec.files import atomic_path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m seqrec.recommend", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("run_dir", type=Path, help="a completed run's folder (or its model/ folder)")
    parser.add_argument(
        "--users",
        default="all",
        help="all (every user of the run), or a file of user ids: .parquet/.csv/.tsv with a `user` column, "
        "or text with one id per line",
    )
    parser.add_argument("--k", type=int, default=100, help="candidates per user (default 100)")
    parser.add_argument(
        "--output", type=Path, default=Path("candidates.parquet"), help="parquet file to write"
    )
    parser.add_argument(
        "--exclude-seen",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="leave out the items already in the user's history (default: on)",
    )
    parser.add_argument(
        "--allowed-items", type=Path, default=None, help="file of the item ids that may be recommended"
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when available) | cpu | cuda")
    return parser


def read_ids(path: Path, column: str, id_type: str) -> list:
    """Ids from a .parquet/.csv/.tsv file's `column`, or a text file with one id per line, converted to
    the model's id type ("int" or "string")."""
    if not path.is_file():
        raise UserError(f"{path} is not a file; give a file of {column} ids (or --users all)")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pl.read_parquet(path)
        elif suffix in (".csv", ".tsv"):
            frame = pl.read_csv(path, separator="\t" if suffix == ".tsv" else ",", infer_schema=False)
        else:
            lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            frame = pl.DataFrame({column: lines})
    except (OSError, UnicodeDecodeError, pl.exceptions.PolarsError) as error:
        raise UserError(f"{path} is not readable ({one_line(str(error))})") from None
    if column not in frame.columns:
        raise UserError(
            f"{path} has no `{column}` column (its columns: {frame.columns}); name the id column {column}"
        )
    values = frame[column].drop_nulls().cast(pl.String).to_list()
    if id_type == "string":
        return values
    try:
        return [int(value) for value in values]
    except ValueError:
        bad = next(value for value in values if not value.lstrip("-").isdigit())
        raise UserError(
            f"{path}: {bad!r} is not an integer {column} id, and this model's ids are integers"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    try:
        from seqrec.recommender import load

        started = time.perf_counter()
        model = load(args.run_dir, args.device)
        info = model.files.info
        users = "all" if args.users == "all" else read_ids(Path(args.users), "user", info["user_id_type"])
        allowed = None
        if args.allowed_items is not None:
            allowed = read_ids(args.allowed_items, "item", info["item_id_type"])
        known_users, recommendations = model.recommend_users(users, args.k, args.exclude_seen, allowed)
        frame = recommendations.to_frame(known_users)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.output) as temp:
            frame.write_parquet(temp)
    except (UserError, OSError) as error:
        print(f"error: {one_line(str(error))}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    print(
        f"wrote {frame.height:,} candidates for {len(known_users):,} users (k={args.k}, exclude_seen="
        f"{'on' if args.exclude_seen else 'off'}) to {args.output} in {seconds:.1f} s on {model.device}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
