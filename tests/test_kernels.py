"""mmlesson.course.kernels: a wait for a kernel message is cut into short slices, and still ends at its
timeout when nothing comes."""

from __future__ import annotations

import asyncio
import time
from queue import Empty
from types import SimpleNamespace

import pytest

from mmlesson.course.kernels import wait_in_slices


class Channel:
    """A channel whose message is only found by the poll that ends a wait (a missed wake-up)."""

    def __init__(self, found_after_polls: int | None) -> None:
        self.polls, self.found_after_polls, self.waits = 0, found_after_polls, []

    async def get_msg(self, timeout=None):
        self.waits.append(timeout)
        self.polls += 1
        await asyncio.sleep(timeout)
        if self.found_after_polls is not None and self.polls >= self.found_after_polls:
            return {"msg_type": "execute_reply"}
        raise Empty


def client_with(shell: Channel, iopub: Channel):
    client = SimpleNamespace(kc=SimpleNamespace(shell_channel=shell, iopub_channel=iopub))
    wait_in_slices(client, slice_s=0.05)
    return client


def test_each_wait_is_at_most_a_slice_and_a_message_is_found_by_the_next_slice():
    shell = Channel(found_after_polls=3)
    client = client_with(shell, Channel(None))
    assert asyncio.run(client.kc.shell_channel.get_msg(timeout=300)) == {"msg_type": "execute_reply"}
    assert shell.waits == [0.05, 0.05, 0.05], "three short slices, not one wait of 300 s"


def test_nothing_coming_still_ends_at_the_timeout():
    client = client_with(Channel(None), Channel(None))
    started = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(client.kc.iopub_channel.get_msg(timeout=0.2))
    assert 0.2 <= time.monotonic() - started < 1.0
