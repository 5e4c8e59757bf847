"""The sync face's httpx transport: httpx's own, with every wait cut at the call's due.

httpcore reads a request's ``read`` timeout once per phase (the headers, then the body) and
gives each socket read all of it, so a server that sends a byte every half second never
trips it, and a call with a total limit of 5 s ran on until something else killed it.
:class:`DueTransport` is :class:`httpx.HTTPTransport` with the network streams of its
connections wrapped: a stream learns the timeouts of the request it carries when that
request is written, and shortens every wait to what is left before their ``due`` (a
:func:`time.perf_counter` value that the call moves as its phases go by; see
:mod:`pytest_llmperf.client.calls`). Once nothing is left, the socket's wait times out as it would
for the read limit: httpx raises ``ReadTimeout`` (``WriteTimeout`` while sending).

A request with no ``due`` in its timeouts (one not sent by our clients) keeps httpx's limits.
"""

from __future__ import annotations

import contextvars
import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

perf_counter = time.perf_counter

# The timeouts of the request being sent on this thread (set while httpx sends it).
_sending: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "llmperf_sending", default=None
)
_LEAST = 1e-4  # the shortest wait: what has already arrived is still read


class DueTransport(httpx.HTTPTransport):
    """httpx's transport, whose waits end at ``timeouts["due"]`` (see the module)."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits=limits)
        pool: Any = self._pool  # httpcore's pool; its backend opens the connections
        pool._network_backend = _Backend(pool._network_backend)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        token = _sending.set(request.extensions.get("timeout"))
        try:
            return super().handle_request(request)
        finally:
            _sending.reset(token)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self.inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self.inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self.inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _Stream(httpcore.NetworkStream):
    """A connection's stream; each wait ends by the due of the request it carries."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self.inner = inner
        self.timeouts: dict[str, Any] | None = None

    def _cut(self, timeout: float | None) -> float | None:
        timeouts = self.timeouts
        due = None if timeouts is None else timeouts.get("due")
        if due is None:
            return timeout
        left = max(due - perf_counter(), _LEAST)
        return left if timeout is None or left < timeout else timeout

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, self._cut(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.timeouts = _sending.get()  # a request is written before its answer is read
        self.inner.write(buffer, self._cut(timeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        wrapped = _Stream(self.inner.start_tls(ssl_context, server_hostname, timeout))
        wrapped.timeouts = self.timeouts
        return wrapped

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)
