"""``flexbench data fetch`` against a loopback HTTP server serving the synthetic archives."""

from __future__ import annotations

import hashlib
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from flexbench.datasets import fetch as fetch_mod
from flexbench.datasets.checksums import SOURCES, Remote
from flexbench.datasets.movielens import load_movielens
from flexbench.datasets.synthetic import writer
from flexbench.errors import FlexBenchError

pytestmark = pytest.mark.network


class _Files:
    def __init__(self) -> None:
        self.content: dict[str, bytes] = {}
        self.cut_next = 0             # serve only this many bytes of the next response, then drop
        self.ranges: list[str | None] = []


def _handler(files: _Files) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.content.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404)
                return
            rng = self.headers.get("Range")
            files.ranges.append(rng)
            start = int(rng.split("=")[1].split("-")[0]) if rng else 0
            self.send_response(206 if rng else 200)
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            payload = body[start:]
            if files.cut_next:
                payload, files.cut_next = payload[:files.cut_next], 0
                self.wfile.write(payload)
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture()
def server() -> Iterator[tuple[str, _Files]]:
    files = _Files()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(files))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture()
def ml_zip(tmp_path: Path) -> bytes:
    folder = writer("ml-1m")(tmp_path / "src", "small", 0)
    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, f"ml-1m/{path.name}")
    return archive.read_bytes()


def _use(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    remote = Remote("unused", "ml-1m.zip", "md5", hashlib.md5(data).hexdigest(), len(data), unpack=True)
    monkeypatch.setitem(fetch_mod.SOURCES, "ml-1m", (remote,))


def test_interrupted_download_resumes_with_range(server, ml_zip, monkeypatch, tmp_path: Path) -> None:
    url, files = server
    files.content["ml-1m.zip"] = ml_zip
    _use(monkeypatch, ml_zip)
    files.cut_next = len(ml_zip) // 3
    with pytest.raises(FlexBenchError, match="interrupted"):
        fetch_mod.fetch("ml-1m", tmp_path / "raw", base_url=url, progress=False)
    part = tmp_path / "raw" / "ml-1m.zip.part"
    assert part.stat().st_size == len(ml_zip) // 3
    produced = fetch_mod.fetch("ml-1m", tmp_path / "raw", base_url=url, progress=False)
    assert files.ranges[-1] == f"bytes={len(ml_zip) // 3}-"
    assert not part.exists() and (tmp_path / "raw" / "ml-1m.zip").read_bytes() == ml_zip
    assert produced == [tmp_path / "raw" / "ml-1m"]
    assert len(load_movielens(tmp_path / "raw").ratings) == 24_000


def test_corrupted_download_fails_checksum_and_is_not_kept(server, ml_zip, monkeypatch, tmp_path: Path) -> None:
    url, files = server
    _use(monkeypatch, ml_zip)
    files.content["ml-1m.zip"] = ml_zip[:-10] + bytes(10)
    with pytest.raises(fetch_mod.ChecksumMismatch, match="md5 is .* expected"):
        fetch_mod.fetch("ml-1m", tmp_path / "raw", base_url=url, progress=False)
    assert not any((tmp_path / "raw").iterdir())
    with pytest.raises(FlexBenchError, match="HTTP 404"):
        fetch_mod.download(Remote(url + "/missing.zip", "missing.zip", None, None), tmp_path, progress=False)


def test_recorded_checksums() -> None:
    (ml,) = SOURCES["ml-1m"]
    assert (ml.algorithm, ml.digest) == ("md5", "c4d9eecfca2ab87c1945afe126590906")
    assert ml.url == "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
    assert all(r.digest for rs in SOURCES.values() for r in rs)
