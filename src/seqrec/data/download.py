"""Downloading and unpacking raw data files: checksummed, atomic, and never leaving half a file behind."""

from __future__ import annotations

import hashlib
import http.client
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tqdm.auto import tqdm

from seqrec.data.types import DataError
from seqrec.files import atomic_path

DIGEST_LENGTHS = {"md5": 32, "sha256": 64}
"""Accepted checksum algorithms ("<algorithm>:<hex digest>") and their digest length in hex digits."""

CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 60


def parse_checksum(checksum: str) -> tuple[str, str]:
    """Split "md5:<hex>" or "sha256:<hex>" into (algorithm, lower-case hex digest)."""
    algorithm, _, digest = checksum.partition(":")
    algorithm, digest = algorithm.strip().lower(), digest.strip().lower()
    expected_length = DIGEST_LENGTHS.get(algorithm)
    if expected_length is None or len(digest) != expected_length or not _is_hex(digest):
        raise ValueError(
            f"checksum must look like 'md5:<32 hex digits>' or 'sha256:<64 hex digits>', got {checksum!r}"
        )
    return algorithm, digest


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file's bytes."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, algorithm).hexdigest()


def verify_file(path: Path, checksum: str, expected_what: str, fix: str) -> None:
    """DataError unless the file's digest matches `checksum` ("md5:<hex>" / "sha256:<hex>").

    The message says the file does not match `expected_what`, then `fix` followed by the file's own
    checksum, so a user who trusts the file can pass it as dataset.checksum.
    """
    algorithm, expected = parse_checksum(checksum)
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise DataError(
            f"{path} does not match {expected_what}: its {algorithm} is {actual}. "
            f"{fix} dataset.checksum={algorithm}:{actual}"
        )


def fetch(url: str, destination: Path, checksum: str | None, progress: bool = True) -> Path:
    """Download `url` to `destination` and return it.

    An existing file is reused without touching the network when its checksum matches (or when no
    checksum is given). The bytes go to a temporary file next to `destination`, are verified, then
    renamed into place, so `destination` is either absent or complete. `file://` URLs work too.
    """
    destination = Path(destination)
    expected = parse_checksum(checksum) if checksum is not None else None
    if destination.is_file() and (expected is None or file_digest(destination, expected[0]) == expected[1]):
        return destination

    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(destination) as temp, open(temp, "wb") as temp_file:
        digest = _download_into(url, temp_file, expected[0] if expected else "md5", progress)
        if expected is not None and digest != expected[1]:
            raise DataError(
                f"the download of {url} is corrupted: its {expected[0]} is {digest}, expected {expected[1]}; "
                f"nothing was saved. Retry; if it keeps failing, the file changed upstream: download it by "
                f"hand, check it, and pass its local path as dataset.path=/path/to/file.zip."
            )
    return destination


def _download_into(url: str, temp_file: BinaryIO, algorithm: str, progress: bool) -> str:
    """Stream `url` into an open binary file; return the hex digest of the bytes received."""
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = error if isinstance(error, urllib.error.HTTPError) else getattr(error, "reason", error)
        raise DataError(
            f"could not download {url}: {reason}. If this machine is offline, download the file by hand and "
            f"pass dataset.path=/path/to/file.zip (the zip, the extracted folder or the ratings file)."
        ) from error

    hasher = hashlib.new(algorithm)
    header = response.headers.get("Content-Length")
    expected_bytes = int(header) if header is not None and header.isdigit() else None
    received_bytes = 0
    name = url.rsplit("/", 1)[-1]
    bar = tqdm(total=expected_bytes, unit="B", unit_scale=True, desc=name, disable=not progress)
    with response, bar:
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except (OSError, EOFError, http.client.HTTPException) as error:
                failure = f"the connection failed after {received_bytes} bytes ({error!r})"
                raise _interrupted(url, failure) from error
            if not chunk:
                break
            temp_file.write(chunk)
            hasher.update(chunk)
            received_bytes += len(chunk)
            bar.update(len(chunk))
    # http.client returns b"" instead of raising when the server closes early: compare sizes ourselves.
    if expected_bytes is not None and received_bytes != expected_bytes:
        raise _interrupted(url, f"received {received_bytes} of {expected_bytes} bytes")
    return hasher.hexdigest()


def _interrupted(url: str, what: str) -> DataError:
    return DataError(
        f"the download of {url} was interrupted: {what}; nothing was saved. Run again to retry, or download "
        f"the file by hand and pass dataset.path=/path/to/file.zip."
    )


def extract_member(zip_path: Path, member_suffix: str, destination_dir: Path) -> Path:
    """Extract the one member of `zip_path` whose name is `member_suffix` or ends with "/<member_suffix>".

    The member keeps its folder inside the archive (`destination_dir/ml-1m/ratings.dat`). Names that are
    absolute or climb out with `..` are rejected (zip-slip). The file is written under a temporary name
    and renamed, so a reader never sees a partial file; an existing copy is overwritten.
    """
    zip_path, destination_dir = Path(zip_path), Path(destination_dir)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = [
                name
                for name in archive.namelist()
                if not name.endswith("/") and (name == member_suffix or name.endswith("/" + member_suffix))
            ]
            if len(names) != 1:
                found = ", ".join(names) if names else "none"
                raise DataError(
                    f"{zip_path} must contain exactly one file named {member_suffix!r}; found {found}. "
                    f"Is it the right archive? You can also pass the extracted file as dataset.path."
                )
            target = destination_dir / _safe_member_path(names[0], zip_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as temp, open(temp, "wb") as temp_file, archive.open(names[0]) as member:
                shutil.copyfileobj(member, temp_file, CHUNK_BYTES)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        raise DataError(
            f"{zip_path} is not a readable zip archive ({error}). Delete it and download it again, or "
            f"pass the extracted folder as dataset.path."
        ) from error
    return target


def _safe_member_path(name: str, zip_path: Path) -> PurePosixPath:
    """The member's relative path, or DataError when it is absolute or escapes with `..` (zip-slip)."""
    member = PurePosixPath(name.replace("\\", "/"))
    drive_letter = bool(member.parts) and member.parts[0].endswith(":")
    if not member.parts or member.is_absolute() or drive_letter or ".." in member.parts:
        raise DataError(
            f"refusing to extract {name!r} from {zip_path}: its path is absolute or leaves the destination "
            f"folder (zip-slip). This is not a genuine dataset release; download it again."
        )
    return member


def _is_hex(text: str) -> bool:
    return all(character in "0123456789abcdef" for character in text)
