"""Shared test setup: offline, tiny profile, a private cache, and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

# Before anything imports open_clip or starts a notebook kernel (kernels inherit this environment):
# no hub lookups (they would retry for 50 s offline), the tiny profile, and a cache the tests own.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("MMLESSON_PROFILE", "tiny")
os.environ.setdefault("MMLESSON_CACHE", tempfile.mkdtemp(prefix="mmlesson-test-cache-"))
os.environ.setdefault("MPLBACKEND", "Agg")
for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
    os.environ.pop(proxy, None)  # the loopback server must be reached directly


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """nbval's cells are slow: running the lessons takes minutes (`pytest -m "not slow"` leaves them out)."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


class FileServer:
    """A tiny HTTP server that can misbehave on purpose, one behaviour per path.

    `/good` serves `body`; `/truncated` promises the full length and closes half-way; `/wrong` serves other
    bytes of the same length; `/slow` serves `body` in small pieces with pauses (to make two downloads
    overlap); `/gone` sends a third of the body and then the whole server shuts down. Anything else is 404.
    """

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_HEAD(self) -> None:
                self.send_response(200 if self.path in ("/good", "/slow") else 404)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()

            def do_GET(self) -> None:
                server.hits[self.path] += 1
                behaviour = getattr(server, "serve_" + self.path.strip("/"), None)
                if behaviour is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                behaviour(self.wfile)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def serve_good(self, out) -> None:
        out.write(self.body)

    def serve_truncated(self, out) -> None:
        out.write(self.body[: len(self.body) // 2])

    def serve_wrong(self, out) -> None:
        out.write(bytes(255 - b for b in self.body))

    def serve_slow(self, out) -> None:
        for start in range(0, len(self.body), len(self.body) // 20):
            out.write(self.body[start : start + len(self.body) // 20])
            out.flush()
            time.sleep(0.05)

    def serve_gone(self, out) -> None:
        out.write(self.body[: len(self.body) // 3])
        out.flush()
        threading.Thread(target=self.close).start()  # the connection closes and nobody answers again

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def payload() -> bytes:
    """A few hundred kB of bytes that are not all alike."""
    return hashlib.sha256(b"mmlesson").digest() * 10_000


@pytest.fixture
def file_server(payload: bytes) -> Iterator[FileServer]:
    server = FileServer(payload)
    yield server
    try:
        server.close()
    except OSError:
        pass


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty cache folder for one test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("MMLESSON_CACHE", str(folder))
    return folder


def copy_shipped(folder: Path, *names: str) -> Path:
    """Copy every shipped file of the models `names` (weights, manifest, config) into folder."""
    from mmlesson.assets import WEIGHTS_DIR

    for name in names:
        for path in WEIGHTS_DIR.glob(f"{name}.*"):
            shutil.copy(path, folder / path.name)
    return folder


def damage(path: Path) -> None:
    """Change a file's last byte, as a broken copy or download would."""
    content = bytearray(path.read_bytes())
    content[-1] ^= 0xFF
    path.write_bytes(bytes(content))


def free_port() -> int:
    """A loopback port with nothing listening (for 'connection refused')."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def bundle():
    """An untrained, narrow tiny CLIP: input handling and arithmetic do not depend on trained weights."""
    import torch

    from mmlesson import train
    from mmlesson.clip import bundle_from_model

    model, tokenizer = train.new_tiny_clip(width=64, layers=1)
    return bundle_from_model(model.eval(), tokenizer, "test-clip", torch.device("cpu"))
