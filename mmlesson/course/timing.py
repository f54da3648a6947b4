"""The one timing rule every benchmark here follows: run a few times, keep the fastest.

On a shared or busy machine, noise only ever adds time, so the fastest run is the best estimate of the
cost itself. Benchmarks then report a ratio against a baseline timed the same way in the same process.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def best_seconds(work: Callable[[], object], repeats: int = 5) -> float:
    """Seconds taken by the fastest of `repeats` calls of `work`."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best
