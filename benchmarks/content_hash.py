"""What keying the processed-log cache by content costs: seconds to hash a 1 GB file, per algorithm.

    python benchmarks/content_hash.py                  # writes a 1 GiB file of random bytes to a temp folder
    python benchmarks/content_hash.py --path big.csv   # or hashes an existing file

Each algorithm reads the file in 1 MiB chunks (as seqrec.data.parsing.content_digest does) `--rounds`
times; the table gives the median seconds and GB/s with the file in the page cache (the usual case on a
cache hit: an earlier run read the file). A file read from disk for the first time costs at least the
disk's read time on top.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import xxhash

CHUNK_BYTES = 1 << 20


def hashers() -> dict:
    return {
        "xxh3_128 (xxhash)": xxhash.xxh3_128,
        "xxh3_64 (xxhash)": xxhash.xxh3_64,
        "md5 (hashlib)": hashlib.md5,
        "sha1 (hashlib)": hashlib.sha1,
        "sha256 (hashlib)": hashlib.sha256,
        "blake2b (hashlib)": hashlib.blake2b,
    }


def hash_seconds(path: Path, make_hasher) -> float:
    started = time.perf_counter()
    hasher = make_hasher()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            hasher.update(chunk)
    hasher.hexdigest()
    return time.perf_counter() - started


def write_random_file(path: Path, size: int) -> None:
    with open(path, "wb") as file:
        for _ in range(size // CHUNK_BYTES):
            file.write(os.urandom(CHUNK_BYTES))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--path", type=Path, help="an existing file to hash (default: a new 1 GiB file)")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = args.path
        if path is None:
            path = Path(folder) / "random.bin"
            write_random_file(path, args.size_mib * CHUNK_BYTES)
        size = path.stat().st_size
        print(f"{path}: {size / 1e9:.2f} GB, {os.cpu_count()} CPUs, {args.rounds} rounds (page cache warm)")
        print(f"{'algorithm':<20} {'seconds':>8} {'GB/s':>6}")
        for name, make_hasher in hashers().items():
            seconds = statistics.median(hash_seconds(path, make_hasher) for _ in range(args.rounds))
            print(f"{name:<20} {seconds:8.3f} {size / 1e9 / seconds:6.2f}")


if __name__ == "__main__":
    main()
