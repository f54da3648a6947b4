"""Helpers the tests share: the repository's root and pyproject, loopback servers and ports, copies of the
shipped weights, and pip with the package index it needs. Fixtures live in `conftest.py`; the misbehaving
download server in `fault_server.py`.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


# --- the project's own description -----------------------------------------------------------------------


def requirement_key(requirement: str) -> tuple[str, str]:
    """('open-clip-torch', '>=2.24') from 'open_clip_torch>=2.24'; names normalised as pip does (PEP 503)."""
    requirement = requirement.split(";")[0].strip()
    name, specifier = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", requirement).groups()
    return re.sub(r"[-_.]+", "-", name).lower(), specifier.replace(" ", "")


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def names(requirements: list[str]) -> set[str]:
    """The normalised package names of `requirements`."""
    return {requirement_key(r)[0] for r in requirements}


# --- loopback servers, ports and files ---------------------------------------------------------------------


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


def copy_shipped(folder: Path, *names: str) -> Path:
    """Copy every shipped file of the models `names` (weights, manifest, config) into folder."""
    from mmlesson.course.assets import WEIGHTS_DIR

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


# --- pip and the package index -----------------------------------------------------------------------------


def pip(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@functools.cache
def index_unreachable() -> str | None:
    """Why pip cannot reach the package index, or None when it can (asked once per test session)."""
    try:
        probe = pip("index", "versions", "ipywidgets", "--timeout", "10", "--retries", "0", timeout=60)
    except subprocess.TimeoutExpired:
        return "pip could not reach the package index within 60 s"
    if probe.returncode != 0 or "7.7.1" not in probe.stdout:
        last = (probe.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"pip could not reach the package index (pip index versions ipywidgets: {last})"
    return None


def require_index() -> None:
    reason = index_unreachable()
    if reason:
        pytest.skip(reason)


def command_gives_the_recorded_settings(training: dict, model: str, settings: type) -> bool:
    """A manifest's command, parsed by the trainers' command line, asks for exactly the settings the
    manifest records (so neither can be edited without the other)."""
    import dataclasses

    from mmlesson.course.training import COMMAND, parse_settings

    command = training["command"]
    assert command.startswith(f"{COMMAND} {model}"), command
    options = command.removeprefix(f"{COMMAND} {model}").split()
    parsed, _ = parse_settings(model, settings, options)
    recorded = json.loads(json.dumps(dataclasses.asdict(parsed)))
    return recorded == training["settings"]
