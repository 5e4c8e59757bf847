"""AsyncLoopTransport: real HTTP/1.1 over loopback, against the emulator and tiny servers."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import own_loop
import pytest

from pytest_llmperf import AsyncOllamaClient, EmulatorServer, LLMTimeoutError, Recorder
from pytest_llmperf.client.calls import Open
from pytest_llmperf.client.faces import LIMITS, _OwnAsyncClient
from pytest_llmperf.client.transport import AsyncLoopTransport, read_at_once

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter
Handler = Callable[[Reader, Writer], Awaitable[None]]

OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


async def read_request(reader: Reader) -> tuple[bytes, bytes]:
    """One request: its head, and its body (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        body = b""
        while size := int((await reader.readline()).strip(), 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readline()
        return head, body
    length = 0
    if b"content-length:" in lower:
        length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
    return head, await reader.readexactly(length)


class Tiny:
    """A loopback server that runs ``handler`` per connection and counts the connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.url = ""
        self.serving: set[asyncio.Task[None]] = set()

    async def _serve(self, reader: Reader, writer: Writer) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.serving.add(task)
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.serving.discard(task)
            writer.close()

    async def __aenter__(self) -> Tiny:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Server.close() leaves the connections' handlers running (and before 3.12,
        # wait_closed() does not wait for them): one still waiting for a next request would
        # outlive the test's event loop, which pytest-asyncio 0.24 closes as it is (an
        # asyncio.Runner cancels such tasks first), and its writer would never be closed.
        assert self.server is not None
        self.server.close()
        serving = list(self.serving)
        for task in serving:
            task.cancel()
        await asyncio.gather(*serving, return_exceptions=True)
        await self.server.wait_closed()

    async def request(self, reader: Reader) -> bytes:
        head, body = await read_request(reader)
        self.heads.append(head)
        self.bodies.append(body)
        return body


def echo_server(close_after: int | None = None) -> Tiny:
    """Answers every request on a connection with its body, with Content-Length."""
    tiny: Tiny

    async def handler(reader: Reader, writer: Writer) -> None:
        served = 0
        while True:
            body = await tiny.request(reader)
            served += 1
            last = close_after is not None and served >= close_after
            extra = b"Connection: close\r\n" if last else b""
            writer.write(OK_HEAD + extra + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            if last:
                return

    tiny = Tiny(handler)
    return tiny


@pytest.fixture
async def transport() -> AsyncIterator[AsyncLoopTransport]:
    made = AsyncLoopTransport(LIMITS)
    yield made
    await made.aclose()


@pytest.fixture
async def http(transport: AsyncLoopTransport) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=transport) as client:
        yield client


def timeouts(**limits: float) -> dict[str, Any]:
    return {"timeout": {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0, **limits}}


async def test_sequential_requests_reuse_one_connection(http: httpx.AsyncClient) -> None:
    async with echo_server() as tiny:
        for number in range(5):
            response = await http.post(tiny.url + "/echo", content=b"call %d" % number)
            assert (response.status_code, response.content) == (200, b"call %d" % number)
            assert response.http_version == "HTTP/1.1"
        assert tiny.connections == 1


async def test_concurrent_requests_open_connections_then_reuse_them(
    http: httpx.AsyncClient,
) -> None:
    async with echo_server() as tiny:
        for _ in range(3):
            answers = await asyncio.gather(
                *(http.post(tiny.url, content=b"%d" % i) for i in range(8))
            )
            assert [a.content for a in answers] == [b"%d" % i for i in range(8)]
        assert tiny.connections <= 8


async def test_the_request_goes_out_as_httpx_built_it(http: httpx.AsyncClient) -> None:
    async with echo_server() as tiny:
        await http.post(tiny.url + "/a/b?x=1&y=%20", content=b"{}", headers={"X-Test": "yes"})
        head = tiny.heads[0]
        assert head.startswith(b"POST /a/b?x=1&y=%20 HTTP/1.1\r\n")
        assert b"\r\nX-Test: yes\r\n" in head
        assert b"\r\nContent-Length: 2\r\n" in head
        assert b"\r\nHost: 127.0.0.1:" in head


async def test_a_streamed_request_body_goes_chunked(http: httpx.AsyncClient) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one ", b"", b"two ", b"three"):
            yield part

    async with echo_server() as tiny:
        response = await http.post(tiny.url, content=parts())
        assert response.content == b"one two three"
        assert b"transfer-encoding: chunked" in tiny.heads[0].lower()


async def test_a_chunked_answer_streams_as_it_arrives(http: httpx.AsyncClient) -> None:
    release = asyncio.Event()

    async def handler(reader: Reader, writer: Writer) -> None:
        await tiny.request(reader)
        writer.write(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
        writer.write(b"6;ext=1\r\nfirst\n\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"7\r\nsecond\n\r\n0\r\nX-Trailer: t\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with Tiny(handler) as tiny:
        async with http.stream("POST", tiny.url, content=b"x") as response:
            lines = response.aiter_lines()
            assert await lines.__anext__() == "first"  # before the server sends the rest
            release.set()
            assert [line async for line in lines] == ["second"]
        # the body ended cleanly: the connection went back to the pool
        assert [len(v) for v in http._transport._idle.values()] == [1]  # type: ignore[attr-defined]


async def test_chunks_split_anywhere_are_put_back_together(http: httpx.AsyncClient) -> None:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (b"alpha", b"beta" * 40, b"g"))
    wire = OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n"

    async def handler(reader: Reader, writer: Writer) -> None:
        while True:
            await tiny.request(reader)
            for start in range(0, len(wire), 3):  # three bytes at a time
                writer.write(wire[start : start + 3])
                await writer.drain()
                await asyncio.sleep(0)

    async with Tiny(handler) as tiny:
        for _ in range(2):
            response = await http.post(tiny.url, content=b"x")
            assert response.content == b"alpha" + b"beta" * 40 + b"g"
        assert tiny.connections == 1


async def test_an_answer_that_runs_until_the_close(http: httpx.AsyncClient) -> None:
    async def handler(reader: Reader, writer: Writer) -> None:
        await tiny.request(reader)
        writer.write(OK_HEAD + b"\r\npart one, ")
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(b"part two")
        await writer.drain()

    async with Tiny(handler) as tiny:
        for _ in range(2):
            response = await http.post(tiny.url, content=b"x")
            assert response.content == b"part one, part two"
        assert tiny.connections == 2  # such a connection is never reused


async def test_answers_without_a_body(http: httpx.AsyncClient) -> None:
    async def handler(reader: Reader, writer: Writer) -> None:
        while True:
            head, _ = await read_request(reader)
            if head.startswith(b"HEAD"):
                writer.write(OK_HEAD + b"Content-Length: 100\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()

    async with Tiny(handler) as tiny:
        assert (await http.head(tiny.url)).content == b""
        response = await http.post(tiny.url, content=b"x")
        assert (response.status_code, response.content) == (204, b"")
        assert (await http.head(tiny.url)).headers["content-length"] == "100"
        assert tiny.connections == 1


async def test_connection_close_is_honoured(http: httpx.AsyncClient) -> None:
    async with echo_server(close_after=1) as tiny:
        for number in range(3):
            response = await http.post(tiny.url, content=b"%d" % number)
            assert response.content == b"%d" % number
        assert tiny.connections == 3
    async with echo_server() as tiny:
        for _ in range(2):
            await http.post(tiny.url, content=b"x", headers={"Connection": "close"})
        assert tiny.connections == 2


async def test_a_closing_answer_with_a_length_ends_at_its_length(
    http: httpx.AsyncClient,
) -> None:
    async def handler(reader: Reader, writer: Writer) -> None:
        await tiny.request(reader)
        writer.write(OK_HEAD + b"Connection: close\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(1)  # slow to close: the answer must not wait for it

    async with Tiny(handler) as tiny:
        began = time.perf_counter()
        assert (await http.post(tiny.url, content=b"x")).content == b"ok"
        assert time.perf_counter() - began < 0.5


async def test_a_connection_the_server_closed_while_idle_is_not_reused(
    http: httpx.AsyncClient,
) -> None:
    async def handler(reader: Reader, writer: Writer) -> None:
        body = await tiny.request(reader)
        writer.write(OK_HEAD + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()  # and close: the client does not know until it hears the FIN

    async with Tiny(handler) as tiny:
        for number in range(3):
            await asyncio.sleep(0.02)  # the FIN arrives while the connection is idle
            assert (await http.post(tiny.url, content=b"%d" % number)).content == b"%d" % number
        assert tiny.connections == 3


async def test_a_server_that_closes_without_answering(http: httpx.AsyncClient) -> None:
    async def handler(reader: Reader, writer: Writer) -> None:
        await tiny.request(reader)

    async with Tiny(handler) as tiny:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await http.post(tiny.url, content=b"x")


async def test_a_body_cut_short_is_a_protocol_error(http: httpx.AsyncClient) -> None:
    answers = [
        OK_HEAD + b"Content-Length: 10\r\n\r\nshort",
        OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    ]

    async def handler(reader: Reader, writer: Writer) -> None:
        await tiny.request(reader)
        writer.write(answers[tiny.connections - 1])
        await writer.drain()

    async with Tiny(handler) as tiny:
        for _ in answers:
            with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
                await http.post(tiny.url, content=b"x")


async def test_malformed_answers_are_protocol_errors(http: httpx.AsyncClient) -> None:
    answers = [
        b"SPDY/9 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n0x2\r\nok\r\n0\r\n\r\n",
        OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n",
    ]

    async def handler(reader: Reader, writer: Writer) -> None:
        await tiny.request(reader)
        writer.write(answers[tiny.connections - 1])
        await writer.drain()
        await reader.read()

    async with Tiny(handler) as tiny:
        for _ in answers:
            with pytest.raises(httpx.RemoteProtocolError):
                await http.post(tiny.url, content=b"x")


async def test_a_silent_server_trips_the_read_timeout(http: httpx.AsyncClient) -> None:
    async def handler(reader: Reader, writer: Writer) -> None:
        await tiny.request(reader)
        await reader.read()  # never answers

    async with Tiny(handler) as tiny:
        began = time.perf_counter()
        with pytest.raises(httpx.ReadTimeout):
            await http.post(tiny.url, content=b"x", extensions=timeouts(read=0.1))
        assert 0.09 < time.perf_counter() - began < 1.0


async def test_the_read_limit_is_looked_up_again_for_the_body(
    http: httpx.AsyncClient,
) -> None:
    """As httpcore does: a read limit changed once the headers are in applies to the body."""

    async def handler(reader: Reader, writer: Writer) -> None:
        await tiny.request(reader)
        await asyncio.sleep(0.15)  # headers after 0.15 s ...
        writer.write(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await asyncio.sleep(0.3)  # ... then the body stalls for 0.3 s
        writer.write(b"4\r\nlast\r\n0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with Tiny(handler) as tiny:
        limits = timeouts(read=1.0)
        request = http.build_request("POST", tiny.url, content=b"x", extensions=limits)
        response = await http.send(request, stream=True)  # waited 0.15 s under read=1.0
        limits["timeout"]["read"] = 0.1  # a stall limit for the body
        parts = response.aiter_bytes()
        assert await parts.__anext__() == b"first"
        began = time.perf_counter()
        with pytest.raises(httpx.ReadTimeout):
            await parts.__anext__()
        assert time.perf_counter() - began < 0.25
        await response.aclose()


async def test_a_refused_connection_is_a_connect_error(http: httpx.AsyncClient) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        await http.post(f"http://127.0.0.1:{port}/", content=b"x")


async def test_a_pool_that_is_full_waits_then_times_out() -> None:
    release = asyncio.Event()

    async def handler(reader: Reader, writer: Writer) -> None:
        while True:
            body = await tiny.request(reader)
            await release.wait()
            writer.write(OK_HEAD + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with Tiny(handler) as tiny, httpx.AsyncClient(transport=AsyncLoopTransport(one)) as http:
        first = asyncio.ensure_future(http.post(tiny.url, content=b"first"))
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.PoolTimeout):
            await http.post(tiny.url, content=b"late", extensions=timeouts(pool=0.05))
        second = asyncio.ensure_future(http.post(tiny.url, content=b"second"))
        await asyncio.sleep(0.05)
        release.set()
        assert [(await first).content, (await second).content] == [b"first", b"second"]
        assert tiny.connections == 1  # the waiting request took the freed connection


async def test_only_max_keepalive_idle_connections_are_kept() -> None:
    two = httpx.Limits(max_connections=10, max_keepalive_connections=2)
    async with echo_server() as tiny, httpx.AsyncClient(transport=AsyncLoopTransport(two)) as http:
        await asyncio.gather(*(http.post(tiny.url, content=b"x") for _ in range(5)))
        assert sum(len(idle) for idle in http._transport._idle.values()) == 2  # type: ignore[attr-defined]


async def test_a_body_left_unread_closes_its_connection(http: httpx.AsyncClient) -> None:
    async def handler(reader: Reader, writer: Writer) -> None:
        while True:
            await tiny.request(reader)
            writer.write(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async with Tiny(handler) as tiny:
        for _ in range(2):
            async with http.stream("POST", tiny.url, content=b"x") as response:
                assert response.status_code == 200  # closed before the body is read
        assert tiny.connections == 2


async def test_cancelling_a_request_closes_its_connection(http: httpx.AsyncClient) -> None:
    async def handler(reader: Reader, writer: Writer) -> None:
        while True:
            body = await tiny.request(reader)
            await asyncio.sleep(0.2 if body == b"slow" else 0)
            writer.write(OK_HEAD + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    async with Tiny(handler) as tiny:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(http.post(tiny.url, content=b"slow"), 0.05)
        assert (await http.post(tiny.url, content=b"fast")).content == b"fast"
        assert tiny.connections == 2  # the cancelled one's answer never reaches a later call


# --- through the client, against the emulator ---------------------------------------------


def test_the_async_client_mounts_it_for_http_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    client = AsyncOllamaClient("127.0.0.1:1", cache=None)
    http = client._new_http()
    assert isinstance(http._transport_for_url(httpx.URL("http://x/")), AsyncLoopTransport)
    assert isinstance(http._transport_for_url(httpx.URL("https://x/")), httpx.AsyncHTTPTransport)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    proxied = client._new_http()
    assert not isinstance(proxied._transport_for_url(httpx.URL("http://x/")), AsyncLoopTransport)


async def test_the_emulator_through_the_client(live: EmulatorServer) -> None:
    records = Recorder()
    async with AsyncOllamaClient(live.url, cache=None, on_record=records) as client:
        whole = await client.generate("llama3.2:1b", "hi", options={"seed": 1})
        streamed = [c async for c in await client.generate("llama3.2:1b", "hi", stream=True)]
        outcomes = await client.many(
            [lambda: client.chat("llama3.2:1b", [{"role": "user", "content": "hi"}])] * 12,
            concurrency=12,
        )
        assert whole["done"] and streamed[-1]["done"] and len(streamed) > 2
        assert all(o.ok for o in outcomes)
        transports = [http._transport_for_url(httpx.URL(live.url)) for http in client.lanes.clients]
        assert all(isinstance(t, AsyncLoopTransport) for t in transports)
        opened = sum(len(t._open) for t in transports)  # type: ignore[attr-defined]
        assert opened <= 12
    assert [r.outcome for r in records] == ["ok"] * 14


async def test_a_slow_first_token_in_a_stream_is_cut_at_the_total_limit(
    live: EmulatorServer,
) -> None:
    slow = {"X-Llmperf-Fault": "slow-first-token; seconds=1"}
    async with AsyncOllamaClient(live.url, cache=None, headers=slow) as client:
        began = time.perf_counter()
        with pytest.raises(LLMTimeoutError) as caught:
            _ = [
                c
                async for c in await client.generate("llama3.2:1b", "hi", stream=True, timeout=0.2)
            ]
        assert caught.value.phase == "total"
        assert time.perf_counter() - began < 0.9
        answer = await client.generate("llama3.2:1b", "hi", timeout=5)
        assert json.dumps(answer)


# --- the async face's own client: straight to the transport for http:// hosts -------------


def open_step(url: str, headers: dict[str, str] | None = None) -> Open:
    limits = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
    return Open("POST", httpx.URL(url + "/api/x?y=1"), b'{"a":1}', limits, headers)


async def test_send_plain_sends_what_httpx_would() -> None:
    async with echo_server() as tiny:
        own = _OwnAsyncClient()
        async with own:
            step = open_step(tiny.url, {"X-Extra": "1", "User-Agent": "mine"})
            assert own.takes_plain(step.url)
            response = await own.send_plain(step)
            await response.aread()
            assert (response.content, response.request.url) == (b'{"a":1}', step.url)
            request = own.build_request(
                "POST", step.url, content=step.content, headers=step.headers
            )
            await own.send(request)
    assert tiny.heads[0] == tiny.heads[1]
    assert b"\r\nUser-Agent: mine\r\n" in tiny.heads[0]


async def test_cookies_are_kept_as_httpx_keeps_them() -> None:
    async def handler(reader: Reader, writer: Writer) -> None:
        while True:
            body = await tiny.request(reader)
            cookie = b"Set-Cookie: lb=node7; Path=/\r\n" if len(tiny.heads) == 1 else b""
            writer.write(OK_HEAD + cookie + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    async with Tiny(handler) as tiny, _OwnAsyncClient() as own:
        await (await own.send_plain(open_step(tiny.url))).aread()
        assert own.cookies.get("lb") == "node7"
        step = open_step(tiny.url)
        assert not own.takes_plain(step.url)  # the jar has a cookie: through send, with it
        await own.send(own.build_request("POST", step.url, content=step.content))
    assert b"\r\nCookie: lb=node7\r\n" in tiny.heads[1]


async def test_a_whole_body_is_read_at_once_unless_it_needs_decoding(
    transport: AsyncLoopTransport,
) -> None:
    packed = gzip.compress(b"unpacked")

    async def handler(reader: Reader, writer: Writer) -> None:
        while True:
            body = await tiny.request(reader)
            extra = b"Content-Encoding: gzip\r\n" if body == b"gzip" else b""
            answer = packed if extra else body
            writer.write(OK_HEAD + extra + b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer))
            await writer.drain()

    async with Tiny(handler) as tiny:
        response = await transport.handle_async_request(
            httpx.Request("POST", tiny.url, content=b"plain", extensions=timeouts())
        )
        assert read_at_once(response)
        assert response.content == b"plain"
        packed_response = await transport.handle_async_request(
            httpx.Request("POST", tiny.url, content=b"gzip", extensions=timeouts())
        )
        assert not read_at_once(packed_response)
        assert await packed_response.aread() == b"unpacked"
        assert not read_at_once(httpx.Response(200, content=b"not ours"))


async def test_read_limits_hold_across_the_waits_of_a_reused_connection(
    http: httpx.AsyncClient,
) -> None:
    """One timer serves a connection's waits: a short limit before must not cut a long one."""

    async def handler(reader: Reader, writer: Writer) -> None:
        while True:
            body = await tiny.request(reader)
            await asyncio.sleep(float(body))
            writer.write(OK_HEAD + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    async with Tiny(handler) as tiny:
        fast = await http.post(tiny.url, content=b"0", extensions=timeouts(read=0.1))
        assert fast.content == b"0"
        slow = await http.post(tiny.url, content=b"0.3", extensions=timeouts(read=1.0))
        assert slow.content == b"0.3"  # the timer set for 0.1 s fired and was set again
        began = time.perf_counter()
        with pytest.raises(httpx.ReadTimeout):
            await http.post(tiny.url, content=b"0.5", extensions=timeouts(read=0.15))
        assert 0.14 < time.perf_counter() - began < 0.4
        assert (await http.post(tiny.url, content=b"0")).content == b"0"
        assert tiny.connections == 2  # the timed-out exchange spent its connection


# the connection left behind belongs to a closed loop: it can only be dropped, and Python
# warns when it is collected
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_transport_used_from_a_second_event_loop_opens_new_connections(
    live: EmulatorServer,
) -> None:
    transport = AsyncLoopTransport(LIMITS)
    url = live.url + "/api/version"

    async def version(close: bool) -> tuple[str, int]:
        request = httpx.Request("GET", url, extensions=timeouts())
        response = await transport.handle_async_request(request)
        await response.aread()
        opened = len(transport._open)
        if close:
            await transport.aclose()
        return json.loads(response.content)["version"], opened

    first, opened = own_loop.run(version(close=False))  # leaves an idle connection behind
    assert opened == 1
    assert own_loop.run(version(close=True)) == (first, 1)  # dropped, and a new one opened
    gc.collect()  # (its warning, here rather than at the end of the session)
