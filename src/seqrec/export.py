"""Item vectors and user query vectors of a run's saved model, with the log's original ids, for ANN retrieval.

    python -m seqrec.export RUN_DIR --format parquet            # -> RUN_DIR/export/
    python -m seqrec.export RUN_DIR --index hnsw --check        # + a FAISS index and what it costs

Files (in --output, default RUN_DIR/export): parquet: items.parquet (item, vector) and users.parquet
(user, vector); npy: item_vectors.npy + item_ids.parquet and user_vectors.npy + user_ids.parquet (row r
of the vectors is row r of the ids). export.json says the similarity: the model's score is the inner
product of a query vector and an item vector (cosine models export unit vectors, so that is the cosine).
A user's query vector encodes their stored history (all of their events in the run's filtered log).
With --index (needs `pip install 'seqrec[ann]'`): items.KIND.faiss, an inner-product index whose row r is
item r; --check compares retrieval through it with the exact full-catalog ranking on the run's test
samples.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import polars as pl

from seqrec.ann import INDEX_KINDS, IndexSettings
from seqrec.errors import UserError, one_line
from seqrec.files import atomic_path, write_text_atomic

EXPORT_FILE = "export.json"
FORMATS = ("parquet", "npy")
SIMILARITIES = ("dot", "cosine")
_UNIT_TOLERANCE = 1e-3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m seqrec.export", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("run_dir", type=Path, help="a completed run's folder (or its model/ folder)")
    parser.add_argument("--format", choices=FORMATS, default="parquet", help="vector files (default parquet)")
    parser.add_argument("--output", type=Path, default=None, help="folder to write (default RUN_DIR/export)")
    parser.add_argument(
        "--similarity",
        choices=SIMILARITIES,
        default=None,
        help="the similarity you will search with; it must be the model's (default: the model's)",
    )
    parser.add_argument(
        "--index", choices=INDEX_KINDS, default=None, help="build a FAISS index over the items"
    )
    parser.add_argument(
        "--check", action="store_true", help="retrieval through the index vs exact, on test samples"
    )
    parser.add_argument("--k", type=int, default=None, help="cut-off of --check (default: the run's largest)")
    parser.add_argument("--hnsw-m", type=int, default=32, help="hnsw: links per node (default 32)")
    parser.add_argument(
        "--ef-construction", type=int, default=200, help="hnsw: build candidates (default 200)"
    )
    parser.add_argument("--ef-search", type=int, default=128, help="hnsw: search candidates (default 128)")
    parser.add_argument("--nlist", type=int, default=None, help="ivf: clusters (default about 4 sqrt(items))")
    parser.add_argument("--nprobe", type=int, default=None, help="ivf: clusters searched (default nlist/8)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda, to compute the vectors")
    return parser


def check_similarity(model_similarity: str, requested: str | None, item_vectors: np.ndarray) -> str:
    """The similarity to export: the model's; a different request, or a cosine model whose item vectors are
    not unit length, is a one-line UserError."""
    if requested is not None and requested != model_similarity:
        if model_similarity == "cosine":
            raise UserError(
                "this model scores by cosine similarity (unit query and item vectors); exporting it as dot "
                "would rank by a score it was not trained for: drop --similarity or pass --similarity cosine"
            )
        raise UserError(
            f"this model scores by {model_similarity} product; normalising its vectors for cosine would "
            f"change its ranking: drop --similarity or pass --similarity {model_similarity}"
        )
    if model_similarity == "cosine":
        norms = np.linalg.norm(item_vectors, axis=1)
        if np.abs(norms - 1).max() > _UNIT_TOLERANCE:
            raise UserError(
                "the model says cosine but its item vectors are not unit length (norms "
                f"{norms.min():.3f}..{norms.max():.3f}); its item_vectors() must L2-normalise"
            )
    return model_similarity


def _id_series(name: str, ids: np.ndarray) -> pl.Series:
    if ids.dtype.kind in "iu":
        return pl.Series(name, ids, dtype=pl.Int64)
    return pl.Series(name, [str(value) for value in ids], dtype=pl.String)


def write_vectors(folder: Path, fmt: str, name: str, ids: np.ndarray, vectors: np.ndarray) -> list[str]:
    """Write one table of ids and vectors, each file whole or not at all; returns the file names."""
    if fmt == "parquet":
        with atomic_path(folder / f"{name}s.parquet") as temp:
            pl.DataFrame([_id_series(name, ids), pl.Series("vector", vectors)]).write_parquet(temp)
        return [f"{name}s.parquet"]
    with atomic_path(folder / f"{name}_vectors.npy") as temp, open(temp, "wb") as file:
        np.save(file, vectors)
    with atomic_path(folder / f"{name}_ids.parquet") as temp:
        pl.DataFrame([_id_series(name, ids)]).write_parquet(temp)
    return [f"{name}_vectors.npy", f"{name}_ids.parquet"]


def read_vectors(folder: str | Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids [N], vectors [N, D] float32) of an export folder's `item` or `user` table, either format."""
    folder = Path(folder)
    info = json.loads((folder / EXPORT_FILE).read_text())
    if info["format"] == "parquet":
        table = pl.read_parquet(folder / f"{name}s.parquet")
        ids, vectors = table[name], table["vector"].to_numpy()
    else:
        ids, vectors = (
            pl.read_parquet(folder / f"{name}_ids.parquet")[name],
            np.load(folder / f"{name}_vectors.npy"),
        )
    ids = np.array(ids.to_list(), dtype=object) if ids.dtype == pl.String else ids.to_numpy()
    return ids, np.array(vectors, dtype=np.float32)  # a writable copy


def export(
    run_dir: Path,
    fmt: str = "parquet",
    output: Path | None = None,
    similarity: str | None = None,
    index_settings: IndexSettings | None = None,
    check: bool = False,
    k: int | None = None,
    device: str = "auto",
) -> dict:
    """Write the export folder; returns what export.json says (with the check's report under "check")."""
    from seqrec.recommender import load, run_test_samples

    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if check and index_settings is None:
        raise UserError("--check measures an index: add --index flat|hnsw|ivf")
    if index_settings is not None:
        from seqrec.ann import require_faiss

        require_faiss()  # before any work
    model = load(run_dir, device)
    folder = Path(output) if output is not None else (model.files.run_dir or model.files.folder) / "export"
    item_vectors = model.item_vectors()
    similarity = check_similarity(model.similarity, similarity, item_vectors)
    samples = run_test_samples(model) if check else None  # a folder without test ranks fails before writing
    folder.mkdir(parents=True, exist_ok=True)
    (folder / EXPORT_FILE).unlink(missing_ok=True)  # written last: a failed export leaves none
    user_vectors = model.query_vectors_of(model.files.histories, users=np.arange(len(model.users)))
    files = write_vectors(folder, fmt, "item", model.item_ids, item_vectors)
    files += write_vectors(folder, fmt, "user", model.users, user_vectors)
    info = {
        "format": fmt,
        "similarity": similarity,
        "score": "inner product of a user (query) vector and an item vector",
        "dim": int(item_vectors.shape[1]),
        "items": len(model.item_ids),
        "users": len(model.users),
        "user_vectors": "each user's query vector from their stored history (all of their events in the run)"
        + (" and their user embedding" if getattr(model.backbone, "num_users", None) else ""),
        "model": str(model.files.folder),
        "seqrec_version": model.files.info.get("seqrec_version"),
        "files": files,
    }
    if index_settings is not None:
        from seqrec.ann import build_index, check_index

        faiss = require_faiss()
        settings = index_settings.resolved(len(item_vectors))
        index = build_index(item_vectors, settings)
        index_file = f"items.{settings.kind}.faiss"
        with atomic_path(folder / index_file) as temp:
            faiss.write_index(index, str(temp))
        info["index"] = {"file": index_file, "rows": "row r is items' row r", **asdict(settings)}
        if check:
            query_vectors = model.query_vectors_of(samples.histories, users=model.user_rows(samples.users))
            ks = model.files.info["scoring"].get("ks") or [20]
            report = check_index(
                index,
                settings.describe(),
                item_vectors,
                query_vectors,
                samples.histories,
                samples.targets,
                samples.ranks if model.files.info["scoring"].get("protocol") == "FullCatalog" else None,
                k or max(ks),
                model.exclude_seen_in_evaluation,
                model.batch_size,
                asdict(settings),
            )
            write_text_atomic(folder / "check.json", json.dumps(report.to_dict(), indent=2))
            info["check"] = report
    payload = {key: value for key, value in info.items() if key != "check"}
    write_text_atomic(folder / EXPORT_FILE, json.dumps(payload, indent=2))
    info["folder"] = folder
    return info


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = None
    if args.index is not None:
        settings = IndexSettings(
            args.index, args.hnsw_m, args.ef_construction, args.ef_search, args.nlist, args.nprobe
        )
    try:
        info = export(
            args.run_dir, args.format, args.output, args.similarity, settings, args.check, args.k, args.device
        )
    except (UserError, OSError) as error:
        print(f"error: {one_line(str(error))}", file=sys.stderr)
        return 1
    index = f", index {info['index']['file']}" if "index" in info else ""
    print(
        f"exported {info['items']:,} item and {info['users']:,} user vectors (dim {info['dim']}, "
        f"similarity {info['similarity']}) as {info['format']} to {info['folder']}{index}"
    )
    if "check" in info:
        print(info["check"].format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
