"""The handoff from a model's worker thread to the event loop: batches, wake-ups, endings."""

from __future__ import annotations

import asyncio
import threading

import pytest

from pytest_llmperf.emulator.handoff import Closed, Handoff


async def test_what_piled_up_comes_in_one_take() -> None:
    feed: Handoff[int] = Handoff(asyncio.get_running_loop())
    for n in range(5):
        feed.put(n)
    assert await feed.take() == [0, 1, 2, 3, 4]


async def test_a_waiting_take_wakes_when_a_thread_puts() -> None:
    feed: Handoff[str] = Handoff(asyncio.get_running_loop())
    waiting = asyncio.ensure_future(feed.take())
    await asyncio.sleep(0)
    assert not waiting.done()
    worker = threading.Thread(target=feed.put, args=("token",))
    worker.start()
    assert await asyncio.wait_for(waiting, timeout=30) == ["token"]
    worker.join()


async def test_every_item_of_a_busy_worker_arrives_in_order() -> None:
    feed: Handoff[int] = Handoff(asyncio.get_running_loop())
    worker = threading.Thread(target=lambda: [feed.put(n) for n in range(2000)])
    worker.start()
    seen: list[int] = []
    takes = 0
    while len(seen) < 2000:
        seen += await asyncio.wait_for(feed.take(), timeout=30)
        takes += 1
    worker.join()
    assert seen == list(range(2000))
    assert takes <= 2000


async def test_a_failure_is_raised_by_the_next_take_after_the_items() -> None:
    feed: Handoff[int] = Handoff(asyncio.get_running_loop())
    feed.put(1)
    feed.fail(RuntimeError("llama.cpp failed"))
    assert await feed.take() == [1]
    with pytest.raises(RuntimeError, match=r"llama\.cpp failed"):
        await feed.take()


async def test_after_close_the_worker_is_told_to_stop() -> None:
    feed: Handoff[int] = Handoff(asyncio.get_running_loop())
    feed.put(1)
    feed.close()
    assert feed.closed()
    with pytest.raises(Closed):
        feed.put(2)
