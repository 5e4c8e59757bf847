"""The body of a measured answer: each chunk goes on to the client as it comes.

A chunk is handed on as it comes, with its arrival time noted (:meth:`Exchange.arrived`); the
chunks are read when the body ends (or every ``BATCH`` chunks of a long one), so the
measurement never delays what the client reads. The exchange ends when
the body has been read to its end, when the client closes it, or when reading it fails.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

from pytest_llmperf.observe.measure import Exchange

perf_counter = time.perf_counter


class _Watched:
    """A watched body: the exchange ends when it has been read, closed or failed.

    (Spelt as ``try`` blocks rather than a context manager: a ``with`` costs two calls a
    reading and a closing, and every answer has one of each.)
    """

    def __init__(self, inner: Any, exchange: Exchange, hx: ModuleType) -> None:
        self.inner = inner
        self.exchange = exchange
        self.hx = hx

    def failed(self, exc: BaseException) -> None:
        """Reading or closing the body raised ``exc``: the exchange ends as it did."""
        if isinstance(exc, self.hx.TimeoutException):
            self.exchange.finish("timeout", exc)
        elif isinstance(exc, Exception):
            self.exchange.finish("error", exc)
        # else GeneratorExit, from a client that stopped reading: its close() decides

    def closed(self) -> None:
        if not self.exchange.ended:  # closed early: the exchange ends here
            self.exchange.finish()


class _SyncWatched(_Watched):
    def __iter__(self) -> Iterator[bytes]:
        exchange = self.exchange
        arrived = exchange.arrived
        try:
            for part in self.inner:
                arrived(part, perf_counter())
                yield part
        except BaseException as exc:
            self.failed(exc)
            raise
        exchange.finish()  # read to its end

    def close(self) -> None:
        try:
            self.inner.close()
        except BaseException as exc:
            self.failed(exc)
            raise
        self.closed()


class _AsyncWatched(_Watched):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        exchange = self.exchange
        arrived = exchange.arrived
        try:
            async for part in self.inner:
                arrived(part, perf_counter())
                yield part
        except BaseException as exc:
            self.failed(exc)
            raise
        exchange.finish()  # read to its end

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        except BaseException as exc:
            self.failed(exc)
            raise
        self.closed()


class _Types:
    """The stream classes for one httpx-like module (its Response checks their base)."""

    def __init__(self, hx: ModuleType) -> None:
        self.sync = type("Watched", (_SyncWatched, hx.SyncByteStream), {})
        self.async_ = type("AsyncWatched", (_AsyncWatched, hx.AsyncByteStream), {})


_TYPES: dict[ModuleType, _Types] = {}


def watched_stream(inner: Any, exchange: Exchange, hx: ModuleType) -> Any:
    """``inner`` (a sync or async byte stream) with every chunk shown to ``exchange``."""
    types = _TYPES.get(hx)
    if types is None:
        types = _TYPES[hx] = _Types(hx)
    if isinstance(inner, hx.AsyncByteStream) and not isinstance(inner, hx.SyncByteStream):
        return types.async_(inner, exchange, hx)
    return types.sync(inner, exchange, hx)
