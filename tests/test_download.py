"""The downloader against a local HTTP server and file:// URLs: checksums, corruption, interruption,
offline machines, and safe zip extraction. Nothing here touches the network."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
import urllib.request
import zipfile
from pathlib import Path

import pytest

from seqrec.data.download import extract_member, fetch, parse_checksum
from seqrec.data.types import DataError

PAYLOAD = bytes(range(256)) * 40  # 10 KiB


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.routes[path] = (body, bytes_to_send): fewer bytes than the body simulates a
    connection that closes early, while Content-Length still announces the whole body."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        body, bytes_to_send = route
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:bytes_to_send])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1 (free port) in a thread; add routes with `serve`."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.routes = {}
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def serve(path: str, body: bytes, bytes_to_send: int | None = None) -> str:
        httpd.routes[path] = (body, len(body) if bytes_to_send is None else bytes_to_send)
        return f"http://127.0.0.1:{httpd.server_address[1]}{path}"

    yield serve
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/ml-1m.zip"


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_http_download_with_md5_and_sha256(server, tmp_path):
    url = server("/data.zip", PAYLOAD)
    for checksum in (md5(PAYLOAD), "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()):
        destination = tmp_path / checksum[:3] / "data.zip"
        assert fetch(url, destination, checksum, progress=True) == destination
        assert destination.read_bytes() == PAYLOAD
        assert leftovers(destination.parent) == ["data.zip"]  # no temporary file left


def test_file_url_download(tmp_path):
    source = tmp_path / "source.zip"
    source.write_bytes(PAYLOAD)
    destination = tmp_path / "cache" / "copy.zip"
    fetch(source.as_uri(), destination, md5(PAYLOAD), progress=False)
    assert destination.read_bytes() == PAYLOAD


def test_existing_valid_file_is_reused_without_network(tmp_path):
    destination = tmp_path / "data.zip"
    destination.write_bytes(PAYLOAD)
    # The URL points at a closed port: any network access would fail.
    assert fetch(closed_port_url(), destination, md5(PAYLOAD), progress=False) == destination
    assert fetch(closed_port_url(), destination, None, progress=False) == destination


def test_existing_file_with_wrong_checksum_is_downloaded_again(server, tmp_path):
    destination = tmp_path / "data.zip"
    destination.write_bytes(b"stale")
    fetch(server("/data.zip", PAYLOAD), destination, md5(PAYLOAD), progress=False)
    assert destination.read_bytes() == PAYLOAD


def test_corrupted_download_leaves_nothing(server, tmp_path):
    corrupted = PAYLOAD[:-1] + b"\x00"
    destination = tmp_path / "data.zip"
    with pytest.raises(DataError, match="corrupted.*md5") as error:
        fetch(server("/data.zip", corrupted), destination, md5(PAYLOAD), progress=False)
    assert "dataset.path=" in str(error.value) and "Retry" in str(error.value)
    assert leftovers(tmp_path) == []


def test_interrupted_download_leaves_nothing(server, tmp_path):
    url = server("/data.zip", PAYLOAD, bytes_to_send=len(PAYLOAD) // 2)
    destination = tmp_path / "data.zip"
    with pytest.raises(DataError, match=f"interrupted: received {len(PAYLOAD) // 2} of {len(PAYLOAD)} bytes"):
        fetch(url, destination, md5(PAYLOAD), progress=False)
    assert leftovers(tmp_path) == []
    # Without a checksum the size check alone catches it.
    with pytest.raises(DataError, match="interrupted"):
        fetch(url, destination, None, progress=False)
    assert leftovers(tmp_path) == []


def test_error_mid_stream_leaves_nothing(tmp_path, monkeypatch):
    class BrokenResponse:
        headers = {"Content-Length": str(len(PAYLOAD))}
        chunks = [PAYLOAD[:100]]

        def read(self, size: int) -> bytes:
            if self.chunks:
                return self.chunks.pop()
            raise ConnectionResetError("connection reset by peer")

        def __enter__(self):
            return self

        def __exit__(self, *exc_info) -> None:
            pass

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: BrokenResponse())
    with pytest.raises(DataError, match="interrupted: the connection failed after 100 bytes"):
        fetch("http://example.invalid/data.zip", tmp_path / "data.zip", None, progress=False)
    assert leftovers(tmp_path) == []


def test_offline_error_names_url_and_local_path_option(tmp_path):
    url = closed_port_url()
    with pytest.raises(DataError) as error:
        fetch(url, tmp_path / "data.zip", None, progress=False)
    message = str(error.value)
    assert url in message and "by hand" in message and "dataset.path=/path/to/file.zip" in message
    assert leftovers(tmp_path) == []


def test_http_error_is_a_data_error(server, tmp_path):
    url = server("/other.zip", PAYLOAD).replace("other", "missing")
    with pytest.raises(DataError, match="404"):
        fetch(url, tmp_path / "data.zip", None, progress=False)


@pytest.mark.parametrize("checksum", ["md5", "md5:xyz", "crc32:00000000", "sha256:" + "0" * 32, "0" * 32])
def test_malformed_checksum_is_rejected(checksum):
    with pytest.raises(ValueError, match="md5:<32 hex digits>"):
        parse_checksum(checksum)


def test_parse_checksum_normalises_case():
    assert parse_checksum("MD5:" + "AB" * 16) == ("md5", "ab" * 16)


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_extract_member_keeps_archive_folder(tmp_path):
    archive = make_zip(
        tmp_path / "ml-1m.zip", {"ml-1m/ratings.dat": b"1::2::3::4\n", "ml-1m/movies.dat": b"x"}
    )
    target = extract_member(archive, "ratings.dat", tmp_path / "out")
    assert target == tmp_path / "out" / "ml-1m" / "ratings.dat"
    assert target.read_bytes() == b"1::2::3::4\n"
    assert leftovers(target.parent) == ["ratings.dat"]
    # Extracting again overwrites in place.
    assert extract_member(archive, "ratings.dat", tmp_path / "out").read_bytes() == b"1::2::3::4\n"


@pytest.mark.parametrize(
    "evil_name", ["../escaped/ratings.dat", "/absolute/ratings.dat", "a/../../ratings.dat"]
)
def test_zip_slip_member_is_rejected(tmp_path, evil_name):
    archive = make_zip(tmp_path / "evil.zip", {evil_name: b"1::2::3::4\n"})
    destination = tmp_path / "deep" / "out"
    with pytest.raises(DataError, match="zip-slip"):
        extract_member(archive, "ratings.dat", destination)
    assert not (tmp_path / "deep").exists() and not (tmp_path / "escaped").exists()
    assert not Path("/absolute/ratings.dat").exists()


def test_extract_member_missing_or_ambiguous(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"x/ratings.csv": b"", "y/ratings.csv": b"", "z/movies.csv": b""})
    with pytest.raises(DataError, match="exactly one file named 'ratings.dat'; found none"):
        extract_member(archive, "ratings.dat", tmp_path / "out")
    with pytest.raises(DataError, match="found x/ratings.csv, y/ratings.csv"):
        extract_member(archive, "ratings.csv", tmp_path / "out")
    # "ratings.csv" must match a whole file name, not the end of "old_ratings.csv".
    archive = make_zip(tmp_path / "b.zip", {"x/old_ratings.csv": b""})
    with pytest.raises(DataError, match="found none"):
        extract_member(archive, "ratings.csv", tmp_path / "out")


def test_not_a_zip_is_a_data_error(tmp_path):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"this is not a zip archive")
    with pytest.raises(DataError, match="not a readable zip archive"):
        extract_member(broken, "ratings.dat", tmp_path / "out")
