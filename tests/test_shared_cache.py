"""A cache shared by a workshop room: the instructor fills it, the participants (other Unix users) read it.

The real thing needs two users. The test (root) plays the instructor: with umask 022 it fetches into a
folder under /tmp that every user can traverse. Then a participant process runs as `nobody`, for whom the
cache is read-only, and must find every fetched file valid (through `assets.is_cached`, `assets.fetch` and
`mmlesson.load_vqgan`) without writing anything, without a lock and without hashing a recorded file; a
missing file and a file left private (mode 0600) must each be explained. Where the test cannot switch users
it is skipped with the reason; the read-only logic is also tested in-process, which works for anyone.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from mmlesson import vqgan
from mmlesson.course import assets
from tests.fault_server import FaultServer

ROOT = Path(__file__).resolve().parents[1]
BOUND_S = 180  # the participant imports torch; on a busy 2-core machine that alone takes 10-20 s


def others_can_use(path: Path) -> bool:
    """True when a user who is neither the owner nor in the group may reach and read `path`."""
    path = path.resolve()
    folders_ok = all(os.stat(folder).st_mode & stat.S_IXOTH for folder in path.parents)
    return folders_ok and bool(os.stat(path).st_mode & stat.S_IROTH)


def participant_python() -> Path | None:
    """This Python, or the system's Python of the same version, if `nobody` may run it."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (Path(sys.executable), Path("/usr/bin") / version, Path("/usr/local/bin") / version):
        if candidate.exists() and others_can_use(candidate):
            return candidate.resolve()
    return None


def room_or_skip() -> tuple[pwd.struct_passwd, Path, str]:
    """(the `nobody` account, a Python it may run, a PYTHONPATH that gives it our packages)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("switching to a second user needs root; the in-process read-only tests still run")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user called nobody on this machine to play the participant")
    python = participant_python()
    if python is None:
        pytest.skip(f"nobody may not run {sys.executable} nor a system Python {sys.version_info[:2]}")
    packages = sysconfig.get_paths()["purelib"]
    if not (others_can_use(Path(packages)) and others_can_use(ROOT / "mmlesson" / "course" / "assets.py")):
        pytest.skip(f"nobody may not read the course or its packages ({ROOT}, {packages})")
    return nobody, python, os.pathsep.join([str(ROOT), packages])


@pytest.fixture
def shared(monkeypatch) -> Iterator[Path]:
    """An empty folder for the cache, in a folder every user may traverse (pytest's tmp_path is 0700)."""
    base = Path(tempfile.mkdtemp(prefix="mmlesson-room-"))
    base.chmod(0o755)
    monkeypatch.setenv("MMLESSON_CACHE", str(base / "cache"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


def with_umask(mask: int, call):
    previous = os.umask(mask)
    try:
        return call()
    finally:
        os.umask(previous)


def stand_in(name: str, body: bytes, url: str, original: assets.Asset | None = None) -> assets.Asset:
    """A registry entry for `body`: the original entry's name and file with other bytes, or a new one."""
    digest = hashlib.sha256(body).hexdigest()
    if original is not None:
        return replace(original, urls=(url,), sha256=digest, size=len(body))
    return assets.Asset(name, f"{name}.bin", (url,), digest, len(body), "test", "test", ("test",))


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under `folder` with its mode and mtime: proof that nobody wrote anything."""
    return {
        str(path.relative_to(folder)): (path.lstat().st_mode, path.lstat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
    }


PARTICIPANT = """
import json, sys
from pathlib import Path
from mmlesson import vqgan
from mmlesson.course import assets

for entry in json.loads(sys.argv[1]):
    entry.update(urls=tuple(entry["urls"]), profiles=tuple(entry["profiles"]))
    assets.register(assets.Asset(**entry))
hashed, real = [], assets.sha256_of
assets.sha256_of = lambda path, *args: hashed.append(Path(path).name) or real(path, *args)
fetch = lambda name: str(assets.fetch(name, progress=False))
report = {}

def attempt(key, call):
    try:
        report[key] = call()
    except assets.MMLessonError as error:
        report[key] = f"{type(error).__name__}: {error}"

def vqgan_sum():
    return sum(float(v.double().sum()) for v in vqgan.load_vqgan("full", "cpu").state_dict().values())

attempt("fetched", lambda: [assets.is_cached("room-weights"), fetch("room-weights")])
attempt("by_hand", lambda: [assets.is_cached("room-by-hand"), bool(fetch("room-by-hand")),
                            assets.is_cached("room-by-hand")])
attempt("missing", lambda: fetch("room-missing"))
attempt("private", lambda: assets.is_cached("room-private"))
attempt("private_fetch", lambda: fetch("room-private"))
attempt("vqgan", vqgan_sum)
report["hashed"] = hashed
print(json.dumps(report))
"""


def run_as_participant(room, home: Path, entries: list[assets.Asset]) -> dict:
    nobody, python, pythonpath = room
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "MPLCONFIGDIR": str(home / ".matplotlib"),
        "MMLESSON_CACHE": os.environ["MMLESSON_CACHE"],
        "MMLESSON_PROFILE": "tiny",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": pythonpath,
        "PYTHONDONTWRITEBYTECODE": "1",
    }

    def become_nobody() -> None:
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)

    done = subprocess.run(
        [str(python), "-c", PARTICIPANT, json.dumps([asdict(entry) for entry in entries])],
        env=env,
        cwd=str(home),
        preexec_fn=become_nobody,
        capture_output=True,
        text=True,
        timeout=BOUND_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_participant_uses_the_instructors_cache_without_writing_to_it(shared, payload, monkeypatch):
    room = room_or_skip()
    cache, home = shared / "cache", shared / "home"
    home.mkdir()
    os.chown(home, room[0].pw_uid, room[0].pw_gid)
    torch.manual_seed(0)
    model = vqgan.VQGAN(vqgan.tiny_vqgan_config(), "room-vqgan")
    checkpoint = shared / "served.ckpt"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    config = json.dumps({"model": {"params": vqgan.tiny_vqgan_config()}}).encode()  # YAML is a superset
    served = {"/weights": payload, "/ckpt": checkpoint.read_bytes(), "/config": config}
    servers = {path: FaultServer(body) for path, body in served.items()}
    url = {path: server.url("/good") for path, server in servers.items()}
    entries = [
        stand_in("room-weights", payload, url["/weights"]),
        stand_in("room-by-hand", payload, "http://127.0.0.1:9/nowhere"),
        stand_in("room-missing", payload, "http://127.0.0.1:9/nowhere"),
        stand_in("room-private", payload, "http://127.0.0.1:9/nowhere"),
        stand_in("", served["/ckpt"], url["/ckpt"], assets.get(vqgan.FULL_VQGAN_ASSET)),
        stand_in("", config, url["/config"], assets.get(f"{vqgan.FULL_VQGAN_ASSET}-config")),
    ]
    for entry in entries:
        monkeypatch.setitem(assets.REGISTRY, entry.name, entry)

    def instructor() -> float:
        """`python -m mmlesson fetch`, a file copied by hand, a file an old version left private, one load."""
        assets.fetch("room-weights", progress=False)
        (cache / "room-by-hand.bin").write_bytes(payload)
        (cache / "room-private.bin").write_bytes(payload)
        (cache / "room-private.bin").chmod(0o600)
        loaded = vqgan.load_vqgan("full", "cpu")
        return sum(float(v.double().sum()) for v in loaded.state_dict().values())

    expected = with_umask(0o022, instructor)
    for server in servers.values():
        server.close()  # the participant must not need the network
    assert stat.S_IMODE((cache / "room-weights.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE(cache.stat().st_mode) == 0o755
    before = listing(cache)

    report = run_as_participant(room, home, entries)

    assert report["fetched"] == [True, str(cache / "room-weights.bin")]
    assert report["by_hand"] == [True, True, True]
    assert report["hashed"].count("room-weights.bin") == 0  # the record vouched for it
    assert report["hashed"].count("room-by-hand.bin") == 1  # no record: hashed once in the process
    assert report["missing"].startswith("CacheAccessError: room-missing.bin")
    assert "read-only for you" in report["missing"] and "Ask the instructor" in report["missing"]
    assert "set MMLESSON_CACHE to a folder you can write to" in report["missing"]
    for key in ("private", "private_fetch"):
        assert report[key].startswith("CacheAccessError: The cached file"), report[key]
        assert "belongs to user root" in report[key] and f"chmod -R a+rX {cache}" in report[key]
    assert report["vqgan"] == pytest.approx(expected)
    assert listing(cache) == before  # no lock, no record, no part file: the participant wrote nothing


# -- the same logic in-process: a cache this process may not write to ---------------------------------------


@pytest.fixture
def read_only(cache, monkeypatch) -> Path:
    """Make every write probe fail as a read-only shared cache does, and forbid taking a lock."""
    cache.mkdir(parents=True)

    def refused(folder: Path) -> OSError:
        return PermissionError(errno.EACCES, "Permission denied", str(folder))

    monkeypatch.setattr(assets, "write_problem", refused)
    import filelock

    def no_lock(*args, **kwargs):
        raise AssertionError("a lock was taken in a read-only cache")

    monkeypatch.setattr(filelock, "FileLock", no_lock)
    return cache


@pytest.fixture
def room_asset(payload: bytes) -> Iterator[assets.Asset]:
    asset = assets.register(stand_in("room-in-process", payload, "http://127.0.0.1:9/nowhere"))
    yield asset
    assets.unregister(asset.name)


def test_a_recorded_file_in_a_read_only_cache_needs_no_lock_and_no_hash(
    cache, payload, room_asset, monkeypatch
):
    cache.mkdir(parents=True)
    (cache / room_asset.filename).write_bytes(payload)
    assert assets.is_cached(room_asset.name)  # the instructor's side: hashed once, recorded
    monkeypatch.setattr(assets, "_verified_here", set())
    monkeypatch.setattr(assets, "sha256_of", lambda *args: pytest.fail("a recorded file was hashed"))
    monkeypatch.setattr(assets, "write_problem", lambda folder: PermissionError(errno.EACCES, "denied"))
    assert assets.fetch(room_asset.name, progress=False) == cache / room_asset.filename


def test_a_missing_file_in_a_read_only_cache_is_explained(read_only, room_asset):
    with pytest.raises(assets.CacheAccessError) as error:
        assets.fetch(room_asset.name, progress=False)
    message = str(error.value)
    assert f"{room_asset.filename} (320.0 kB) is missing in the cache {read_only}" in message
    assert "read-only for you" in message and "python -m mmlesson fetch --profile test" in message


def test_a_damaged_file_in_a_read_only_cache_is_explained_and_kept(read_only, room_asset, payload):
    (read_only / room_asset.filename).write_bytes(payload[:-1] + b"X")
    with pytest.raises(assets.CacheAccessError, match="is damaged.*read-only for you"):
        assets.fetch(room_asset.name, progress=False)
    assert (read_only / room_asset.filename).exists()  # not ours to delete


def test_a_cache_that_is_not_a_folder_is_not_called_read_only(tmp_path, monkeypatch, room_asset):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("MMLESSON_CACHE", str(tmp_path / "a-file" / "cache"))
    with pytest.raises(assets.MMLessonError, match="is not writable") as error:
        assets.fetch(room_asset.name, progress=False)
    assert not isinstance(error.value, assets.CacheAccessError)
