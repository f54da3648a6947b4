"""The download path a learner's `fetch` takes, run for real against a server on 127.0.0.1.

After every scenario the cache must hold either the right file or nothing: never a half-written file. The
bad servers and broken caches are in one table, in test_bad_input_downloads.py; a cache shared by a room is
in test_shared_cache.py. Here: the healthy path, the hash records, permissions, deadlines and leftovers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmlesson.course import assets
from mmlesson.errors import MMLessonError


@pytest.fixture
def make_asset(payload: bytes):
    """Register a throw-away asset whose URLs point at the test server; removed afterwards."""
    names = []

    def make(*urls: str, sha256: str | None = None) -> assets.Asset:
        asset = assets.Asset(
            name=f"test-asset-{len(names)}",
            filename=f"test-asset-{len(names)}.bin",
            urls=urls,
            sha256=sha256 or hashlib.sha256(payload).hexdigest(),
            size=len(payload),
            license="test",
            purpose="test",
            profiles=("test",),
        )
        names.append(asset.name)
        return assets.register(asset)

    yield make
    for name in names:
        assets.unregister(name)


def cache_files(cache: Path) -> list[str]:
    """What a learner would find in the cache (locks and hash records live apart, in .locks/ and .records/);
    a leftover part file of a download would show here."""
    if not cache.exists():
        return []
    return sorted(p.name for p in cache.iterdir() if p.name not in (assets.LOCKS_DIR, assets.RECORDS_DIR))


def test_normal_download_lands_verified(cache, file_server, make_asset, payload):
    asset = make_asset(file_server.url("/good"))
    path = assets.fetch(asset.name, progress=False)
    assert path == cache / asset.filename
    assert path.read_bytes() == payload
    assert cache_files(cache) == [asset.filename]
    assert assets.is_cached(asset.name)


def test_cached_file_is_not_downloaded_again(cache, file_server, make_asset):
    asset = make_asset(file_server.url("/good"))
    assets.fetch(asset.name, progress=False)
    assets.fetch(asset.name, progress=False)
    assert file_server.hits["/good"] == 1


@pytest.fixture
def hashes(monkeypatch) -> list[str]:
    """The names of the files `assets.sha256_of` reads, in order; this process remembers no earlier hash."""
    seen: list[str] = []
    real = assets.sha256_of

    def spy(path: Path, *args, **kwargs) -> str:
        seen.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(assets, "sha256_of", spy)
    monkeypatch.setattr(assets, "_verified_here", set())
    return seen


def test_a_fetched_file_is_never_hashed_again(cache, file_server, make_asset, hashes):
    asset = make_asset(file_server.url("/good"))
    assets.fetch(asset.name, progress=False)  # hashed while it arrived, and recorded
    assets._verified_here.clear()  # as in a new kernel: only the record in the cache remains
    assert assets.is_cached(asset.name) and assets.is_cached(asset.name)
    assert assets.fetch(asset.name, progress=False) == cache / asset.filename
    assert hashes == []
    record = json.loads((cache / assets.RECORDS_DIR / f"{asset.filename}.json").read_text())
    assert record["sha256"] == asset.sha256 and record["size"] == asset.size


def test_a_file_put_there_by_hand_is_hashed_once_and_recorded(cache, make_asset, payload, hashes):
    asset = make_asset("http://127.0.0.1:9/unused")
    cache.mkdir(parents=True)
    (cache / asset.filename).write_bytes(payload)  # a manual download: no record yet
    assert assets.is_cached(asset.name)
    assets._verified_here.clear()
    assert assets.is_cached(asset.name) and assets.fetch(asset.name, progress=False)
    assert hashes == [asset.filename]


def test_a_changed_file_of_the_same_size_is_hashed_again_and_refused(
    cache, file_server, make_asset, payload, hashes, capsys
):
    asset = make_asset(file_server.url("/good"))
    path = assets.fetch(asset.name, progress=False)
    before = path.stat().st_mtime_ns
    path.write_bytes(payload[:-1] + b"X")  # same size, same inode
    os.utime(path, ns=(before + 5_000_000_000, before + 5_000_000_000))  # a later mtime, whatever the clock
    assert not assets.is_cached(asset.name)
    assert hashes == [asset.filename]
    assert assets.fetch(asset.name, progress=False).read_bytes() == payload
    assert "corrupt" in capsys.readouterr().out and file_server.hits["/good"] == 2


def test_a_touched_but_intact_file_is_hashed_once_then_trusted_again(cache, file_server, make_asset, hashes):
    asset = make_asset(file_server.url("/good"))
    path = assets.fetch(asset.name, progress=False)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 5_000_000_000))
    assets._verified_here.clear()
    assert assets.is_cached(asset.name) and assets.is_cached(asset.name)
    assert hashes == [asset.filename]  # the record was rewritten after the one hash
    assert file_server.hits["/good"] == 1


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_is_read_without_changing_it():
    with umask(0o027):
        assert assets.current_umask() == 0o027 and assets.file_mode() == 0o640
        assert os.umask(0o027) == 0o027  # still in place


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_get_the_mode_open_would_give(tmp_path, mask, expected):
    with umask(mask):
        with assets.written_atomically(tmp_path / "index.npz") as temporary:
            temporary.write_bytes(b"vectors")
        (tmp_path / "plain").write_bytes(b"")
    assert mode(tmp_path / "index.npz") == expected == mode(tmp_path / "plain")


def test_a_download_and_its_folders_are_readable_by_a_room_with_umask_022(
    tmp_path, monkeypatch, file_server, make_asset
):
    monkeypatch.setenv("MMLESSON_CACHE", str(tmp_path / "shared" / "cache"))
    asset = make_asset(file_server.url("/good"))
    with umask(0o022):
        path = assets.fetch(asset.name, progress=False)
    record = path.parent / assets.RECORDS_DIR / f"{asset.filename}.json"
    assert mode(path) == mode(record) == 0o644
    assert mode(path.parent) == mode(path.parent.parent) == mode(record.parent) == 0o755


def test_download_deadline_from_size_variable_or_argument(monkeypatch, make_asset):
    small, big = make_asset("http://x/a"), assets.get("clip-vit-b-32-laion2b")
    monkeypatch.delenv(assets.DEADLINE_VARIABLE, raising=False)
    assert assets.download_deadline(small) == 120  # at least two minutes
    assert assets.download_deadline(big) == pytest.approx(605_143_316 / 100_000)  # 100 kB/s
    monkeypatch.setenv(assets.DEADLINE_VARIABLE, "45")
    assert assets.download_deadline(big) == 45
    assert assets.download_deadline(big, deadline=3) == 3
    for bad in ("soon", "0", "-5", "nan"):
        monkeypatch.setenv(assets.DEADLINE_VARIABLE, bad)
        with pytest.raises(MMLessonError, match="MMLESSON_DOWNLOAD_DEADLINE must be a number of seconds"):
            assets.download_deadline(small)
    with pytest.raises(MMLessonError, match="deadline must be"):
        assets.download_deadline(small, deadline=0)


def dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_only_part_files_of_dead_or_overdue_downloads_are_removed(tmp_path):
    target = tmp_path / "weights.bin"
    dead, alive, overdue = (assets._part_path(target, pid) for pid in (dead_pid(), os.getppid(), 1))
    for part in (dead, alive, overdue):
        part.write_bytes(b"half")
    old = time.time() - 100
    os.utime(overdue, (old, old))
    (tmp_path / "other.bin.123.part").write_bytes(b"")  # another file's: not ours to judge
    assets._remove_leftovers(target, limit=50)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, "other.bin.123.part"])


def test_unwritable_cache_gets_advice(tmp_path, monkeypatch, make_asset, file_server):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MMLESSON_CACHE", str(blocker / "cache"))
    asset = make_asset(file_server.url("/good"))
    with pytest.raises(MMLessonError, match="not writable.*MMLESSON_CACHE"):
        assets.fetch(asset.name, progress=False)


def test_unknown_asset_lists_known_names():
    with pytest.raises(MMLessonError, match="clip-vit-b-32-laion2b"):
        assets.get("no-such-weights")


def test_registry_entries_are_complete():
    full = assets.for_profile("full")
    assert {a.name for a in full} >= {"clip-vit-b-32-laion2b", "vqgan-imagenet-f16-16384"}
    for asset in assets.REGISTRY.values():
        assert len(asset.sha256) == 64 and asset.size > 0 and asset.license and asset.purpose
        assert all(url.startswith(("https://", "http://")) for url in asset.urls)
    assert assets.for_profile("tiny") == []


def test_register_rejects_bad_hash():
    with pytest.raises(ValueError, match="64 lowercase hex"):
        assets.register(assets.Asset("x", "x", ("http://x",), "abc", 1, "t", "t"))


def test_cache_dir_defaults_to_user_cache(monkeypatch):
    monkeypatch.delenv("MMLESSON_CACHE")
    assert "mmlesson" in str(assets.cache_dir())
    monkeypatch.setenv("MMLESSON_CACHE", "~/somewhere")
    assert assets.cache_dir() == Path.home() / "somewhere"


def test_verify_shipped_detects_missing_and_tampered(tmp_path):
    good, bad = tmp_path / "good.safetensors", tmp_path / "bad.safetensors"
    good.write_bytes(b"weights")
    bad.write_bytes(b"tampered")
    files = {
        "good.safetensors": {"sha256": hashlib.sha256(b"weights").hexdigest(), "size": 7},
        "bad.safetensors": {"sha256": hashlib.sha256(b"weights").hexdigest(), "size": 8},
        "gone.safetensors": {"sha256": "0" * 64, "size": 1},
    }
    (tmp_path / "tiny.manifest.json").write_text(json.dumps({"files": files}))
    rows = {name: ok for name, ok, _ in assets.verify_shipped(tmp_path)}
    assert rows == {"bad.safetensors": False, "gone.safetensors": False, "good.safetensors": True}
