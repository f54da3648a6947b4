"""Every file the course may download, and the one careful way it downloads them.

The tiny profile downloads nothing: its weights ship inside the package. The full profile needs pretrained
weights (hundreds of MB each). They are listed once, in `REGISTRY`, with every URL we know (mirrors after the
primary), the sha256 we pin, the size, the license and what the course uses them for.

`fetch(name)` is careful because a workshop room is a hostile place for downloads:
- it checks the sha256 of what it got, so a truncated or tampered file is never used;
- it writes to `.{filename}.{pid}.part` and renames it only once the hash matches, so the cache holds either
  the right file or nothing; the part file of a kernel that was killed is removed by the next fetch;
- it holds a lock per file, so two kernels asking for the same file at once download it once, and a kernel
  waiting for that lock gives up after the deadline instead of waiting forever;
- each download has a deadline (`MMLESSON_DOWNLOAD_DEADLINE` seconds; by default enough for 100 kB/s, and
  at least two minutes) and a read timeout (a stalled server), and stops as soon as more bytes arrive than
  the registry says the file has;
- a cached file that no longer matches its hash is deleted and fetched again;
- when every URL fails it says which file, how big, from where, why each URL failed, and where to put
  it by hand.

A whole room can share one cache (MMLESSON_CACHE): what the course writes gets the permissions `open()`
would give it (0666 minus the umask; with umask 022 everyone can read it), and a valid cached copy is used
without a lock and without write access. A file's sha256 is computed once, when it is fetched, and kept in
`.records/{filename}.json` with the file's size, mtime and inode; later checks compare those instead of
reading 1.6 GB again. A file without a matching record (copied by hand, touched, replaced) is hashed once.

The downloading is a short streaming loop over `requests`, not pooch: pooch's downloader has a read timeout
but no total deadline and no size cap, and its temporary file (mode 0600, a random name) can neither be read
by a room nor be told from a live download once its kernel died. The progress bar is still
tqdm's (mmlesson.course.progress).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmlesson.course.asset_overrides import apply_overrides
from mmlesson.course.progress import progress_bar
from mmlesson.errors import InputError, MMLessonError

# The names lessons use; see API.md.
__all__ = [
    "for_profile",
    "human_size",
    "is_cached",
    "fetch",
    "cache_dir",
    "read_manifest",
    "shipped_weights",
]

if TYPE_CHECKING:
    import requests
    import torch

WEIGHTS_DIR = Path(__file__).parents[1] / "weights"  # mmlesson/weights/
LOCKS_DIR = ".locks"
RECORDS_DIR = ".records"
DEADLINE_VARIABLE = "MMLESSON_DOWNLOAD_DEADLINE"
MIN_DEADLINE_S = 120.0
SLOWEST_LINK = 100_000  # bytes per second: the default deadline allows a link this slow
LOCK_MARGIN_S = 30.0  # a waiting kernel allows the downloading one its deadline plus this
CHUNK = 1 << 20


@dataclass(frozen=True)
class Asset:
    """One downloadable file: where it comes from, what it must hash to, and why the course needs it."""

    name: str
    filename: str
    urls: tuple[str, ...]
    sha256: str
    size: int
    license: str
    purpose: str
    profiles: tuple[str, ...] = ("full",)


REGISTRY: dict[str, Asset] = {}


def register(asset: Asset) -> Asset:
    """Add an asset to the registry (tests register assets served from 127.0.0.1)."""
    if len(asset.sha256) != 64 or not all(c in "0123456789abcdef" for c in asset.sha256):
        raise InputError(f"{asset.name}: sha256 must be 64 lowercase hex digits, got {asset.sha256!r}")
    if not asset.urls:
        raise InputError(f"{asset.name}: at least one URL is needed")
    REGISTRY[asset.name] = asset
    return asset


def unregister(name: str) -> None:
    """Remove an asset added by `register` (used by tests to clean up)."""
    REGISTRY.pop(name, None)


class AssetUnavailableError(MMLessonError):
    """No URL gave a file with the pinned hash; the message says how to get it by hand."""


class CacheAccessError(MMLessonError):
    """The cache cannot be used as needed: a file or folder we may not read, or a read-only (shared) cache
    that lacks a file; the message says whom to ask or which other folder to use."""


def get(name: str) -> Asset:
    """The registry entry called `name`, or an error listing the names that exist."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY)) or "(none)"
        raise MMLessonError(f"No asset called {name!r}. Known assets: {known}.") from None


def for_profile(profile: str) -> list[Asset]:
    """The assets a profile needs, in registry order (the tiny profile needs none)."""
    return [asset for asset in REGISTRY.values() if profile in asset.profiles]


def display_path(path: Path) -> str:
    """Show a path with the home folder as `~`, so printed output carries no user name."""
    try:
        return "~/" + path.resolve().relative_to(Path.home().resolve()).as_posix()
    except ValueError:
        return str(path)


def human_size(n_bytes: int) -> str:
    """1234567 -> '1.2 MB' (decimal units, as download pages use)."""
    size = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


# --- permissions: what we write must be readable by a room when the umask says so ---------------------------


def _umask_from_proc() -> int | None:
    """The umask as Linux (4.7+) reports it in /proc/self/status, or None elsewhere."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    values = [int(line.split()[1], 8) for line in lines if line.startswith("Umask:")]
    return values[0] if values else None


def _umask_by_setting_it() -> int:
    """The only portable way to read the umask is to set it and set it back; for that moment every thread
    of the process would create files with the temporary mask, so this runs once, at import, and only
    where /proc cannot tell."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK_AT_IMPORT = _umask_from_proc()
if _UMASK_AT_IMPORT is None:
    _UMASK_AT_IMPORT = _umask_by_setting_it()


def current_umask() -> int:
    """The process's umask, read without changing it (/proc where it exists, else as it was at import)."""
    from_proc = _umask_from_proc()
    return _UMASK_AT_IMPORT if from_proc is None else from_proc


def file_mode() -> int:
    """The mode `open()` gives a new file: 0666 minus the umask (0644 with the usual umask 022)."""
    return 0o666 & ~current_umask()


# --- the cache folder -----------------------------------------------------------------------------------


def cache_dir() -> Path:
    """`MMLESSON_CACHE` if set (instructors point a whole room at one shared folder), else the user cache."""
    configured = os.environ.get("MMLESSON_CACHE", "").strip()
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mmlesson", appauthor=False))


def write_problem(folder: Path) -> OSError | None:
    """Why we cannot create and write files in `folder` (creating it, as mkdir does, if needed), or None."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        return error
    return None


def _not_writable_message(folder: Path, error: OSError) -> str:
    return (
        f"The cache folder {folder} is not writable ({error.strerror or error}). Set MMLESSON_CACHE to "
        "a folder you can write to, e.g. `export MMLESSON_CACHE=~/mmlesson-cache` "
        "(Windows: `set MMLESSON_CACHE=%USERPROFILE%\\mmlesson-cache`), then restart the kernel."
    )


def ensure_writable(folder: Path) -> Path:
    """Create `folder` and prove we can write there, or explain how to choose another one."""
    problem = write_problem(folder)
    if problem is not None:
        raise MMLessonError(_not_writable_message(folder, problem))
    return folder


def local_path(name: str) -> Path:
    """Where asset `name` lives (or will live) in the cache."""
    return cache_dir() / get(name).filename


@contextlib.contextmanager
def written_atomically(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed over `path` only when the block succeeds.

    Whoever reads `path` (a learner's next cell, a second process, CI) sees the old file or the new one,
    never half of one; a failed write leaves no temporary file behind. The file gets the mode `open()` would
    give it (mkstemp's 0600 would hide it from the other users of a shared folder).
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, file_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- integrity: hashed once when fetched, then vouched for by a record ------------------------------------


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so a 1 GB checkpoint does not need 1 GB of memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def matches(path: Path, sha256: str, size: int | None = None) -> bool:
    """True when the file exists with the expected size (a cheap first test) and hash (always computed)."""
    if not path.is_file():
        return False
    if size is not None and path.stat().st_size != size:
        return False
    return sha256_of(path) == sha256


# Files this process hashed itself, by path and fingerprint: a read-only cache keeps no record, and one
# hash per process is then the least we can do.
_verified_here: set[str] = set()


def _fingerprint(asset: Asset, status: os.stat_result) -> dict:
    """What a record vouches for: this hash, for the file of this size, mtime and inode."""
    return {
        "sha256": asset.sha256,
        "size": status.st_size,
        "mtime_ns": status.st_mtime_ns,
        "inode": status.st_ino,
    }


def _memory_key(target: Path, fingerprint: dict) -> str:
    return json.dumps([str(target), fingerprint], sort_keys=True)


def _record_path(target: Path) -> Path:
    return target.parent / RECORDS_DIR / f"{target.name}.json"


def _vouched_for(target: Path, fingerprint: dict) -> bool:
    """True when this process or a record in the cache already hashed exactly this file."""
    if _memory_key(target, fingerprint) in _verified_here:
        return True
    try:
        return json.loads(_record_path(target).read_text(encoding="utf-8")) == fingerprint
    except (OSError, ValueError):
        return False


def _remember_verified(target: Path, fingerprint: dict) -> None:
    """Keep the proof of a full hash in this process and, where the cache is writable, in a record.

    A record that cannot be written (a read-only shared cache) costs one hash per process, nothing more.
    """
    _verified_here.add(_memory_key(target, fingerprint))
    record = _record_path(target)
    try:
        record.parent.mkdir(exist_ok=True)
        with written_atomically(record) as temporary:
            temporary.write_text(json.dumps(fingerprint, indent=1) + "\n", encoding="utf-8")
    except OSError:
        pass


def _owner(path: Path) -> str:
    """'user alice' for the owner of `path` (or its folder, if `path` itself cannot be looked at)."""
    for candidate in (path, path.parent):
        try:
            uid = candidate.stat().st_uid
        except OSError:
            continue
        try:
            import pwd

            return f"user {pwd.getpwuid(uid).pw_name}"
        except (ImportError, KeyError):
            return f"user id {uid}"
    return "another user"


def _unreadable(path: Path, what: str) -> CacheAccessError:
    """The error for a cache file or folder that belongs to someone else and that we may not read."""
    folder = path if what == "cache folder" else path.parent
    return CacheAccessError(
        f"The {what} {path} belongs to {_owner(path)}, and you may not read it (permission denied). "
        f"A shared cache must be readable by everyone: ask its owner (the instructor) to run "
        f"`chmod -R a+rX {folder}` (files the course fetches with umask 022 are readable by all), "
        "or set MMLESSON_CACHE to a folder of your own, e.g. `export MMLESSON_CACHE=~/mmlesson-cache`, "
        "then restart the kernel."
    )


def _stat(target: Path) -> os.stat_result | None:
    """The file's status, None when it is missing, an explained error when its folder may not be read."""
    try:
        return target.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except PermissionError:
        raise _unreadable(target.parent, "cache folder") from None


def _is_verified(asset: Asset, target: Path) -> bool:
    """True when `target` is the asset's file: the size must match, then a record of an earlier full hash of
    this very file (same size, mtime and inode) is enough; without one, the file is hashed once."""
    status = _stat(target)
    if status is None or not stat.S_ISREG(status.st_mode) or status.st_size != asset.size:
        return False
    fingerprint = _fingerprint(asset, status)
    if _vouched_for(target, fingerprint):
        return True
    try:
        if sha256_of(target) != asset.sha256:
            return False
    except PermissionError:
        raise _unreadable(target, "cached file") from None
    _remember_verified(target, fingerprint)
    return True


def is_cached(name: str) -> bool:
    """True when the asset is in the cache and intact (by its size and the record of its hash, see above)."""
    asset = get(name)
    return _is_verified(asset, cache_dir() / asset.filename)


def reachable(asset: Asset, timeout: float = 3.0) -> bool:
    """True when some URL of the asset answers; a quick probe used by the `auto` profile."""
    import requests

    for url in asset.urls:
        try:
            if requests.head(url, timeout=timeout, allow_redirects=True).status_code == 200:
                return True
        except requests.RequestException:
            continue
    return False


def manual_instructions(asset: Asset, target: Path) -> str:
    """How to get the file by hand when the course cannot download it."""
    urls = "\n".join(f"  - {url}" for url in asset.urls)
    return (
        f"Download {asset.filename} ({human_size(asset.size)}) by hand from any of:\n{urls}\n"
        f"and save it as:\n  {target}\n"
        f"The course checks its sha256 ({asset.sha256}) before using it. "
        "To keep the cache elsewhere (a USB stick, a shared folder), set MMLESSON_CACHE. "
        "Without these weights the tiny profile still works: MMLESSON_PROFILE=tiny."
    )


# --- fetching ---------------------------------------------------------------------------------------------


def download_deadline(asset: Asset, deadline: float | None = None) -> float:
    """Seconds one file's download may take in all (every URL together).

    The argument, else MMLESSON_DOWNLOAD_DEADLINE, else what a 100 kB/s link needs and at least two minutes:
    a room's link is slow, but a download that would take longer is better fetched before the workshop.
    """
    if deadline is not None:
        return _positive_seconds(deadline, "deadline")
    configured = os.environ.get(DEADLINE_VARIABLE, "").strip()
    if configured:
        return _positive_seconds(configured, DEADLINE_VARIABLE)
    return max(MIN_DEADLINE_S, asset.size / SLOWEST_LINK)


def _positive_seconds(value: float | str, source: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:  # also refuses NaN
        raise MMLessonError(f"{source} must be a number of seconds above 0, got {value!r}.")
    return seconds


def fetch(name: str, progress: bool = True, timeout: float = 30.0, deadline: float | None = None) -> Path:
    """Return the path of a verified copy of asset `name`, downloading it if needed.

    A valid cached copy is returned without a lock and without write access, so a room can share a cache
    that only the instructor may write. `timeout` bounds connecting and every wait for more data (a stalled
    server); `deadline` bounds the whole download (see `download_deadline`).
    """
    asset = get(name)
    target = cache_dir() / asset.filename
    if _is_verified(asset, target):
        return target
    limit = download_deadline(asset, deadline)
    _require_writable(asset, target)
    with _file_lock(target, limit):
        return _fetch_locked(asset, target, progress, timeout, limit)


def _require_writable(asset: Asset, target: Path) -> None:
    """Downloading needs write access to the cache and its `.locks/`; explain a read-only shared cache."""
    folder = target.parent
    problem = write_problem(folder) or write_problem(folder / LOCKS_DIR)
    if problem is None:
        return
    if folder.is_dir() and problem.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        state = "is damaged (wrong size or sha256)" if target.exists() else "is missing"
        profile = asset.profiles[0] if asset.profiles else "full"
        raise CacheAccessError(
            f"{asset.filename} ({human_size(asset.size)}) {state} in the cache {folder}, and that cache is "
            f"read-only for you (a shared cache): you cannot download it there. Ask the instructor to run "
            f"`MMLESSON_CACHE={folder} python -m mmlesson fetch --profile {profile}`, or set MMLESSON_CACHE "
            "to a folder you can write to, e.g. `export MMLESSON_CACHE=~/mmlesson-cache`, then restart the "
            "kernel."
        )
    raise MMLessonError(_not_writable_message(folder, problem))


@contextlib.contextmanager
def _file_lock(target: Path, limit: float) -> Iterator[None]:
    """Hold the file's lock; wait for another downloader at most its deadline and a margin, never forever."""
    from filelock import FileLock, Timeout

    path = target.parent / LOCKS_DIR / f"{target.name}.lock"
    lock = FileLock(str(path), mode=file_mode())
    wait = limit + LOCK_MARGIN_S
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"Another process is downloading {target.name}; waiting for it (at most {wait:.0f} s)...")
        try:
            lock.acquire(timeout=wait)
        except Timeout:
            raise AssetUnavailableError(
                f"Waited {wait:.0f} s for another process to download {target.name}, and it still holds "
                f"the lock {path}: it is stuck, or its link is slower than the deadline allows. Stop the "
                "other kernel (or `python -m mmlesson fetch`) and run this again, or raise "
                f"{DEADLINE_VARIABLE} (seconds) on both."
            ) from None
    try:
        yield
    finally:
        lock.release()


def _fetch_locked(asset: Asset, target: Path, progress: bool, timeout: float, limit: float) -> Path:
    """Download under the lock: keep a good copy, drop a corrupt one, try each URL until the deadline."""
    if _is_verified(asset, target):  # another process may have fetched it while we waited
        return target
    _remove_leftovers(target, limit)
    if target.exists():
        print(
            f"The cached {asset.filename} is incomplete or corrupt (wrong size or sha256): fetching it again."
        )
        target.unlink()
    deadline = _Deadline.start(limit)
    failures = []
    for number, url in enumerate(asset.urls, start=1):
        if deadline.left() <= 0:
            failures.append(f"  URL {number}: not tried: the deadline of {limit:.0f} s was used up")
            continue
        try:
            _download(url, asset, target, progress, timeout, deadline)
            return target
        except Exception as error:  # noqa: BLE001 - every failure is reported below, with its URL
            failures.append(f"  URL {number}: {_explain(error)}")
    raise AssetUnavailableError(
        f"Could not download {asset.name}:\n"
        + "\n".join(failures)
        + "\n"
        + manual_instructions(asset, target)
    )


@dataclass(frozen=True)
class _Deadline:
    """When the download of one file (all its URLs together) must be over."""

    seconds: float
    ends_at: float

    @classmethod
    def start(cls, seconds: float) -> _Deadline:
        return cls(seconds, time.monotonic() + seconds)

    def left(self) -> float:
        return self.ends_at - time.monotonic()


def _part_path(target: Path, pid: int | None = None) -> Path:
    """`.{filename}.{pid}.part`: the owner's pid in the name tells a dead download from a live one."""
    return target.parent / f".{target.name}.{os.getpid() if pid is None else pid}.part"


def _alive(pid: int) -> bool:
    """True when process `pid` runs on this machine (another user's counts); ours is not downloading now."""
    if pid == os.getpid():
        return False
    if os.name == "nt":  # os.kill would terminate it: assume alive and let the age decide
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_leftovers(target: Path, limit: float) -> None:
    """Delete the part files of downloads that died (a killed kernel, a power cut).

    Called under the file's lock: a part file whose owner is gone, or that is older than any download may
    last (the pid of another machine sharing the cache means nothing here), belongs to no live download.
    """
    for part in target.parent.glob(f".{glob.escape(target.name)}.*.part"):
        pid = part.name[len(target.name) + 2 : -len(".part")]
        try:
            stale = not pid.isdigit() or not _alive(int(pid)) or time.time() - part.stat().st_mtime > limit
            if stale:
                part.unlink()
        except OSError:
            continue


class _AttemptFailed(Exception):
    """One URL failed in a way this module noticed itself; the message is the reason, readable as it is."""


def _download(
    url: str, asset: Asset, target: Path, progress: bool, timeout: float, deadline: _Deadline
) -> None:
    """One attempt from one URL: stream into the part file and rename it over `target` only when the size and
    the sha256 (computed while the bytes arrive) are right. Any failure removes the part file."""
    import requests

    part = _part_path(target)
    read_timeout = max(0.1, min(timeout, deadline.left()))
    headers = {"Accept-Encoding": "identity"}  # the registry's size and hash are those of the plain file
    try:
        with requests.get(url, stream=True, timeout=(timeout, read_timeout), headers=headers) as response:
            response.raise_for_status()
            _check_announced_size(response, asset)
            digest = _stream(_arrivals(response, read_timeout), part, asset, deadline, progress)
        if digest != asset.sha256:
            raise _AttemptFailed(
                "the file that arrived does not match the pinned sha256 (changed on the server, or damaged "
                "on the way)"
            )
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    _remember_verified(target, _fingerprint(asset, target.stat()))


def _check_announced_size(response: requests.Response, asset: Asset) -> None:
    """Refuse, before the first byte, a file that the server says is not of the registry's size."""
    announced = response.headers.get("Content-Length", "").strip()
    if announced.isdigit() and int(announced) != asset.size:
        raise _AttemptFailed(
            f"the server announces {int(announced):,} bytes, the registry says {asset.size:,}: "
            "not the pinned file (an error page or a changed upload), refused"
        )


def _arrivals(response: requests.Response, read_timeout: float) -> Iterator[bytes]:
    """The body, piece by piece as it arrives; it ends early if the connection breaks.

    `read1` returns whatever has arrived, so a server that trickles bytes is checked against the deadline
    at every packet (iter_content would wait for a whole chunk); a silence longer than the read timeout is a
    stall.
    """
    from urllib3.exceptions import HTTPError, ReadTimeoutError

    while True:
        try:
            chunk = response.raw.read1(CHUNK)
        except ReadTimeoutError:
            raise _AttemptFailed(
                f"stalled: the server connected, then sent nothing for {read_timeout:.0f} s"
            ) from None
        except HTTPError:
            return  # the connection broke: the caller sees a short file
        if not chunk:
            return
        yield chunk


def _stream(chunks: Iterator[bytes], part: Path, asset: Asset, deadline: _Deadline, progress: bool) -> str:
    """Write `chunks` to `part`, stopping at the deadline or past the registry's size; return their sha256."""

    digest, received = hashlib.sha256(), 0
    part.unlink(missing_ok=True)  # the leftover of a dead process that had our pid
    bar = progress_bar(total=asset.size, unit="B", unit_scale=True, desc=asset.filename, disable=not progress)
    with open(part, "xb") as out, bar:
        for chunk in chunks:
            received += len(chunk)
            _check_arrival(received, asset, deadline)
            out.write(chunk)
            digest.update(chunk)
            bar.update(len(chunk))
    if received < asset.size:
        raise _AttemptFailed(f"the connection broke off after {received:,} of {asset.size:,} bytes")
    return digest.hexdigest()


def _check_arrival(received: int, asset: Asset, deadline: _Deadline) -> None:
    """Stop a download that has grown past the registry's size, or that has run out of time."""
    if received > asset.size:
        raise _AttemptFailed(
            f"larger than the registry says: more than {asset.size:,} bytes arrived, so it is not the "
            "pinned file; stopped"
        )
    if deadline.left() < 0:
        raise _AttemptFailed(
            f"deadline exceeded: {received:,} of {asset.size:,} bytes in {deadline.seconds:.0f} s; on a "
            f"link this slow, fetch before the workshop or raise {DEADLINE_VARIABLE} (seconds)"
        )


def _explain(error: Exception) -> str:
    """One readable line for a failed download attempt."""
    import requests

    if isinstance(error, _AttemptFailed):
        return str(error)
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code} {error.response.reason}"
    if isinstance(error, requests.ReadTimeout):
        return "stalled: the server accepted the connection, then did not answer within the read timeout"
    if isinstance(error, requests.ConnectionError):  # ConnectTimeout too: nobody answered at all
        return "could not connect (offline, or the server is down)"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return "the connection broke off before the whole file arrived"
    return f"{type(error).__name__}: {error}"


def read_manifest(name: str, weights_dir: Path = WEIGHTS_DIR) -> dict:
    """The manifest that ships beside a model's weights (config, tokenizer, training record, metrics)."""
    path = weights_dir / f"{name}.manifest.json"
    if not path.is_file():
        raise MMLessonError(
            f"The shipped weights of {name} are missing ({path.name} not found): reinstall the course "
            "package (pip install -e . in the course folder), or train them again "
            "(python -m mmlesson train clip, vqgan or dalle)."
        )
    return json.loads(path.read_text(encoding="utf-8"))


def save_shipped(
    name: str, state: dict[str, torch.Tensor], out: Path, record: dict, texts: dict[str, str] | None = None
) -> Path:
    """Write a trained model the way the course ships it; return the manifest's path.

    The weights go to `{name}.safetensors` in float16 (half the bytes of float32, and the 20 MB budget of
    all shipped weights is tight), each of `texts` ({filename: content}, e.g. a config) beside them, and
    `{name}.manifest.json` lists every file with its sha256 and size, followed by `record` (how the model
    was made and how good it is). `shipped_weights` and `verify_shipped` check the files against it.
    """
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{name}.safetensors"
    save_file({key: value.detach().half().contiguous() for key, value in state.items()}, str(weights))
    files = [weights]
    for filename, content in (texts or {}).items():
        (out / filename).write_text(content, encoding="utf-8")
        files.append(out / filename)
    manifest = {
        "name": name,
        "weights": weights.name,
        "files": {path.name: {"sha256": sha256_of(path), "size": path.stat().st_size} for path in files},
        **record,
    }
    path = out / f"{name}.manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


def shipped_weights(name: str, weights_dir: Path = WEIGHTS_DIR) -> tuple[dict, Path]:
    """A shipped model's manifest and the path of its weights, once their sha256 matches the manifest."""
    manifest = read_manifest(name, weights_dir)
    weights = weights_dir / manifest["weights"]
    if not matches(weights, manifest["files"][weights.name]["sha256"]):
        raise MMLessonError(
            f"The shipped weights {weights.name} are damaged (sha256 differs from the manifest): reinstall "
            "the course package (pip install --force-reinstall -e . in the course folder)."
        )
    return manifest, weights


def verify_shipped(weights_dir: Path = WEIGHTS_DIR) -> list[tuple[str, bool, str]]:
    """Check every file named in the manifests beside the shipped weights against its sha256.

    Each manifest (`*.manifest.json`) lists `files: {filename: {"sha256": ..., "size": ...}}`.
    Returns (filename, ok, detail) rows; an empty list means no weights are shipped yet.
    """
    rows = []
    for manifest_path in sorted(weights_dir.glob("*.manifest.json")):
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        for filename, expected in sorted(manifest.get("files", {}).items()):
            path = weights_dir / filename
            if not path.is_file():
                rows.append((filename, False, f"missing (listed in {manifest_path.name})"))
            elif matches(path, expected["sha256"], expected.get("size")):
                rows.append((filename, True, human_size(path.stat().st_size)))
            else:
                rows.append((filename, False, "sha256 mismatch: reinstall the package"))
    return rows


# --- The registry. Hashes and sizes are those of the published files (Hugging Face LFS metadata, and the
# --- same digests pinned independently by other projects); URLs pinned to a revision where the host allows.
_HF_CLIP = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K/resolve/1a25a446712ba5ee05982a381eed697ef9b435cf"
register(
    Asset(
        name="clip-vit-b-32-laion2b",
        filename="open_clip_ViT-B-32_laion2b_s34b_b79k.safetensors",
        urls=(
            f"https://huggingface.co/{_HF_CLIP}/open_clip_model.safetensors",
            f"https://hf-mirror.com/{_HF_CLIP}/open_clip_model.safetensors",
        ),
        sha256="ac4f8c4b88af6d963118cbf40ad93176d092abbedfcb752601ae1866352656e6",
        size=605_143_316,
        license="MIT (LAION model card)",
        purpose="CLIP ViT-B-32 trained on LAION-2B: zero-shot, search and guidance in the full profile",
    )
)
_HEIBOX = "https://heibox.uni-heidelberg.de/d/a7530b09fed84f80a887/files/?p="
_PYTTI = (
    "https://huggingface.co/Somnai/pytti-vqgan-checkpoints/resolve/debc22c8f285c7734980c464ff992d335dde6e9a"
)
register(
    Asset(
        name="vqgan-imagenet-f16-16384",
        filename="vqgan_imagenet_f16_16384.ckpt",
        urls=(
            f"{_HEIBOX}%2Fckpts%2Flast.ckpt&dl=1",
            "https://heibox.uni-heidelberg.de/f/867b05fc8c4841768640/?dl=1",
            f"{_PYTTI}/imagenet/imagenet.ckpt",
        ),
        sha256="845a68805098cb666420d5db93df53f3a3b6dd443e6dd85c05759c5b998cd663",
        size=980_092_370,
        license="code MIT (taming-transformers); the authors state no separate terms for the checkpoint",
        purpose="VQGAN ImageNet f16-16384 (Esser et al.): image tokens and decoder for the full profile",
    )
)
register(
    Asset(
        name="vqgan-imagenet-f16-16384-config",
        filename="vqgan_imagenet_f16_16384.yaml",
        urls=(
            f"{_HEIBOX}%2Fconfigs%2Fmodel.yaml&dl=1",
            "https://heibox.uni-heidelberg.de/f/274fb24ed38341bfa753/?dl=1",
            f"{_PYTTI}/imagenet/imagenet.yaml",
        ),
        sha256="00e2c6189926f1d89ecfef73e9598db77981c1982f0555fbade963ffd16143c7",
        size=692,
        license="MIT (taming-transformers)",
        purpose="the official architecture config of the VQGAN above",
    )
)

# A rehearsal (scripts/rehearse_full_profile.py) points these entries at stand-ins; see asset_overrides.
REGISTRY.update(apply_overrides(REGISTRY, os.environ))
