"""The limits of a call hold whatever the server sends: slow bytes, no newline, no end.

Every limit here is half a second; a call must end well within ``BOUND`` (a server left to
run would go on for a minute or for ever), on the limit's phase and with its limit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from client_faces import Face
from misbehaving import Misbehaving, Pause, Send

from pytest_llmperf import Limits, LLMStreamError, LLMTimeoutError

LIMIT = 0.5
BOUND = 10.0  # seconds: far above the limit, far below the server's minute

STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def line(text: str, done: bool = False) -> bytes:
    chunk = {"model": "m", "response": text, "done": done}
    return json.dumps(chunk).encode() + b"\n"


def whole_answer() -> bytes:
    body = json.dumps({"model": "m", "response": "x" * 200, "done": True}).encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    return head % len(body) + body


def byte_by_byte(data: bytes, every: float = 0.1) -> Callable[[Send, Pause], None]:
    def behaviour(send: Send, pause: Pause) -> None:
        for at in range(len(data)):
            send(data[at : at + 1])
            pause(every)

    return behaviour


def times_out(
    face: Face, url: str, *, stream: bool, limits: Limits | float = LIMIT
) -> LLMTimeoutError:
    began = time.monotonic()
    with pytest.raises(LLMTimeoutError) as caught:
        face.generate("m", "hi", stream=stream, timeout=limits)
    elapsed = time.monotonic() - began
    assert LIMIT * 0.9 <= elapsed < BOUND, elapsed
    return caught.value


@pytest.mark.parametrize("stream", [False, True])
def test_a_whole_answer_one_byte_at_a_time_ends_on_the_total(
    face: Callable[..., Face], stream: bool
) -> None:
    # 260 bytes a tenth of a second apart: 26 s, if each read could take the whole limit
    with Misbehaving(byte_by_byte(whole_answer())) as server:
        error = times_out(face(host=server.url, cache=None), server.url, stream=stream)
    assert (error.phase, error.limit) == ("total", LIMIT)


def test_headers_one_byte_at_a_time_end_on_the_first_token_limit(
    face: Callable[..., Face],
) -> None:
    limits = Limits(total=60, first_token=LIMIT, stall=60)
    with Misbehaving(byte_by_byte(STREAM_HEAD)) as server:
        error = times_out(face(host=server.url, cache=None), server.url, stream=True, limits=limits)
    assert (error.phase, error.limit) == ("first_token", LIMIT)


def test_a_first_line_that_never_ends_trips_the_first_token_limit(
    face: Callable[..., Face],
) -> None:
    def behaviour(send: Send, pause: Pause) -> None:
        send(STREAM_HEAD)
        while True:
            send(chunked(b"x"))
            pause(0.05)

    limits = Limits(total=60, first_token=LIMIT, stall=60)
    with Misbehaving(behaviour) as server:
        error = times_out(face(host=server.url, cache=None), server.url, stream=True, limits=limits)
    assert (error.phase, error.limit) == ("first_token", LIMIT)


def test_bytes_with_no_newline_after_a_chunk_trip_the_stall_limit(
    face: Callable[..., Face],
) -> None:
    def behaviour(send: Send, pause: Pause) -> None:
        send(STREAM_HEAD + chunked(line("first")))
        while True:
            send(chunked(b" "))
            pause(0.05)

    limits = Limits(total=60, first_token=60, stall=LIMIT)
    with Misbehaving(behaviour) as server:
        client = face(host=server.url, cache=None)
        error = times_out(client, server.url, stream=True, limits=limits)
    assert (error.phase, error.limit) == ("stall", LIMIT)


def test_bytes_with_no_newline_end_on_the_total(face: Callable[..., Face]) -> None:
    def behaviour(send: Send, pause: Pause) -> None:
        send(STREAM_HEAD)
        while True:
            send(chunked(b"{"))
            pause(0.05)

    with Misbehaving(behaviour) as server:
        error = times_out(face(host=server.url, cache=None), server.url, stream=True)
    assert (error.phase, error.limit) == ("total", LIMIT)


def test_an_endless_stream_ends_on_the_total(face: Callable[..., Face]) -> None:
    def behaviour(send: Send, pause: Pause) -> None:
        send(STREAM_HEAD)
        while True:
            send(chunked(line("more ")))
            pause(0.01)

    with Misbehaving(behaviour) as server:
        error = times_out(face(host=server.url, cache=None), server.url, stream=True)
    assert (error.phase, error.limit) == ("total", LIMIT)


def test_an_endless_whole_body_ends_on_the_total(face: Callable[..., Face]) -> None:
    def behaviour(send: Send, pause: Pause) -> None:
        send(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 999999999\r\n\r\n"
        )
        while True:
            send(b" " * 1024)
            pause(0.01)

    with Misbehaving(behaviour) as server:
        error = times_out(face(host=server.url, cache=None), server.url, stream=False)
    assert (error.phase, error.limit) == ("total", LIMIT)


def test_a_server_silent_after_a_few_bytes_ends_on_the_total(face: Callable[..., Face]) -> None:
    # the read limit of each wait is a minute: only the total can end the call
    def behaviour(send: Send, pause: Pause) -> None:
        send(whole_answer()[:50])
        pause(3600)

    limits = Limits(total=LIMIT, first_token=LIMIT, stall=60)
    with Misbehaving(behaviour) as server:
        error = times_out(
            face(host=server.url, cache=None), server.url, stream=False, limits=limits
        )
    assert (error.phase, error.limit) == ("total", LIMIT)


FIFTY_MB = 50 * 1024 * 1024


@pytest.mark.parametrize("stream", [False, True])
def test_a_50_mb_line_is_refused_naming_the_limit(face: Callable[..., Face], stream: bool) -> None:
    def behaviour(send: Send, pause: Pause) -> None:
        kind = b"application/x-ndjson" if stream else b"application/json"
        send(
            b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (kind, FIFTY_MB)
        )
        piece = b"x" * (1024 * 1024)
        for _ in range(50):
            send(piece)

    with Misbehaving(behaviour) as server:
        client = face(host=server.url, cache=None)
        began = time.monotonic()
        with pytest.raises(LLMStreamError) as caught:
            client.generate("m", "hi", stream=stream, timeout=60)
        assert time.monotonic() - began < BOUND
    what = "a line of the stream" if stream else "the answer"
    assert (
        f"/api/generate with m on {server.url}: {what} is longer than the limit of 16777216 "
        "bytes (max_line_bytes); Ollama's answers are one JSON object a line, far shorter. If "
        "this server's lines are meant to be that long, raise the limit: "
        "OllamaClient(max_line_bytes=N), or the llm_max_line_bytes ini option "
        "(--llm-max-line-bytes) under pytest"
    ) == str(caught.value)


def test_the_line_limit_is_the_clients_to_set(face: Callable[..., Face]) -> None:
    def behaviour(send: Send, pause: Pause) -> None:
        send(STREAM_HEAD + chunked(line("x" * 2000)) + chunked(line("", done=True)) + b"0\r\n\r\n")

    with Misbehaving(behaviour) as server:
        roomy = face(host=server.url, cache=None, max_line_bytes=4096)
        chunks = roomy.generate("m", "hi", stream=True, timeout=60)
        assert [chunk["response"] for chunk in chunks] == ["x" * 2000, ""]
        tight = face(host=server.url, cache=None, max_line_bytes=1000)
        with pytest.raises(LLMStreamError, match="longer than the limit of 1000 bytes"):
            tight.generate("m", "hi", stream=True, timeout=60)


def test_a_last_line_without_its_newline_still_counts(face: Callable[..., Face]) -> None:
    def behaviour(send: Send, pause: Pause) -> None:
        body = line("hello") + line("", done=True).rstrip(b"\n")
        send(STREAM_HEAD + chunked(body) + b"0\r\n\r\n")

    with Misbehaving(behaviour) as server:
        chunks = face(host=server.url, cache=None).generate("m", "hi", stream=True, timeout=60)
    assert [(chunk["response"], chunk["done"]) for chunk in chunks] == [
        ("hello", False),
        ("", True),
    ]
