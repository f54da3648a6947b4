"""Every bad download the course has been tested against, in one table, run for real on 127.0.0.1.

A row names the server's behaviour (see `tests.fault_server`), what was in place before the fetch, and the
outcome: the fetch succeeds, or fails with a message matching `expect`. After every row the cache holds the
right file or nothing (no half file, no part file), and the fetch ended within `BOUND_S` seconds: a bad
server must never hang a kernel. Rows marked `issue=16` failed (or hung) before downloads had a deadline,
a size cap and part files named after their owner.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mmlesson.course import assets
from tests.fault_server import FaultServer
from tests.helpers import free_port

BOUND_S = 25.0  # the longest any row may take; the slowest healthy row takes about 3 s


@dataclass(frozen=True)
class Case:
    id: str
    urls: tuple[str, ...]  # fault-server paths; "mirror:/good" is a second, healthy server; "refused" no one
    expect: str | None  # a regex the error message must match, or None: the fetch succeeds
    before: str = ""  # what is in place when the fetch starts (see PRECONDITIONS)
    printed: str = ""  # what the fetch must print
    unlike: str = ""  # what the message must not say
    deadline: float = 10.0  # MMLESSON_DOWNLOAD_DEADLINE for the row
    issue: int = 0


CASES = [
    # -- handled before issue 16 ----------------------------------------------------------------------------
    Case("truncated", ("/truncated",), r"broke off"),
    Case("wrong-bytes", ("/wrong",), r"does not match the pinned sha256"),
    Case("not-found", ("/missing",), r"HTTP 404"),
    Case("gone-mid-transfer", ("/gone",), r"broke off"),
    Case("gone-then-mirror", ("/gone", "mirror:/good"), None),
    Case("offline", ("refused",), r"could not connect"),
    Case("corrupt-cached-copy", ("/good",), None, before="corrupt copy", printed="corrupt"),
    Case("corrupt-cached-copy-offline", ("refused",), r"could not connect", before="corrupt copy"),
    Case(
        "two-kernels-at-once",
        ("/slow",),
        None,
        before="another kernel is downloading",
        printed="Another process is downloading",
    ),
    # -- issue 16: deadline, size cap, stalls, leftovers, a stuck lock -------------------------------------
    Case("trickle", ("/trickle",), r"deadline exceeded: \d+ of 320,000 bytes in 2 s", deadline=2, issue=16),
    Case(
        "trickle-uses-up-the-deadline",
        ("/trickle", "mirror:/good"),
        r"URL 2: not tried: the deadline of 2 s was used up",
        deadline=2,
        issue=16,
    ),
    Case("endless-body", ("/endless",), r"larger than the registry says", issue=16),
    Case("wrong-content-length", ("/too-long",), r"announces 321,000 bytes.*refused", issue=16),
    Case(
        "stalled-mid-body",
        ("/stall",),
        r"stalled: the server connected",
        unlike="could not connect",
        issue=16,
    ),
    Case(
        "stalled-before-headers",
        ("/silent",),
        r"stalled: the server accepted",
        unlike="could not connect",
        issue=16,
    ),
    Case("killed-mid-transfer", ("/good",), None, before="a killed kernel's part file", issue=16),
    Case(
        "stuck-kernel-holds-the-lock",
        ("/good",),
        r"Waited 3 s for another process.*still holds the lock",
        before="a stuck kernel holds the lock",
        printed="waiting for it (at most 3 s)",
        deadline=2,
        issue=16,
    ),
]

# A kernel that only downloads: importing the package would load torch (10 s on a busy 2-core machine).
KERNEL = """
import sys, types
from pathlib import Path
package = types.ModuleType("mmlesson")
package.__path__ = [str(Path({root!r}) / "mmlesson")]
sys.modules["mmlesson"] = package
from mmlesson.course import assets
assets.register(assets.Asset({name!r}, {filename!r}, {urls!r}, {sha256!r}, {size}, "t", "t"))
print(assets.fetch({name!r}, progress=False, timeout=5.0), flush=True)
"""
ROOT = Path(__file__).resolve().parents[1]


def start_kernel(asset: assets.Asset, *urls: str) -> subprocess.Popen:
    """Another kernel fetching the same file (from `urls`) in a process of its own."""
    script = KERNEL.format(
        root=str(ROOT),
        name=asset.name,
        filename=asset.filename,
        urls=urls,
        sha256=asset.sha256,
        size=asset.size,
    )
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)


def cache_files(cache: Path) -> list[str]:
    """What a learner would find in the cache: the file, and any half-written file a download left behind."""
    if not cache.exists():
        return []
    return sorted(p.name for p in cache.iterdir() if p.name not in (assets.LOCKS_DIR, assets.RECORDS_DIR))


def wait_for(condition: Callable[[], bool], seconds: float = BOUND_S) -> None:
    ends = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < ends, "the other kernel never started downloading"
        time.sleep(0.05)


@contextlib.contextmanager
def nothing(asset: assets.Asset, cache: Path, server: FaultServer) -> Iterator[None]:
    yield


@contextlib.contextmanager
def corrupt_copy(asset: assets.Asset, cache: Path, server: FaultServer) -> Iterator[None]:
    cache.mkdir(parents=True)
    (cache / asset.filename).write_bytes(server.body[:-1] + b"X")  # the right size, one byte changed
    yield


@contextlib.contextmanager
def another_kernel_downloading(asset: assets.Asset, cache: Path, server: FaultServer) -> Iterator[None]:
    """Another kernel is half-way through the same download when ours starts: ours waits, then uses it.

    The server holds back the second half of the body until ours has said that it is waiting, so the two
    downloads overlap however slowly a busy machine schedules them.
    """

    def print_then_let_the_other_finish(*args: object, **kwargs: object) -> None:
        print(*args, **kwargs)
        server.go_on.set()

    server.go_on.clear()
    kernel = start_kernel(asset, server.url("/slow"))
    assets.print = print_then_let_the_other_finish  # a module global is found before the builtin
    try:
        wait_for(lambda: bool(cache_files(cache)))  # its part file appeared
        yield
        output, _ = kernel.communicate(timeout=BOUND_S)
    finally:
        del assets.print
        server.go_on.set()
        kernel.kill()
    assert kernel.returncode == 0 and output.strip().endswith(asset.filename)
    assert server.hits["/slow"] == 1  # downloaded once, for both kernels


@contextlib.contextmanager
def killed_kernels_part_file(asset: assets.Asset, cache: Path, server: FaultServer) -> Iterator[None]:
    """A kernel killed mid-download (SIGKILL: no cleanup runs) left its part file in the cache."""
    kernel = start_kernel(asset, server.url("/trickle"))
    wait_for(lambda: bool(cache_files(cache)))
    kernel.send_signal(signal.SIGKILL)
    kernel.wait(timeout=BOUND_S)
    assert cache_files(cache) != []  # the leftover the next fetch must remove
    yield


@contextlib.contextmanager
def stuck_lock_holder(asset: assets.Asset, cache: Path, server: FaultServer) -> Iterator[None]:
    """A kernel that took the file's lock and never lets go (hung on a link that never ends)."""
    lock = cache / assets.LOCKS_DIR / f"{asset.filename}.lock"
    lock.parent.mkdir(parents=True)
    hold = (
        "import filelock, sys, time; lock = filelock.FileLock(sys.argv[1]); lock.acquire(); print('held'); "
    )
    holder = subprocess.Popen(
        [sys.executable, "-u", "-c", hold + "time.sleep(60)", str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait(timeout=BOUND_S)


PRECONDITIONS = {
    "": nothing,
    "corrupt copy": corrupt_copy,
    "another kernel is downloading": another_kernel_downloading,
    "a killed kernel's part file": killed_kernels_part_file,
    "a stuck kernel holds the lock": stuck_lock_holder,
}


@pytest.fixture
def mirror(payload: bytes) -> Iterator[FaultServer]:
    server = FaultServer(payload)
    yield server
    server.close()


@pytest.fixture
def server(payload: bytes) -> Iterator[FaultServer]:
    server = FaultServer(payload)
    yield server
    if not server.closed.is_set():
        server.close()


def fetch_within(name: str, seconds: float) -> Path | Exception:
    """`assets.fetch` in a thread that must end within `seconds`: a hang fails the row, not the whole run."""
    outcome: list[Path | Exception] = []

    def run() -> None:
        try:
            outcome.append(assets.fetch(name, progress=False, timeout=1.0))
        except Exception as error:  # noqa: BLE001 - the row checks which error
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the fetch was still running after {seconds} s: it would hang a kernel"
    return outcome[0]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, cache, server, mirror, payload, monkeypatch, capsys):
    urls = tuple(
        f"http://127.0.0.1:{free_port()}/weights.bin"
        if url == "refused"
        else mirror.url(url.removeprefix("mirror:"))
        if url.startswith("mirror:")
        else server.url(url)
        for url in case.urls
    )
    asset = assets.register(
        assets.Asset(f"bad-{case.id}", f"bad-{case.id}.bin", urls, hashlib.sha256(payload).hexdigest(),
                     len(payload), "test", "test", profiles=("test",))
    )  # fmt: skip
    monkeypatch.setenv(assets.DEADLINE_VARIABLE, str(case.deadline))
    monkeypatch.setattr(assets, "LOCK_MARGIN_S", 1.0, raising=False)
    try:
        with PRECONDITIONS[case.before](asset, cache, server):
            outcome = fetch_within(asset.name, BOUND_S)
    finally:
        assets.unregister(asset.name)
    printed = capsys.readouterr().out
    assert case.printed in printed
    if case.expect is None:
        assert outcome == cache / asset.filename, outcome
        assert outcome.read_bytes() == payload
        assert cache_files(cache) == [asset.filename]
        return
    assert isinstance(outcome, assets.MMLessonError), outcome
    message = str(outcome)
    assert re.search(case.expect, message, flags=re.DOTALL), message
    assert not case.unlike or case.unlike not in message, message
    if message.startswith("Could not download"):  # what, how big, from where, and where to put it by hand
        assert asset.filename in message and assets.human_size(asset.size) in message
        assert all(url in message for url in urls) and str(cache / asset.filename) in message
        assert "MMLESSON_PROFILE=tiny" in message
    assert cache_files(cache) == []


def test_the_table_has_one_row_per_id():
    assert len({case.id for case in CASES}) == len(CASES)
    assert all(case.before in PRECONDITIONS for case in CASES)
