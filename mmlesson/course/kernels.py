"""Driving a Jupyter kernel from nbclient without losing minutes to a missed wake-up.

pyzmq's asyncio sockets learn that a message has come from an edge-triggered file descriptor, and libzmq
documents that a socket can become readable without a new edge. When that happens, nbclient's wait for a
cell's reply runs to the cell's whole timeout, and only the poll at its end finds the reply that came long
before: in CI a widget drive took about 330 s instead of 30, and passed. Every nbclient driver of the course
(tests/test_widgets.py, scripts/rehearse_full_profile.py) waits in short slices instead, which bounds such a
missed wake-up to a second.
"""

from __future__ import annotations

import time
from queue import Empty

SLICE_S = 1.0


def wait_in_slices(client, slice_s: float = SLICE_S) -> None:
    """Make the kernel client of a started nbclient `client` wait for messages, on its shell and iopub
    channels, in slices of at most `slice_s` seconds (each slice ends in a poll that finds what came)."""
    for channel in (client.kc.shell_channel, client.kc.iopub_channel):
        channel.get_msg = _in_slices(channel.get_msg, slice_s)


def _in_slices(get_msg, slice_s: float):
    async def get_msg_in_slices(timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = slice_s if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await get_msg(timeout=min(slice_s, left))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    return get_msg_in_slices
