"""HTTP/1.1 for plain ``http://`` hosts on asyncio's own transports, as an httpx transport.

:class:`AsyncLoopTransport` is what :class:`~pytest_llmperf.client.faces.AsyncOllamaClient` mounts
for ``http://`` URLs (https and proxies stay with httpx's own transport). It exists for
speed under concurrency: httpx's default async transport (httpcore over anyio) spent about
0.65 ms of CPU per call here against 0.13 ms for a raw exchange on asyncio streams (anyio's
cancel scopes, two socket sends per request, a pool that scans every connection per
request), and with 64 calls at once that CPU is what the last call waits on. The parsing
here is written for the answer side, which delays the last of many calls the most: the
buffer is walked by index, one timer per connection serves all its read waits, and a body
that came whole with its headers is handed over read already (``httpx.Response(content=...)``,
as a mock transport hands over its answers), sparing the trip through httpx's async stream.

It is an :class:`httpx.AsyncBaseTransport` and nothing more: the client sends through
``AsyncClient.send``, so what sees the calls of any httpx transport sees its calls (respx's
httpx mode, which swaps the client's transport; the interception point,
:mod:`pytest_llmperf.observe.point`, which wraps :meth:`AsyncLoopTransport.handle_async_request`).
While a mocking library has patched httpx's async transport or httpcore's pool (pytest_httpx,
respx in its httpcore mode), it steps aside: requests go through httpx's own transport, and
so to the mock, as any httpx client's would.

What it keeps of httpx's contract, so the rest of the client works unchanged:

- the timeout extension, read where httpcore reads it: ``connect`` for opening a connection,
  ``write`` for each wait to send, ``pool`` for a wait for a free connection, ``read`` for
  each wait for data, looked up again at every wait (so a read limit changed once the
  headers are in applies to the body); beyond httpx's, a ``due`` (a
  :func:`time.perf_counter` value, moved by the call as its phases go by) ends every wait
  to send or receive, whatever the server sends meanwhile (see :mod:`pytest_llmperf.client.calls`);
- responses streamed as they arrive, with Content-Length, chunked and read-until-close
  bodies; request bodies as bytes or streamed (chunked when httpx asks for it);
- keep-alive: a connection goes back to the pool only after a complete response that
  allows reuse (HTTP/1.1, no ``Connection: close``, nothing extra received); one the server
  closed, or idle past ``keepalive_expiry``, is never reused; ``max_connections`` and
  ``max_keepalive_connections`` as in httpx's :class:`httpx.Limits`;
- errors as httpx's: ``ConnectError``/``ConnectTimeout``, ``ReadTimeout``, ``WriteTimeout``,
  ``PoolTimeout``, ``RemoteProtocolError`` (closed before a complete answer, malformed
  answer), ``ReadError`` (reset), ``LocalProtocolError`` (a header with a line break).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpcore
import httpx

monotonic = time.monotonic
perf_counter = time.perf_counter

MAX_HEAD = 64 * 1024  # the most a response's status line and headers may take
# In a request's extensions: the caller reads the answer whole. A body with a Content-Length
# of at most WHOLE_MOST bytes then comes read already, with the response.
WHOLE = "llmperf_whole"
WHOLE_MOST = 1024 * 1024
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_SPACE = frozenset(b" \t")
_NO_BODY = frozenset((204, 304))

# how a response body ends
_LENGTH, _CHUNKED, _CLOSE = 0, 1, 2
# where a chunked body is
_SIZE, _DATA, _DATA_END, _TRAILERS = 0, 1, 2, 3
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?")


def is_library_own(method: Any, module: str, name: str) -> bool:
    """Whether ``method`` (past the interception point's wrapper) is the library's own."""
    method = getattr(method, "__llmperf_wraps__", method)
    qualname = getattr(method, "__qualname__", "")
    return getattr(method, "__module__", None) == module and qualname.endswith(name)


def mocked() -> bool:
    """Whether a library patched httpx's async transport or httpcore's pool to stand in for
    the network (pytest_httpx; respx in its httpcore mode): then requests go through them.

    (respx's httpx mode swaps the transport an ``httpx.AsyncClient`` picks for a URL, so its
    requests never reach this one.)
    """
    return not (
        is_library_own(
            httpx.AsyncHTTPTransport.handle_async_request,
            "httpx._transports.default",
            "AsyncHTTPTransport.handle_async_request",
        )
        and is_library_own(
            httpcore.AsyncConnectionPool.handle_async_request,
            "httpcore._async.connection_pool",
            "AsyncConnectionPool.handle_async_request",
        )
    )


class _Timeout(Exception):
    """A wait ran past its limit (mapped to httpx's exception of the phase)."""


def _limit(timeouts: dict[str, Any], phase: str) -> float | None:
    """The limit of one wait: the phase's, cut to what is left before the call's ``due``."""
    limit: float | None = timeouts.get(phase)
    due = timeouts.get("due")
    if due is not None:
        left: float = max(due - perf_counter(), 0.0)
        if limit is None or left < limit:
            return left
    return limit


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class _Connection(asyncio.Protocol):
    """One TCP connection: a receive buffer and a way to wait for more."""

    def __init__(self, pool: AsyncLoopTransport, origin: tuple[str, int]) -> None:
        self.pool = pool
        self.origin = origin
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[bool] | None = None
        self.drained: asyncio.Future[bool] | None = None
        self.paused = False
        self.ended = False  # the server closed its side (EOF), or the connection is gone
        self.error: Exception | None = None  # why the connection was lost, if not a clean EOF
        self.counted = True  # holds one of the pool's max_connections
        self.idle_since = 0.0
        self.deadline = math.inf  # when the running wait times out (loop time)
        self.timer: asyncio.TimerHandle | None = None  # fires at or before the deadline

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(True)

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        if exc is not None and self.error is None:
            self.error = exc
        self._wake()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        drained = self.drained
        if drained is not None and not drained.done():
            drained.set_result(True)
        self.pool._lost(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        drained = self.drained
        if drained is not None and not drained.done():
            drained.set_result(True)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(True)

    # --- what the transport does with it ----------------------------------------------

    async def wait(self, timeout: float | None) -> None:
        """Wait until more data arrives or the connection ends; ``_Timeout`` after ``timeout``.

        One timer per connection serves its waits: it is set anew only when a wait must end
        sooner than the timer fires; firing early, it sets itself again for the wait's end.
        A timer made and cancelled per wait cost a tenth of the transport's time.
        """
        loop = self.loop
        waiter: asyncio.Future[bool] = loop.create_future()
        self.waiter = waiter
        if timeout is None:
            self.deadline = math.inf
        else:
            self.deadline = deadline = loop.time() + timeout
            timer = self.timer
            if timer is None or timer.when() > deadline:
                if timer is not None:
                    timer.cancel()
                self.timer = loop.call_at(deadline, self._alarm)
        try:
            arrived = await waiter
        finally:
            self.waiter = None
        if not arrived:
            raise _Timeout

    def _alarm(self) -> None:
        self.timer = None
        waiter = self.waiter
        if waiter is None or waiter.done() or self.deadline == math.inf:
            return  # no wait with a limit is running
        if self.loop.time() >= self.deadline - 1e-6:
            self.waiter = None
            waiter.set_result(False)
        else:  # a later wait than the one the timer was set for
            self.timer = self.loop.call_at(self.deadline, self._alarm)

    async def drain(self, timeout: float | None) -> None:
        """Wait until the write buffer is below its high-water mark again."""
        while self.paused and not self.ended:
            drained: asyncio.Future[bool] = self.loop.create_future()
            self.drained = drained
            timer = None if timeout is None else self.loop.call_later(timeout, _expire, drained)
            try:
                if not await drained:
                    raise _Timeout
            finally:
                self.drained = None
                if timer is not None:
                    timer.cancel()

    def close(self) -> None:
        """Close at once (an unfinished exchange: the connection cannot be reused)."""
        self.ended = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            with contextlib.suppress(RuntimeError):  # its event loop is closed already
                self.transport.abort()
        self.pool._forget(self)

    def reusable(self, now: float, expiry: float | None) -> bool:
        return (
            not self.ended
            and not self.buffer
            and self.loop is asyncio.get_running_loop()
            and (expiry is None or now - self.idle_since <= expiry)
        )

    def broken(self, what: str) -> httpx.TransportError:
        """The error for a connection that ended while ``what`` was still expected."""
        if isinstance(self.error, OSError):
            return httpx.ReadError(str(self.error) or type(self.error).__name__)
        return httpx.RemoteProtocolError(what)


class AsyncLoopTransport(httpx.AsyncBaseTransport):
    """An httpx transport for ``http://`` URLs on asyncio protocols, with keep-alive reuse.

    ``limits``: as for httpx's own transports (``max_connections`` in all,
    ``max_keepalive_connections`` idle ones kept, ``keepalive_expiry`` seconds idle).
    """

    def __init__(self, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits()
        self._limits = limits
        self._aside: httpx.AsyncHTTPTransport | None = None  # used while httpx is mocked
        self._max = limits.max_connections
        self._max_idle = limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._idle_count = 0
        self._open: set[_Connection] = set()  # every connection counted against _max
        self._connecting = 0  # connections being opened, counted against _max too
        self._waiters: deque[asyncio.Future[bool]] = deque()
        self._closed = False

    # --- the pool -----------------------------------------------------------------------

    def _lost(self, conn: _Connection) -> None:
        """The connection closed (either side): it leaves the idle list and the count."""
        idle = self._idle.get(conn.origin)
        if idle and conn in idle:
            idle.remove(conn)
            self._idle_count -= 1
        self._forget(conn)

    def _forget(self, conn: _Connection) -> None:
        if conn.counted:
            conn.counted = False
            self._open.discard(conn)
            self._wake_one()

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return

    def _release(self, conn: _Connection, reuse: bool) -> None:
        """An exchange is over: keep the connection for the next one, or close it."""
        if not reuse or conn.ended or conn.buffer or self._closed:
            conn.close()
            return
        if self._max_idle is not None and self._idle_count >= self._max_idle:
            conn.close()
            return
        conn.idle_since = monotonic()
        self._idle.setdefault(conn.origin, []).append(conn)
        self._idle_count += 1
        if self._waiters:
            self._wake_one()

    def _close_an_idle_one(self) -> bool:
        """Make room for a new connection by closing an idle one (the oldest of a host)."""
        for idle in self._idle.values():
            if idle:
                conn = idle.pop(0)
                self._idle_count -= 1
                conn.close()
                return True
        return False

    def _idle_one(self, origin: tuple[str, int]) -> _Connection | None:
        """The most recently used idle connection to ``origin`` that can still be used."""
        idle = self._idle.get(origin)
        if idle:
            now = monotonic()
            expiry = self._expiry
            while idle:
                conn = idle.pop()
                self._idle_count -= 1
                if conn.reusable(now, expiry):
                    return conn
                conn.close()
        return None

    async def _acquire(self, origin: tuple[str, int], timeouts: dict[str, Any]) -> _Connection:
        """A new connection (none was idle), once the pool has room for it."""
        most = self._max
        if most is not None and len(self._open) + self._connecting >= most:
            await self._wait_for_room(origin, timeouts, most)
            conn = self._idle_one(origin)  # one came back for this host while waiting
            if conn is not None:
                return conn
        return await self._connect(origin, timeouts.get("connect"))

    async def _wait_for_room(
        self, origin: tuple[str, int], timeouts: dict[str, Any], most: int
    ) -> None:
        limit = timeouts.get("pool")
        deadline = None if limit is None else monotonic() + limit
        loop = asyncio.get_running_loop()
        while len(self._open) + self._connecting >= most:
            if self._idle.get(origin):
                return
            if self._close_an_idle_one():
                continue
            waiter: asyncio.Future[bool] = loop.create_future()
            self._waiters.append(waiter)
            timer = None
            if deadline is not None:
                timer = loop.call_later(max(deadline - monotonic(), 0.0), _expire, waiter)
            try:
                woken = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.result():
                    self._wake_one()  # pass the turn this task was given on
                raise
            finally:
                if timer is not None:
                    timer.cancel()
            if not woken:
                raise httpx.PoolTimeout("timed out waiting for a free connection")

    async def _connect(self, origin: tuple[str, int], timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        made: list[_Connection] = []

        def protocol() -> _Connection:
            made.append(_Connection(self, origin))
            self._open.add(made[-1])
            return made[-1]

        self._connecting += 1
        try:
            await asyncio.wait_for(loop.create_connection(protocol, *origin), timeout)
        except asyncio.TimeoutError:  # (TimeoutError is an OSError on 3.11: this comes first)
            for conn in made:
                conn.close()
            raise httpx.ConnectTimeout(f"could not connect to {_netloc(origin)} in time") from None
        except OSError as exc:
            for conn in made:
                conn.close()
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from None
        except BaseException:
            for conn in made:
                conn.close()
            raise
        finally:
            self._connecting -= 1
            if not made:
                self._wake_one()  # the slot this attempt held is free again
        return made[-1]

    # --- one exchange -------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        if mocked():  # a mocking library stands in httpx's (or httpcore's) place: go there
            if self._aside is None:
                self._aside = httpx.AsyncHTTPTransport(limits=self._limits)
            return await self._aside.handle_async_request(request)
        url = request.url
        if url.scheme != "http":
            raise httpx.UnsupportedProtocol(
                f"AsyncLoopTransport serves http:// URLs only, not {url.scheme}://"
            )
        origin = (url.raw_host.decode("ascii"), url.port or 80)
        timeouts: dict[str, Any] = request.extensions.get("timeout") or {}
        conn = self._idle_one(origin) or await self._acquire(origin, timeouts)
        try:
            close, streamed, chunked = self._send_head(conn, request)
            if streamed:
                await self._send_body(conn, request, chunked, timeouts)
            elif conn.paused:
                await self._drain(conn, timeouts)
            return await self._receive(conn, request, timeouts, close)
        except BaseException:
            conn.close()
            raise

    def _send_head(self, conn: _Connection, request: httpx.Request) -> tuple[bool, bool, bool]:
        """Write the request's head, and its body if it is bytes already.

        Returns whether the request asks to close the connection after the answer, whether
        its body (a stream) is still to be sent, and whether that goes chunked.
        """
        raw = request.headers.raw
        lines = b"".join([b"%s: %s\r\n" % pair for pair in raw])
        if lines.count(b"\n") != len(raw) or lines.count(b"\r") != len(raw):
            raise httpx.LocalProtocolError("a request header holds a line break")
        lowered = b"\n" + lines.lower()
        at = lowered.find(b"\nconnection:")
        close = at >= 0 and b"close" in lowered[at : lowered.find(b"\n", at + 1)]
        head = b"%s %s HTTP/1.1\r\n%s\r\n" % (request.method.encode(), request.url.raw_path, lines)
        transport = conn.transport
        if transport is None or conn.ended:
            raise conn.broken("Server disconnected without sending a response.")
        try:
            body: bytes | None = request.content
        except httpx.RequestNotRead:
            body = None
        if body is not None:
            transport.write(head + body)
            return close, False, False
        transport.write(head)
        return close, True, b"\ntransfer-encoding: chunked\r" in lowered

    async def _send_body(
        self, conn: _Connection, request: httpx.Request, chunked: bool, timeouts: dict[str, Any]
    ) -> None:
        transport, stream = conn.transport, request.stream
        assert transport is not None
        if not isinstance(stream, httpx.AsyncByteStream):  # as httpx's own async transport says
            raise RuntimeError("Attempted to send an sync request with an AsyncClient instance.")
        async for part in stream:
            if not part:
                continue
            transport.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
            if conn.paused:
                await self._drain(conn, timeouts)
            if conn.ended:
                raise conn.broken("Server disconnected while the request was being sent.")
        if chunked:
            transport.write(b"0\r\n\r\n")
            if conn.paused:
                await self._drain(conn, timeouts)

    async def _drain(self, conn: _Connection, timeouts: dict[str, Any]) -> None:
        try:
            await conn.drain(_limit(timeouts, "write"))
        except _Timeout:
            raise httpx.WriteTimeout("timed out sending the request") from None

    async def _receive(
        self, conn: _Connection, request: httpx.Request, timeouts: dict[str, Any], close: bool
    ) -> httpx.Response:
        buffer = conn.buffer
        while True:
            found = _head_end(buffer)
            while found is None:
                await self._more_head(conn, timeouts)
                found = _head_end(buffer)
            start, end = found
            head = bytes(buffer[:start])
            del buffer[:end]
            status, version, reason, headers, framing = _parse_head(head)
            if status < 200 and status != 101:
                continue  # an interim answer (100 Continue): the real one follows
            break
        keep = version == b"HTTP/1.1" and not framing.close and not close
        if request.method == "HEAD" or status in _NO_BODY or status == 101:
            kind, length = _LENGTH, 0
            keep = keep and status != 101
        elif framing.chunked:
            kind, length = _CHUNKED, 0
        elif framing.length is not None:
            kind, length = _LENGTH, framing.length
        else:
            kind, length, keep = _CLOSE, 0, False
        body = _Body(self, conn, timeouts, kind, length, keep)
        extensions = {"http_version": version, "reason_phrase": reason}
        if kind == _LENGTH and not framing.encoded:
            if not body.finished and length <= WHOLE_MOST and request.extensions.get(WHOLE):
                await body.read_rest()
            if body.finished:
                # all of it is in (and the connection back in the pool): read already, as
                # httpx reads a body given as bytes (its Content-Length is there already)
                return httpx.Response(
                    status, headers=headers, content=body.pending, extensions=extensions
                )
        return httpx.Response(status, headers=headers, stream=body, extensions=extensions)

    @staticmethod
    async def _more_head(conn: _Connection, timeouts: dict[str, Any]) -> None:
        """Wait for more of the status line and headers."""
        if conn.ended:
            raise conn.broken(
                "Server disconnected without sending a response."
                if not conn.buffer
                else "the server closed the connection in the middle of the headers"
            )
        if len(conn.buffer) > MAX_HEAD:
            raise httpx.RemoteProtocolError("the response headers are too long")
        try:
            await conn.wait(_limit(timeouts, "read"))
        except _Timeout:
            raise httpx.ReadTimeout("timed out waiting for the response") from None

    async def aclose(self) -> None:
        self._closed = True
        if self._aside is not None:
            await self._aside.aclose()
        for conn in list(self._open):
            conn.close()
        self._idle.clear()
        self._idle_count = 0
        while self._waiters:
            self._wake_one()


def _head_end(buffer: bytearray) -> tuple[int, int] | None:
    """Where the status line and headers end in ``buffer`` (and the body starts), if they do."""
    at = buffer.find(b"\r\n\r\n")
    if at >= 0 and buffer.find(b"\n\n", 0, at) < 0:
        return at, at + 4
    found = _HEAD_END.search(buffer) if b"\n" in buffer else None  # bare LF line ends
    return None if found is None else (found.start(), found.end())


class _Framing:
    """What the headers say about the body and the connection."""

    __slots__ = ("chunked", "close", "encoded", "length", "until_close")

    def __init__(self) -> None:
        self.encoded = False  # a Content-Encoding other than identity
        self.chunked = False  # the last transfer coding is chunked
        self.until_close = False  # another transfer coding: the body runs until the close
        self.length: int | None = None  # Content-Length, when it applies
        self.close = False  # the connection closes after this response


def _parse_head(head: bytes) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]], _Framing]:
    lines = head.splitlines()
    version, _, rest = lines[0].partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise httpx.RemoteProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name[-1] in _SPACE or name[0] in _SPACE:
            if line[:1] in (b" ", b"\t") and headers:  # a folded continuation
                name, value = headers[-1]
                headers[-1] = (name, value + b" " + line.strip(b" \t"))
                continue
            raise httpx.RemoteProtocolError(f"a malformed response header: {line[:80]!r}")
        headers.append((name, value.strip(b" \t")))
    return _framing(int(code), version, reason, headers)


def _framing(
    status: int, version: bytes, reason: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]], _Framing]:
    framing = _Framing()
    length: bytes | None = None
    keep_alive = False  # asked for by an HTTP/1.0 server
    for name, value in headers:
        lower = name.lower()
        if lower == b"content-length":
            for part in value.split(b","):
                part = part.strip()
                if length is not None and part != length:
                    raise httpx.RemoteProtocolError("conflicting Content-Length headers")
                length = part
        elif lower == b"transfer-encoding":
            framing.chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
            framing.until_close = not framing.chunked  # another coding last: until the close
        elif lower == b"content-encoding":
            framing.encoded = framing.encoded or value.strip().lower() not in (b"", b"identity")
        elif lower == b"connection":
            tokens = value.lower()
            framing.close = framing.close or b"close" in tokens
            keep_alive = keep_alive or b"keep-alive" in tokens
    if version == b"HTTP/1.0" and not keep_alive:
        framing.close = True
    if length is not None and not framing.chunked and not framing.until_close:
        if not length.isdigit():
            raise httpx.RemoteProtocolError(f"a malformed Content-Length: {length[:20]!r}")
        framing.length = int(length)
    return status, version, reason, headers, framing


def _netloc(origin: tuple[str, int]) -> str:
    host, port = origin
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Body(httpx.AsyncByteStream):
    """A response body as it arrives; gives the connection back once it is complete.

    What the buffer already holds is taken at once (for a short answer, all of it, so the
    connection is free before the caller reads); the rest as it arrives.
    """

    __slots__ = (
        "chunk",
        "conn",
        "finished",
        "keep",
        "kind",
        "left",
        "pending",
        "pool",
        "timeouts",
    )

    def __init__(
        self,
        pool: AsyncLoopTransport,
        conn: _Connection,
        timeouts: dict[str, Any],
        kind: int,
        length: int,
        keep: bool,
    ) -> None:
        self.pool = pool
        self.conn: _Connection | None = conn
        self.timeouts = timeouts
        self.kind = kind
        self.left = length  # Content-Length: bytes to come; chunked: of the current chunk
        self.chunk = _SIZE  # where a chunked body is
        self.keep = keep
        self.finished = False
        self.pending = self._take(conn)

    def _finish(self) -> None:
        self.finished = True
        conn, self.conn = self.conn, None
        if conn is not None:
            self.pool._release(conn, self.keep)

    def _take(self, conn: _Connection) -> bytes:
        """What the buffer holds of the body (finishing it when it is complete)."""
        buffer = conn.buffer
        kind = self.kind
        if kind == _LENGTH:
            left = self.left
            if len(buffer) >= left:
                part = bytes(buffer[:left]) if len(buffer) > left else bytes(buffer)
                del buffer[:left]
                self.left = 0
                self._finish()
                return part
            part = bytes(buffer)
            buffer.clear()
            self.left = left - len(part)
            return part
        if kind == _CHUNKED:
            return self._take_chunks(buffer)
        part = bytes(buffer)
        buffer.clear()
        if conn.ended and not isinstance(conn.error, OSError):
            self._finish()  # read until the close: the close ends it
        return part

    # One loop over the four states of chunked encoding, on the path of every streamed byte:
    # a method per state would cost a call per chunk, so it stays whole (and complex).
    def _take_chunks(self, buffer: bytearray) -> bytes:  # noqa: C901
        parts: list[bytes] = []
        state, left = self.chunk, self.left
        at, size = 0, len(buffer)
        done = False
        while at < size:
            if state == _DATA:
                end = at + left
                if end > size:
                    parts.append(bytes(buffer[at:]))
                    left, at = end - size, size
                    break
                parts.append(bytes(buffer[at:end]))
                at, left, state = end, 0, _DATA_END
            elif state == _DATA_END:
                if buffer[at : at + 2] == b"\r\n":
                    at += 2
                elif buffer[at] == 10:  # a bare LF
                    at += 1
                elif buffer[at] == 13 and at + 1 == size:
                    break  # the LF is still to come
                else:
                    raise httpx.RemoteProtocolError("a chunk's data is not followed by CRLF")
                state = _SIZE
            elif state == _SIZE:
                end = buffer.find(b"\n", at)
                if end < 0:
                    if size - at > MAX_HEAD:
                        raise httpx.RemoteProtocolError("a chunk size line is too long")
                    break
                found = _CHUNK_SIZE.fullmatch(buffer, at, end)
                if found is None:
                    line = bytes(buffer[at:end])
                    raise httpx.RemoteProtocolError(f"a malformed chunk size line: {line[:20]!r}")
                left, at = int(found[1], 16), end + 1
                state = _DATA if left else _TRAILERS
            else:  # _TRAILERS: an empty line, or trailer lines and then an empty line
                if buffer[at : at + 2] == b"\r\n":
                    at += 2
                elif buffer[at] == 10:
                    at += 1
                else:
                    trailers = _HEAD_END.search(buffer, at)
                    if trailers is None:
                        if size - at > MAX_HEAD:
                            raise httpx.RemoteProtocolError("the trailers are too long")
                        break
                    at = trailers.end()
                done = True
                break
        del buffer[:at]
        self.chunk, self.left = state, left
        if done:
            self._finish()  # (after the buffer holds nothing of this answer)
        if not parts:
            return b""
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def read_rest(self) -> None:
        """Wait for the rest of the body, into ``pending`` (a Content-Length body)."""
        self.pending = b"".join([part async for part in self])

    async def __aiter__(self) -> AsyncIterator[bytes]:
        part, self.pending = self.pending, b""
        if part:
            yield part
        conn = self.conn
        if conn is None:
            return
        kind = self.kind
        try:
            while True:
                if conn.buffer or (conn.ended and kind == _CLOSE):
                    part = self._take(conn)
                    if part:
                        yield part
                    if self.finished:
                        return
                if conn.ended:
                    raise conn.broken(self._cut())
                try:
                    # looked up at every read: a limit changed after the headers applies
                    await conn.wait(_limit(self.timeouts, "read"))
                except _Timeout:
                    raise httpx.ReadTimeout("timed out waiting for the response body") from None
        except BaseException:
            if self.conn is not None:
                self.conn = None
                conn.close()
            raise

    def _cut(self) -> str:
        if self.kind == _LENGTH:
            return (
                "peer closed connection without sending complete message body: "
                f"{self.left} more bytes expected"
            )
        return (
            "peer closed connection without sending complete message body: incomplete chunked read"
        )

    async def aclose(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:  # the body was not read to its end: the connection is spent
            conn.close()
