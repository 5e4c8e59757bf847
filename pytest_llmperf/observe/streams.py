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
    """A watched body; as a context manager, the span of its reading (ended how it ends)."""

    def __init__(self, inner: Any, exchange: Exchange, hx: ModuleType) -> None:
        self.inner = inner
        self.exchange = exchange
        self.hx = hx

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        if kind is None:
            self.exchange.finish()  # read to its end
        elif isinstance(exc, self.hx.TimeoutException):
            self.exchange.finish("timeout", exc)
        elif isinstance(exc, Exception):
            self.exchange.finish("error", exc)
        # else GeneratorExit, from a client that stopped reading: its close() decides


class _SyncWatched(_Watched):
    def __iter__(self) -> Iterator[bytes]:
        arrived = self.exchange.arrived
        with self:
            for part in self.inner:
                arrived(part, perf_counter())
                yield part

    def close(self) -> None:
        with self:  # closed early: the exchange ends here
            self.inner.close()


class _AsyncWatched(_Watched):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        arrived = self.exchange.arrived
        with self:
            async for part in self.inner:
                arrived(part, perf_counter())
                yield part

    async def aclose(self) -> None:
        with self:  # closed early: the exchange ends here
            await self.inner.aclose()


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
