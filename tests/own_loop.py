"""``run``: asyncio.run() on a loop of its own, leaving the thread's current loop as it is."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to its end as asyncio.run() does, without setting or unsetting a loop.

    pytest-asyncio before 1.4 leaves a fresh, open event loop set as the thread's current one
    after each async test (pytest-asyncio#724). asyncio.run() unsets the current loop when it
    ends, without closing it: that loop's self-pipe sockets are then reported unclosed at
    whichever later test the garbage collector happens to run in. This runs ``main`` the same
    way (leftover tasks cancelled, async generators and the default executor shut down, the
    loop closed) on a loop it makes, and touches no other.
    """
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            if left:  # (an empty gather() would make its future on the current loop)
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
