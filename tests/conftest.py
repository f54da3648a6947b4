"""Shared test setup: offline, tiny profile, a private cache, and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import FileServer

# Before anything imports open_clip or starts a notebook kernel (kernels inherit this environment):
# no hub lookups (they would retry for 50 s offline), the tiny profile, and a cache the tests own.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("MMLESSON_PROFILE", "tiny")
os.environ.setdefault("MMLESSON_CACHE", tempfile.mkdtemp(prefix="mmlesson-test-cache-"))
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # Workers run side by side (pyproject's -n): each takes its share of the cores, and so do the kernels
    # and processes it starts. More threads than cores would not only share them: PyTorch's OpenMP threads
    # wait for each other by spinning, so an oversubscribed machine runs many times slower.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    share = max(1, cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    for variable in ("MMLESSON_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(variable, str(share))
for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
    os.environ.pop(proxy, None)  # the loopback server must be reached directly


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """nbval's cells are slow: running the lessons takes minutes (`pytest -m "not slow"` leaves them out)."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


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


@pytest.fixture(scope="session")
def bundle():
    """An untrained, narrow tiny CLIP: input handling and arithmetic do not depend on trained weights."""
    import torch

    from mmlesson import train_clip
    from mmlesson.clip import bundle_from_model

    model, tokenizer = train_clip.new_tiny_clip(width=64, layers=1)
    return bundle_from_model(model.eval(), tokenizer, "test-clip", torch.device("cpu"))
