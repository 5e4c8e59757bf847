"""The watched body: httpx's own body loop taken over, in httpx's exception mapping.

A tiny server on loopback sends a streamed answer's head and first line, then stalls, so a
read timeout comes from the socket in the middle of the body, where the taken-over loop runs.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from types import ModuleType

import httpx
import httpx2
import pytest

from pytest_llmperf.observe.measure import BATCH, Exchange, Routes, Sink
from pytest_llmperf.observe.point import start_observing
from pytest_llmperf.observe.records import CallRecord
from pytest_llmperf.observe.streams import _Types, watched

LINE = b'{"model":"m","created_at":"t","response":"Hi","done":false}\n'
DONE = (
    b'{"model":"m","created_at":"t","response":"","done":true,"total_duration":9,'
    b'"prompt_eval_count":1,"prompt_eval_duration":2,"eval_count":1,"eval_duration":3}\n'
)


class Collect:
    def __init__(self) -> None:
        self.routes = Routes()
        self.records: list[CallRecord] = []

    def sink(self) -> Sink:
        return self.records.append


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, bool]]]:
    """``(url, mode)``: answers each request with one line, then the end (``mode["stall"]``
    False) or nothing more until the client goes."""
    listener = socket.create_server(("127.0.0.1", 0))
    mode = {"stall": True}
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                head = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n"
                conn.sendall(head + b"transfer-encoding: chunked\r\n\r\n" + chunk(LINE))
                if mode["stall"]:
                    conn.settimeout(0.1)
                    while not stop.is_set():  # until the client closes, or the test ends
                        try:
                            if not conn.recv(1):
                                break
                        except TimeoutError:
                            continue
                else:
                    conn.sendall(chunk(DONE) + b"0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", mode
    stop.set()
    thread.join(5)
    listener.close()


BODY = {"model": "m", "prompt": "hi"}


@pytest.mark.parametrize("hx", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_the_body_loop_is_taken_over_for_httpx_own_bodies(hx: ModuleType) -> None:
    types = _Types(hx)
    default = hx._transports.default  # type: ignore[attr-defined]
    assert types.own_sync is default.ResponseStream
    assert types.own_async is default.AsyncResponseStream
    assert types.mapping is default.map_httpcore_exceptions


@pytest.mark.parametrize("hx", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_a_read_timeout_in_a_taken_over_body_is_httpx_own_and_a_timeout(
    hx: ModuleType, server: tuple[str, dict[str, bool]]
) -> None:
    url, _ = server
    collect = Collect()
    stop = start_observing(collect)
    try:
        with (
            hx.Client(timeout=hx.Timeout(5.0, read=0.3)) as client,
            client.stream("POST", url + "/api/generate", json=BODY) as response,
        ):
            watched = response.stream._stream  # (inside the client's BoundSyncStream)
            assert watched.source is watched.inner._httpcore_stream  # the loop taken over
            with pytest.raises(hx.ReadTimeout):  # mapped, as without the plugin
                for _ in response.iter_lines():
                    pass
    finally:
        stop()
    (record,) = collect.records
    assert record.outcome == "timeout"
    assert record.error is not None and record.error.startswith("ReadTimeout")
    assert record.ttft_s is not None  # the line before the stall was seen


def test_an_async_read_timeout_in_a_taken_over_body_is_httpx_own_and_a_timeout(
    server: tuple[str, dict[str, bool]],
) -> None:
    url, _ = server
    collect = Collect()

    async def call() -> None:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.3)) as client,
            client.stream("POST", url + "/api/generate", json=BODY) as response,
        ):
            watched = response.stream._stream
            assert watched.source is watched.inner._httpcore_stream
            with pytest.raises(httpx.ReadTimeout):
                async for _ in response.aiter_lines():
                    pass

    stop = start_observing(collect)
    try:
        asyncio.run(call())
    finally:
        stop()
    (record,) = collect.records
    assert record.outcome == "timeout"


@pytest.mark.parametrize("hx", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_a_taken_over_body_read_to_its_end_gives_its_record(
    hx: ModuleType, server: tuple[str, dict[str, bool]]
) -> None:
    url, mode = server
    mode["stall"] = False
    collect = Collect()
    stop = start_observing(collect)
    try:
        with (
            hx.Client() as client,
            client.stream("POST", url + "/api/generate", json=BODY) as response,
        ):
            lines = list(response.iter_lines())
    finally:
        stop()
    assert len(lines) == 2
    (record,) = collect.records
    assert (record.outcome, record.output_tokens, record.server.eval_count) == ("ok", 1, 1)


def test_a_body_of_another_shape_is_looped_over_as_it_is() -> None:
    got: list[CallRecord] = []
    match = Routes().match("/api/generate")
    assert match is not None
    exchange = Exchange(match, "http://127.0.0.1:9", b'{"model":"m"}', got.append, "httpx")
    inner = httpx.ByteStream(LINE + DONE)
    stream = watched(httpx.Response(200, stream=inner), exchange, httpx).stream
    assert stream.source is inner
    assert list(stream) == [LINE + DONE]
    (record,) = got
    assert (record.outcome, record.output_tokens) == ("ok", 1)


class Parts(httpx.SyncByteStream):
    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts

    def __iter__(self) -> Iterator[bytes]:
        yield from self.parts


@pytest.mark.parametrize("lines", [BATCH - 1, BATCH, 2 * BATCH + 5])
def test_a_long_stream_is_read_a_batch_at_a_time_and_loses_no_chunk(lines: int) -> None:
    got: list[CallRecord] = []
    match = Routes().match("/api/generate")
    assert match is not None
    exchange = Exchange(match, "http://127.0.0.1:9", b'{"model":"m"}', got.append, "httpx")
    parts = [LINE] * lines + [DONE]
    stream = watched(httpx.Response(200, stream=Parts(parts)), exchange, httpx).stream
    seen = 0
    for part in stream:
        seen += 1
        assert len(exchange.parts) <= BATCH  # read every BATCH chunks, not kept to the end
        assert part in (LINE, DONE)
    assert seen == lines + 1
    (record,) = got
    assert record.outcome == "ok"
    assert record.output_tokens == 1  # the server's eval_count
    assert record.gaps is not None and record.gaps.count == lines - 1  # every text chunk
