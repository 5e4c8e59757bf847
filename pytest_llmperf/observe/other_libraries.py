"""The interception point on HTTP libraries other than httpx: ``requests`` (and urllib3).

``requests.adapters.HTTPAdapter.send`` is wrapped: it returns a response whose body has not
been read yet (``response.raw``, urllib3's), and the body is then read through a stand-in
that shows each chunk to the exchange as it passes, so a call through ``requests`` is
measured in full (time to first token and gaps too), streamed or not. vcrpy's cassettes for
these libraries patch below this point, so replayed answers are measured like live ones,
on the time the replay took: vcrpy keeps no timing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pytest_llmperf.observe.measure import Exchange, origin

if TYPE_CHECKING:
    from pytest_llmperf.observe.point import _Point

perf_counter = time.perf_counter


def requests_send(point: _Point, send: Any) -> Any:
    """``HTTPAdapter.send`` behind the point."""

    def send_request(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        split = urlsplit(request.url or "")
        exchange = point.watch(
            split.path,
            lambda: origin(split.scheme, split.hostname or "", split.port),
            lambda: _body(request),
            "requests",
        )
        if exchange is None:
            return send(self, request, *args, **kwargs)
        try:
            response = send(self, request, *args, **kwargs)
        except BaseException as exc:
            exchange.finish(_outcome(exc), exc)
            raise
        exchange.answered(response.status_code, {})
        response.raw = _WatchedRaw(response.raw, exchange)
        return response

    return send_request


def _body(request: Any) -> bytes:
    body = request.body
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return b""  # none, or a generator the adapter has not read yet


def _outcome(exc: BaseException) -> str:
    import requests

    if isinstance(exc, requests.exceptions.Timeout):
        return "timeout"
    return "error" if isinstance(exc, Exception) else "cancelled"


class _WatchedRaw:
    """urllib3's response, with every chunk of its body shown to the exchange."""

    def __init__(self, inner: Any, exchange: Exchange) -> None:
        self._inner = inner
        self._exchange = exchange

    def stream(
        self, amt: int | None = 2**16, decode_content: bool | None = None
    ) -> Iterator[bytes]:
        exchange = self._exchange
        try:
            for part in self._inner.stream(amt, decode_content=decode_content):
                exchange.arrived(part, perf_counter())
                yield part
        except Exception as exc:
            exchange.finish(_outcome(exc), exc)
            raise
        exchange.finish()

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        exchange = self._exchange
        try:
            data: bytes = self._inner.read(amt, *args, **kwargs)
        except Exception as exc:
            exchange.finish(_outcome(exc), exc)
            raise
        if data:
            exchange.arrived(data, perf_counter())
        if not data or amt is None:
            exchange.finish()
        return data

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._exchange.finish()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
