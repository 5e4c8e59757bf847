"""The body of a measured answer: each chunk goes on to the client as it comes.

A chunk is handed on first and looked at when the client asks for the next one (or when the
body ends), so the measurement never delays what the client reads. The exchange ends when
the body has been read to its end, when the client closes it, or when reading it fails.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

from pytest_llmperf.observe.measure import Exchange

perf_counter = time.perf_counter


class _Watched:
    def __init__(self, inner: Any, exchange: Exchange, hx: ModuleType) -> None:
        self.inner = inner
        self.exchange = exchange
        self.hx = hx

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, self.hx.TimeoutException):
            self.exchange.finish("timeout", exc)
        elif isinstance(exc, Exception):
            self.exchange.finish("error", exc)
        else:  # GeneratorExit from a client that stopped reading: its close() decides
            pass


class _SyncWatched(_Watched):
    def __iter__(self) -> Iterator[bytes]:
        arrived, catch_up = self.exchange.arrived, self.exchange.catch_up
        try:
            for part in self.inner:
                arrived(part, perf_counter())
                yield part
                catch_up()
        except BaseException as exc:
            self._failed(exc)
            raise
        self.exchange.finish()

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.exchange.finish()


class _AsyncWatched(_Watched):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        arrived, catch_up = self.exchange.arrived, self.exchange.catch_up
        try:
            async for part in self.inner:
                arrived(part, perf_counter())
                yield part
                catch_up()
        except BaseException as exc:
            self._failed(exc)
            raise
        self.exchange.finish()

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            self.exchange.finish()


class _Types:
    """The stream classes for one httpx-like module (its Response checks their base)."""

    def __init__(self, hx: ModuleType) -> None:
        self.sync = type("Watched", (_SyncWatched, hx.SyncByteStream), {})
        self.async_ = type("AsyncWatched", (_AsyncWatched, hx.AsyncByteStream), {})


@functools.cache
def _types(hx: ModuleType) -> _Types:
    return _Types(hx)


def watched_stream(inner: Any, exchange: Exchange, hx: ModuleType) -> Any:
    """``inner`` (a sync or async byte stream) with every chunk shown to ``exchange``."""
    types = _types(hx)
    if isinstance(inner, hx.AsyncByteStream) and not isinstance(inner, hx.SyncByteStream):
        return types.async_(inner, exchange, hx)
    return types.sync(inner, exchange, hx)
