"""Items from a worker thread to the event loop, without a round trip per item.

A model that computes in its own thread (llama.cpp) hands each token over with
:meth:`Handoff.put` and keeps computing; the loop takes everything that has piled up with
one ``await`` of :meth:`Handoff.take`. The worker wakes the loop only when the loop is
waiting for it, so a fast model costs the loop one wake-up per batch, not one per token.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Closed(Exception):
    """The consumer has gone: the worker should stop."""


class Handoff(Generic[T]):
    """A one-producer, one-consumer queue from a thread to an event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._items: list[T] = []
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    # --- the worker's side ------------------------------------------------------------

    def closed(self) -> bool:
        """The consumer has stopped taking items (its client hung up, or it has enough)."""
        return self._closed

    def put(self, item: T) -> None:
        """Hand ``item`` over; raises :class:`Closed` if the consumer has gone."""
        with self._lock:
            if self._closed:
                raise Closed
            self._items.append(item)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._loop.call_soon_threadsafe(_wake, waiter)

    def fail(self, error: BaseException) -> None:
        """End the stream with ``error``: the consumer's next :meth:`take` raises it."""
        with self._lock:
            self._error = error
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._loop.call_soon_threadsafe(_wake, waiter)

    # --- the loop's side --------------------------------------------------------------

    async def take(self) -> list[T]:
        """Every item handed over since the last call, waiting for at least one."""
        while True:
            with self._lock:
                if self._items:
                    items, self._items = self._items, []
                    return items
                if self._error is not None:
                    raise self._error
                waiter = self._waiter = self._loop.create_future()
            await waiter

    def close(self) -> None:
        """Take nothing more: the worker's next :meth:`put` raises :class:`Closed`."""
        with self._lock:
            self._closed = True
            self._items.clear()
            self._waiter = None


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
