"""The body of a measured answer: each chunk goes on to the client as it comes.

A chunk is handed on as it comes, with its arrival time noted (what
:meth:`Exchange.arrived` does, spelt out in the loop); the chunks are read when the body ends
(or every ``BATCH`` chunks of a long one), so the measurement never delays what the client
reads. The exchange ends when the body has been read to its end, when the client closes it, or
when reading it fails.

httpx's own body (``ResponseStream``) is a loop over httpcore's stream inside
``map_httpcore_exceptions()``, and nothing more. Where the module's one has exactly that
shape, the watched body runs that loop itself, in the same exception mapping, rather than
putting a second loop over it: the client's reading then passes as many generators as it does
unmeasured, which is most of what measuring a streamed answer would otherwise cost a chunk.
Any other body (a cassette's, another transport's) is looped over as it is.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from types import ModuleType
from typing import Any

from pytest_llmperf.observe.measure import BATCH, Exchange

perf_counter = time.perf_counter

Mapping = Callable[[], contextlib.AbstractContextManager[None]]


class _Watched:
    """A watched body: the exchange ends when it has been read, closed or failed.

    ``source`` is what is looped over (``inner``, or the httpcore stream inside it) and
    ``mapping`` what that loop runs in (httpx's exception mapping, or nothing).
    (Spelt as ``try`` blocks rather than a context manager: a ``with`` costs two calls a
    reading and a closing, and every answer has one of each.)
    """

    def __init__(
        self, inner: Any, exchange: Exchange, hx: ModuleType, source: Any, mapping: Mapping
    ) -> None:
        self.inner = inner
        self.exchange = exchange
        self.hx = hx
        self.source = source
        self.mapping = mapping

    def failed(self, exc: BaseException) -> None:
        """Reading or closing the body raised ``exc``: the exchange ends as it did."""
        if isinstance(exc, self.hx.TimeoutException):
            self.exchange.finish("timeout", exc)
        elif isinstance(exc, Exception):
            self.exchange.finish("error", exc)
        # else GeneratorExit, from a client that stopped reading: its close() decides


class _SyncWatched(_Watched):
    def __iter__(self) -> Iterator[bytes]:
        exchange = self.exchange
        noted, kept = exchange.times.append, exchange.parts.append
        try:
            with self.mapping():
                source = iter(self.source)
                while True:  # a batch at a time (islice counts them, not a step of ours)
                    for part in itertools.islice(source, BATCH):
                        noted(perf_counter())
                        kept(part)
                        yield part
                    if len(exchange.parts) < BATCH:  # the body ended in this batch
                        break
                    exchange.read_batch()
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
        if not self.exchange.ended:  # closed early: the exchange ends here
            self.exchange.finish()


class _AsyncWatched(_Watched):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        exchange = self.exchange
        noted, kept = exchange.times.append, exchange.parts.append
        left = BATCH  # (islice, as the sync loop counts, takes no async iterator)
        try:
            with self.mapping():
                async for part in self.source:
                    noted(perf_counter())
                    kept(part)
                    left -= 1
                    if not left:
                        exchange.read_batch()
                        left = BATCH
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
        if not self.exchange.ended:  # closed early: the exchange ends here
            self.exchange.finish()


# what httpx's ResponseStream.__iter__ (and the async one's __aiter__) names: the loop over
# its httpcore stream in the exception mapping, and nothing else
_PLAIN_LOOP = {"map_httpcore_exceptions", "_httpcore_stream"}


def _plain(cls: Any, method: str) -> type | None:
    """``cls`` if its ``method`` is the plain loop over ``_httpcore_stream``, else ``None``."""
    code = getattr(getattr(cls, method, None), "__code__", None)
    return cls if code is not None and set(code.co_names) == _PLAIN_LOOP else None


class _Types:
    """The stream classes for one httpx-like module (its Response checks their base), and
    its own body classes whose loop is taken over (``None`` where they have another shape)."""

    def __init__(self, hx: ModuleType) -> None:
        self.sync = type("Watched", (_SyncWatched, hx.SyncByteStream), {})
        self.async_ = type("AsyncWatched", (_AsyncWatched, hx.AsyncByteStream), {})
        default = sys.modules.get(hx.__name__ + "._transports.default")
        mapping = getattr(default, "map_httpcore_exceptions", None)
        self.mapping: Mapping | None = mapping
        self.own_sync = _plain(getattr(default, "ResponseStream", None), "__iter__")
        self.own_async = _plain(getattr(default, "AsyncResponseStream", None), "__aiter__")
        if mapping is None:
            self.own_sync = self.own_async = None


_TYPES: dict[ModuleType, _Types] = {}


def watched(response: Any, exchange: Exchange, hx: ModuleType) -> Any:
    """``response`` with its body watched: every chunk shown to ``exchange``."""
    exchange.answered(response.status_code, response.extensions)
    inner = response.stream
    types = _TYPES.get(hx)
    if types is None:
        types = _TYPES[hx] = _Types(hx)
    kind = type(inner)
    if kind is types.own_sync:
        stream = types.sync(inner, exchange, hx, inner._httpcore_stream, types.mapping)
    elif kind is types.own_async:
        stream = types.async_(inner, exchange, hx, inner._httpcore_stream, types.mapping)
    elif isinstance(inner, hx.AsyncByteStream) and not isinstance(inner, hx.SyncByteStream):
        stream = types.async_(inner, exchange, hx, inner, contextlib.nullcontext)
    else:
        stream = types.sync(inner, exchange, hx, inner, contextlib.nullcontext)
    response.stream = stream
    return response
