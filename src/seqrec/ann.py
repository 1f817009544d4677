"""Approximate nearest-neighbour retrieval over a model's item vectors with FAISS (the `seqrec[ann]` extra),
and what the approximation costs on the run's own test samples.

Every index searches by inner product over the exported vectors, which is the model's score
(query_vectors @ item_vectors.T); for a cosine model both sides are unit vectors, so that is the cosine.
Index row r is item r of the catalog order (export's item ids).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from seqrec.errors import UserError
from seqrec.sample_metrics import dcg_gains, hits

INDEX_KINDS = ("flat", "hnsw", "ivf")
INSTALL_HINT = "pip install 'seqrec[ann]' (or: pip install faiss-cpu)"


def require_faiss():
    """The faiss module, or a one-line UserError saying how to install it."""
    try:
        import faiss
    except ImportError:
        raise UserError(f"--index needs FAISS, which is not installed: {INSTALL_HINT}") from None
    return faiss


@dataclass(frozen=True)
class IndexSettings:
    """flat: exact search; hnsw: graph with `hnsw_m` links per node, `ef_construction` / `ef_search`
    candidates while building / searching; ivf: `nlist` clusters (None: about 4 sqrt(I)), `nprobe` of them
    searched (None: nlist / 8, at least 1)."""

    kind: str = "hnsw"
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int | None = None
    nprobe: int | None = None

    def describe(self) -> str:
        """E.g. "hnsw index (M=32, efSearch=128)", for a resolved setting."""
        if self.kind == "hnsw":
            return f"hnsw index (M={self.hnsw_m}, efSearch={self.ef_search})"
        if self.kind == "ivf":
            return f"ivf index (nlist={self.nlist}, nprobe={self.nprobe})"
        return "flat index (exact)"

    def resolved(self, num_items: int) -> IndexSettings:
        if self.kind not in INDEX_KINDS:
            raise UserError(f"--index must be one of {', '.join(INDEX_KINDS)}, got {self.kind!r}")
        for name in ("hnsw_m", "ef_construction", "ef_search", "nlist", "nprobe"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        nlist = self.nlist or max(1, min(round(4 * math.sqrt(num_items)), num_items // 39))
        if nlist > num_items:
            raise UserError(f"--nlist={nlist} exceeds the {num_items} items; lower --nlist")
        nprobe = min(self.nprobe or max(1, nlist // 8), nlist)
        return IndexSettings(self.kind, self.hnsw_m, self.ef_construction, self.ef_search, nlist, nprobe)


def build_index(item_vectors: np.ndarray, settings: IndexSettings):
    """A FAISS inner-product index over item_vectors [I, D] float32 (row r = item r)."""
    faiss = require_faiss()
    vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
    num_items, dim = vectors.shape
    settings = settings.resolved(num_items)
    if settings.kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif settings.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.ef_construction
        index.hnsw.efSearch = settings.ef_search
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, settings.nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = settings.nprobe
    index.add(vectors)
    return index


@dataclass(frozen=True)
class RetrievalResult:
    """HitRate@k and DCG@k of the test targets, recall of the exact top-k, queries per second."""

    name: str
    hitrate: float
    dcg: float
    recall: float
    queries_per_second: float


@dataclass(frozen=True)
class CheckReport:
    k: int
    samples: int
    exclude_seen: bool
    exact: RetrievalResult
    index: RetrievalResult
    recorded_hitrate: float | None
    recorded_dcg: float | None
    settings: dict

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        rule = "history items excluded (target kept)" if self.exclude_seen else "no exclusion"
        lines = [
            f"retrieval check on the run's {self.samples:,} test samples, k={self.k}, {rule}",
            f"  {'':34} {'hitrate@' + str(self.k):>11} {'dcg@' + str(self.k):>9} "
            f"{'recall@' + str(self.k):>10} {'queries/s':>11}",
        ]
        for result in (self.exact, self.index):
            lines.append(
                f"  {result.name:34} {result.hitrate:11.4f} {result.dcg:9.4f} {result.recall:10.4f} "
                f"{result.queries_per_second:11,.0f}"
            )
        if self.recorded_hitrate is not None:
            lines.append(
                f"  recorded test ranks (test_ranks.parquet): hitrate@{self.k}={self.recorded_hitrate:.4f} "
                f"dcg@{self.k}={self.recorded_dcg:.4f}"
            )
        return "\n".join(lines)


def _hit_metrics(top: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """top: [S, k] item rows (-1: no item), targets [S] -> (HitRate@k, DCG@k)."""
    found = top == targets[:, None]
    k = top.shape[1]
    ranks = np.where(found.any(1), found.argmax(1) + 1, k + 1)  # k + 1: not in the top k
    return float(hits(ranks, k).mean()), float(dcg_gains(ranks, k).mean())


def _keep_unseen(found: np.ndarray, histories: list[np.ndarray], targets: np.ndarray, k: int) -> np.ndarray:
    """found: [B, F] item rows best first -> [B, k], the history items (but the target) dropped, -1 padded."""
    kept = np.full((len(found), k), -1, dtype=np.int64)
    for row, (items, history, target) in enumerate(zip(found, histories, targets, strict=True)):
        seen = np.setdiff1d(history, [target])
        items = items[(items >= 0) & ~np.isin(items, seen)][:k]
        kept[row, : len(items)] = items
    return kept


def check_index(
    index,
    name: str,
    item_vectors: np.ndarray,
    query_vectors: np.ndarray,
    histories: list[np.ndarray],
    targets: np.ndarray,
    recorded_ranks: np.ndarray | None,
    k: int,
    exclude_seen: bool,
    batch_size: int = 256,
    settings: dict | None = None,
) -> CheckReport:
    """The test samples retrieved through `index` next to the exact full-catalog ranking of the same
    vectors (brute force, the evaluation's tie rule), under the run's exclusion rule. recorded_ranks: the
    run's full-catalog test ranks, shown beside them (None: not recorded, or by sampled evaluation)."""
    from seqrec.evaluation import history_events
    from seqrec.metrics import top_k_items

    num_items = len(item_vectors)
    if not 1 <= k <= num_items:
        raise UserError(f"--k={k} must be in 1..{num_items} (the catalog size)")
    items = torch.from_numpy(np.ascontiguousarray(item_vectors, dtype=np.float32))
    exact_top, index_top = [], []
    exact_seconds = index_seconds = 0.0
    for begin in range(0, len(targets), batch_size):
        rows = slice(begin, begin + batch_size)
        queries, batch_histories, batch_targets = query_vectors[rows], histories[rows], targets[rows]

        started = time.perf_counter()
        scores = torch.from_numpy(queries) @ items.T
        if exclude_seen:
            lengths = torch.tensor([len(history) for history in batch_histories])
            item_seq = torch.from_numpy(np.concatenate(batch_histories))
            ends = torch.cumsum(lengths, 0)
            target_scores = scores.gather(1, torch.from_numpy(batch_targets)[:, None])
            scores[history_events(item_seq, ends - lengths, ends)] = float("-inf")
            scores.scatter_(1, torch.from_numpy(batch_targets)[:, None], target_scores)
        exact_top.append(top_k_items(scores, k).numpy())
        exact_seconds += time.perf_counter() - started

        started = time.perf_counter()
        fetch = k
        if exclude_seen:
            fetch = min(num_items, k + max(len(np.unique(history)) for history in batch_histories))
        _, found = index.search(np.ascontiguousarray(queries), fetch)
        if exclude_seen:
            found = _keep_unseen(found, batch_histories, batch_targets, k)
        index_top.append(found[:, :k])
        index_seconds += time.perf_counter() - started
    exact_top, index_top = np.concatenate(exact_top), np.concatenate(index_top)
    recall = float(
        np.mean([len(np.intersect1d(a, e[e >= 0])) / k for a, e in zip(exact_top, index_top, strict=True)])
    )
    samples = len(targets)
    exact = RetrievalResult(
        "exact (full catalog)", *_hit_metrics(exact_top, targets), 1.0, samples / exact_seconds
    )
    approximate = RetrievalResult(name, *_hit_metrics(index_top, targets), recall, samples / index_seconds)
    recorded_hitrate = recorded_dcg = None
    if recorded_ranks is not None:
        recorded_hitrate = float(hits(recorded_ranks, k).mean())
        recorded_dcg = float(dcg_gains(recorded_ranks, k).mean())
    return CheckReport(
        k, samples, exclude_seen, exact, approximate, recorded_hitrate, recorded_dcg, settings or {}
    )
