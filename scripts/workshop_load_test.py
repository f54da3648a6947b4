"""A workshop room on one machine: N participants start lesson 2 at the same moment, on one shared cache.

    python scripts/workshop_load_test.py --seats 30 [--cells 4] [--json report.json]

Each seat is a separate Python process, as a JupyterHub kernel would be. It runs the first `--cells` code
cells of `notebooks/02_zero_shot.ipynb` in the tiny profile (`mmlesson.setup()`, the imports and
`mmlesson.load_clip()`, a zero-shot classification by hand, then with `zeroshot.classify`), with IPython
magics and `display` left out, and fetches one stand-in asset that this script serves from 127.0.0.1. The
server counts its downloads: a room must download each file once, however many seats ask at once.

The report gives wall time per seat (from its start to its exit) and peak memory per seat (the kernel's
maximum resident set, from wait4), the total wall time, the number of downloads, the files left in the
cache other than the asset and its lock and record (must be none) and the seats that failed (must be none).
Exit status 0 only when every seat succeeded, the asset was downloaded once and nothing was left behind.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "02_zero_shot.ipynb"
ASSET = "workshop-stand-in"
ASSET_SIZE = 4_000_000
PIECE = 1 << 16


# -- the room's server -----------------------------------------------------------------------------------


class CountingServer:
    """Serves one file in pieces with short pauses (so that seats asking at once overlap); counts GETs."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.hits[self.path] += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                for start in range(0, len(server.body), PIECE):
                    self.wfile.write(server.body[start : start + PIECE])
                    time.sleep(0.01)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{ASSET}.bin"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def stand_in_body() -> bytes:
    """ASSET_SIZE bytes that are not all alike, the same every run."""
    block = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(2048))
    return (block * (ASSET_SIZE // len(block) + 1))[:ASSET_SIZE]


# -- one seat ----------------------------------------------------------------------------------------------


def lesson_cells(path: Path, count: int) -> list[str]:
    """The first `count` code cells of a lesson, runnable as plain Python: magics become `pass`."""
    import nbformat

    cells = [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    return ["\n".join(_plain(line) for line in source.splitlines()) for source in cells[:count]]


def _plain(line: str) -> str:
    stripped = line.lstrip()
    return line[: len(line) - len(stripped)] + "pass" if stripped.startswith(("%", "!")) else line


def seat(spec: dict) -> dict:
    """What one participant's kernel does; returns its timings, or the error that stopped it."""
    phases: dict[str, float] = {}
    started = time.monotonic()
    import mmlesson  # noqa: F401 - the import is part of what a seat costs
    from mmlesson.course import assets

    phases["import"] = time.monotonic() - started
    assets.register(
        assets.Asset(ASSET, f"{ASSET}.bin", (spec["url"],), spec["sha256"], spec["size"], "-", "-")
    )
    namespace = {"__name__": "__main__", "display": lambda *args, **kwargs: None}
    setup_cell, *other_cells = lesson_cells(LESSON, spec["cells"])
    _run(setup_cell, 1, namespace)
    phases["setup"] = time.monotonic() - started
    path = assets.fetch(ASSET, progress=False)  # every seat asks for the file at about the same time
    phases["fetch"] = time.monotonic() - started
    for number, source in enumerate(other_cells, start=2):
        _run(source, number, namespace)
    phases["cells"] = time.monotonic() - started
    if assets.sha256_of(path) != spec["sha256"]:
        raise RuntimeError("the fetched file does not match its hash")
    return {"profile": namespace["rt"].profile, "phases": phases, "private_mib": private_memory_mib()}


def private_memory_mib() -> float | None:
    """Memory this kernel holds alone (not shared with the other seats, unlike torch's libraries), now."""
    try:
        lines = Path("/proc/self/smaps_rollup").read_text().splitlines()
    except OSError:
        return None
    private = [
        int(line.split()[1]) for line in lines if line.startswith(("Private_Clean:", "Private_Dirty:"))
    ]
    return round(sum(private) / 1024, 1)


def _run(source: str, number: int, namespace: dict) -> None:
    exec(compile(source, f"{LESSON.name}, code cell {number}", "exec"), namespace)


def seat_main(spec_json: str) -> int:
    try:
        report = {"ok": True, **seat(json.loads(spec_json))}
    except BaseException as error:  # noqa: BLE001 - a seat reports whatever stopped it
        report = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    print("SEAT-REPORT " + json.dumps(report), flush=True)
    return 0 if report["ok"] else 1


# -- the room ----------------------------------------------------------------------------------------------


@dataclass
class SeatResult:
    seat: int
    ok: bool = False
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mib: float = 0.0
    private_mib: float | None = None
    phases: dict = field(default_factory=dict)
    error: str = ""


def start_seats(count: int, spec: dict, env: dict, logs: Path) -> dict[int, tuple[int, float]]:
    """Start every seat at once; {pid: (seat number, start time)}."""
    running = {}
    for number in range(count):
        with open(logs / f"seat-{number}.log", "w") as log:
            process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--seat", json.dumps(spec)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(ROOT / "notebooks"),
            )
        running[process.pid] = (number, time.monotonic())
    return running


def collect(running: dict[int, tuple[int, float]], logs: Path, timeout: float) -> list[SeatResult]:
    """Wait for every seat (wait4 gives each one's peak memory); kill those still running at the timeout."""
    results, ends = [], time.monotonic() + timeout
    while running:
        pid, status, usage = os.wait4(-1, os.WNOHANG)
        if pid == 0:
            if time.monotonic() > ends:
                for late in running:
                    os.kill(late, 9)
                ends = float("inf")
            time.sleep(0.05)
            continue
        number, started = running.pop(pid)
        result = SeatResult(
            number,
            wall_s=time.monotonic() - started,
            cpu_s=usage.ru_utime + usage.ru_stime,
            peak_rss_mib=usage.ru_maxrss / 1024,
        )
        results.append(_read_report(result, logs / f"seat-{number}.log", status))
    return sorted(results, key=lambda result: result.seat)


def _read_report(result: SeatResult, log: Path, status: int) -> SeatResult:
    lines = [line for line in log.read_text().splitlines() if line.startswith("SEAT-REPORT ")]
    if not lines:
        result.error = f"no report (exit status {status}): " + log.read_text()[-500:]
        return result
    report = json.loads(lines[-1].removeprefix("SEAT-REPORT "))
    result.ok = report["ok"] and os.waitstatus_to_exitcode(status) == 0
    result.phases = report.get("phases", {})
    result.private_mib = report.get("private_mib")
    result.error = report.get("error", "")
    return result


def leftovers(cache: Path, filename: str) -> list[str]:
    """Files in the cache other than the asset, its lock and its hash record: what a crash would leave."""
    expected = {filename, f".locks/{filename}.lock", f".records/{filename}.json"}
    return sorted(
        str(path.relative_to(cache))
        for path in cache.rglob("*")
        if path.is_file() and str(path.relative_to(cache)) not in expected
    )


def spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def machine() -> dict:
    memory = None
    if Path("/proc/meminfo").exists():
        total = next(line for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line)
        memory = round(int(total.split()[1]) / 1024**2, 1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cores": cores, "memory_gib": memory, "python": platform.python_version()}


def available_memory() -> int | None:
    """MemAvailable in bytes (Linux), or None."""
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return None
    return next((int(line.split()[1]) * 1024 for line in lines if line.startswith("MemAvailable:")), None)


class MemorySampler:
    """The largest drop of the machine's available memory while the room runs: what all seats together
    took, with the pages they share (torch's libraries) counted once, unlike the sum of their peak RSS."""

    def __init__(self) -> None:
        self.baseline = available_memory()
        self.lowest = self.baseline
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.stop.wait(0.2):
            now = available_memory()
            if now is not None and self.lowest is not None:
                self.lowest = min(self.lowest, now)

    def peak_gib(self) -> float | None:
        self.stop.set()
        self.thread.join()
        return None if self.baseline is None else round((self.baseline - self.lowest) / 1024**3, 2)


def run_room(seats: int, cells: int, cache: Path, timeout: float) -> dict:
    body = stand_in_body()
    server = CountingServer(body)
    spec = {
        "url": server.url(),
        "sha256": hashlib.sha256(body).hexdigest(),
        "size": len(body),
        "cells": cells,
    }
    env = {**os.environ, "MMLESSON_CACHE": str(cache), "MMLESSON_PROFILE": "tiny", "HF_HUB_OFFLINE": "1"}
    env.update(MPLBACKEND="Agg", NO_PROXY="127.0.0.1,localhost")
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory(prefix="workshop-logs-") as logs:
        memory, started = MemorySampler(), time.monotonic()
        results = collect(start_seats(seats, spec, env, Path(logs)), Path(logs), timeout)
        total, room_memory = time.monotonic() - started, memory.peak_gib()
    server.close()
    done = [result for result in results if result.ok]
    return {
        "seats": seats,
        "cells": cells,
        "machine": {**machine(), "load_average_before": load_before},
        "total_wall_s": total,
        "wall_s": spread([result.wall_s for result in results]),
        "cpu_s": spread([result.cpu_s for result in results]),
        "peak_rss_mib": spread([result.peak_rss_mib for result in results]),
        "private_mib": spread([result.private_mib for result in done if result.private_mib is not None]),
        "room_memory_gib": room_memory,
        "import_s": spread([result.phases["import"] for result in done]),
        "downloads": server.hits[f"/{ASSET}.bin"],
        "leftovers": leftovers(cache, f"{ASSET}.bin"),
        "failed": [asdict(result) for result in results if not result.ok],
        "per_seat": [asdict(result) for result in results],
    }


def print_report(report: dict) -> None:
    def line(label: str, numbers: dict, unit: str) -> str:
        return f"{label:24} " + "  ".join(f"{key} {value:7.1f} {unit}" for key, value in numbers.items())

    found = report["machine"]
    print(f"{report['seats']} seats, lesson 2 (first {report['cells']} code cells), tiny profile")
    print(
        f"machine: {found['cores']} cores, {found['memory_gib']} GiB, Python {found['python']}, "
        f"load average before the start {found['load_average_before']}"
    )
    print(line("wall time per seat", report["wall_s"], "s"))
    print(line("  of which import", report["import_s"], "s"))
    print(line("CPU time per seat", report["cpu_s"], "s"))
    print(line("peak memory per seat", report["peak_rss_mib"], "MiB"))
    print(line("  of it its own, at end", report["private_mib"], "MiB"))
    print(f"{'memory of the whole room':24} {report['room_memory_gib']} GiB (drop of MemAvailable)")
    print(f"{'total wall time':24} {report['total_wall_s']:.1f} s")
    print(f"{'downloads of the asset':24} {report['downloads']} (must be 1)")
    print(f"{'files left in the cache':24} {len(report['leftovers'])} {report['leftovers'] or ''}")
    print(f"{'failed seats':24} {len(report['failed'])}")
    for failure in report["failed"]:
        print(f"  seat {failure['seat']}: {failure['error']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seats", type=int, default=30, help="participants starting at once (default 30)")
    parser.add_argument("--cells", type=int, default=4, help="code cells of lesson 2 each seat runs")
    parser.add_argument("--cache", type=Path, default=None, help="the shared cache (default: a new folder)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before late seats are killed")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument("--seat", help=argparse.SUPPRESS)  # internal: run one seat
    args = parser.parse_args(argv)
    if args.seat:
        return seat_main(args.seat)
    with tempfile.TemporaryDirectory(prefix="workshop-cache-") as scratch:
        report = run_room(args.seats, args.cells, args.cache or Path(scratch) / "cache", args.timeout)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    ok = not report["failed"] and report["downloads"] == 1 and not report["leftovers"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
