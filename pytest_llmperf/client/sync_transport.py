"""The sync face's httpx transport: httpcore's pool, with every wait cut at the call's due.

httpcore reads a request's ``read`` timeout once per phase (the headers, then the body) and
gives each socket read all of it, so a server that sends a byte every half second never
trips it, and a call with a total limit of 5 s ran on until something else killed it.
:class:`DueTransport` is an :class:`httpx.BaseTransport` that owns an
:class:`httpcore.ConnectionPool` (as httpx's own transport does; both are public), whose
network backend wraps the streams of its connections: a stream learns the timeouts of the
request it carries when that request is written, and shortens every wait to what is left
before their ``due`` (a :func:`time.perf_counter` value that the call moves as its phases go
by; see :mod:`pytest_llmperf.client.calls`). Once nothing is left, the socket's wait times out
as it would for the read limit: ``httpx.ReadTimeout`` (``httpx.WriteTimeout`` while sending).

The transport maps what passes between httpx and httpcore itself, as httpx's does: the
request, the response and its body, and httpcore's exceptions to httpx's of the same name
(their messages kept, the httpcore one as the cause). A request with no ``due`` in its
timeouts (one not sent by our clients) keeps httpx's limits. While a mocking library has
patched httpx's sync transport (pytest_httpx), requests go through httpx's own transport,
which it stands in for; respx's httpcore mode patches the pool's class, which serves this
transport's pool too.
"""

from __future__ import annotations

import contextvars
import ssl
import time
from collections.abc import Iterable, Iterator
from typing import Any, cast

import httpcore
import httpx

from pytest_llmperf.client.transport import is_library_own

perf_counter = time.perf_counter

# The timeouts of the request being sent on this thread (set while the pool sends it).
_sending: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "llmperf_sending", default=None
)
_LEAST = 1e-4  # the shortest wait: what has already arrived is still read

# httpcore's exceptions and httpx's of the same name; a subclass is found before its base
# (the exception's own class first in its MRO), so a ReadTimeout stays a ReadTimeout.
_ERRORS: dict[type[Exception], type[httpx.TransportError]] = {
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.ProtocolError: httpx.ProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
}


def httpx_error(exc: Exception) -> Exception:
    """httpx's exception for httpcore's ``exc``, with its message; ``exc`` itself if it is
    not one of httpcore's."""
    for kind in type(exc).__mro__:
        mapped = _ERRORS.get(kind)
        if mapped is not None:
            return mapped(str(exc))
    return exc


def _mocked() -> bool:
    """Whether a library patched httpx's sync transport to stand in for the network."""
    return not is_library_own(
        httpx.HTTPTransport.handle_request,
        "httpx._transports.default",
        "HTTPTransport.handle_request",
    )


class DueTransport(httpx.BaseTransport):
    """An httpcore pool behind httpx's transport interface, whose waits end at
    ``timeouts["due"]`` (see the module)."""

    def __init__(self, limits: httpx.Limits) -> None:
        self.limits = limits
        # as httpx's transport: verify, and SSL_CERT_FILE / SSL_CERT_DIR honoured
        self.pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=True),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_Backend(httpcore.SyncBackend()),
        )
        self.aside: httpx.HTTPTransport | None = None  # used while httpx is mocked

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if _mocked():  # a mocking library stands in httpx's place: go there
            if self.aside is None:
                self.aside = httpx.HTTPTransport(limits=self.limits)
            return self.aside.handle_request(request)
        url = request.url
        sent = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=cast("Iterable[bytes]", request.stream),
            extensions=request.extensions,
        )
        token = _sending.set(request.extensions.get("timeout"))
        try:
            answer = self.pool.handle_request(sent)
        except Exception as exc:
            mapped = httpx_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        finally:
            _sending.reset(token)
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_Body(cast("Iterable[bytes]", answer.stream)),
            extensions=answer.extensions,
        )

    def close(self) -> None:
        self.pool.close()
        if self.aside is not None:
            self.aside.close()


class _Body(httpx.SyncByteStream):
    """An answer's body as httpcore's pool gives it, its errors httpx's."""

    def __init__(self, inner: Iterable[bytes]) -> None:
        self.inner = inner

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.inner
        except Exception as exc:
            mapped = httpx_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    def close(self) -> None:
        close = getattr(self.inner, "close", None)  # the pool's stream: frees the connection
        if close is not None:
            close()


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
