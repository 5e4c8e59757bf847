"""What a server sends that is not a good answer: each HTTP error, error and non-JSON lines,
lines cut short with and without chunked encoding, a stream without its end, a status line
that is not HTTP, a stall, and a 50 MB line. Real HTTP on loopback from a raw socket server;
both client faces; streamed and whole answers. Each is one of our documented errors with a
message that says what happened and where."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from client_faces import Face
from misbehaving import HangUp, Misbehaving, Pause, Send

from pytest_llmperf import (
    ConfigurationError,
    Limits,
    LLMConnectError,
    LLMError,
    LLMServerError,
    LLMStreamError,
    LLMTimeoutError,
    ModelNotFoundError,
)

BOUND = 20.0  # seconds: a call here ends far sooner, or it hung


def answer(status: int, body: bytes, kind: bytes = b"application/json") -> bytes:
    head = b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
    return head % (status, kind, len(body)) + body


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def line(text: str, done: bool = False) -> bytes:
    return json.dumps({"model": "m", "response": text, "done": done}).encode() + b"\n"


def sends(data: bytes, *, hang_up: bool = False) -> Callable[[Send, Pause], None]:
    def behaviour(send: Send, pause: Pause) -> None:
        send(data)
        if hang_up:
            raise HangUp

    return behaviour


def call(face: Callable[..., Face], url: str, stream: bool) -> LLMError:
    client = face(host=url, cache=None, retries=0)
    began = time.monotonic()
    with pytest.raises(LLMError) as caught:
        client.generate("m", "hi", stream=stream, timeout=BOUND * 2)
    assert time.monotonic() - began < BOUND
    return caught.value


def label(url: str) -> str:
    return f"/api/generate with m on {url}"


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize(
    ("status", "text", "kind", "says"),
    [
        (400, "invalid options", LLMServerError, "see the server's log for the cause"),
        (500, "CUDA error", LLMServerError, "see the server's log for the cause"),
        (503, "server busy", LLMServerError, "the server's queue is full; retry later or spread"),
    ],
)
def test_an_http_error_keeps_its_status_and_the_servers_message(
    face: Callable[..., Face], stream: bool, status: int, text: str, kind: type, says: str
) -> None:
    body = json.dumps({"error": text}).encode()
    with Misbehaving(sends(answer(status, body))) as server:
        error = call(face, server.url, stream)
    assert type(error) is kind
    assert isinstance(error, LLMServerError) and error.status_code == status
    assert str(error).startswith(
        f"{label(server.url)}: the server answered HTTP {status}: {text}; {says}"
    )


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_404_says_how_to_pull_the_model(face: Callable[..., Face], stream: bool) -> None:
    body = b'{"error": "model \\"m\\" not found, try pulling it first"}'
    with Misbehaving(sends(answer(404, body))) as server:
        error = call(face, server.url, stream)
    assert isinstance(error, ModelNotFoundError)
    assert str(error) == (
        f"model 'm' is not on the server at {server.url} (model \"m\" not found, try pulling it "
        "first): run `ollama pull m` there, or pick a model that `ollama list` shows"
    )


def test_an_error_page_that_is_not_json_is_quoted(face: Callable[..., Face]) -> None:
    with Misbehaving(sends(answer(500, b"<html>oops</html>", b"text/html"))) as server:
        error = call(face, server.url, stream=False)
    assert str(error).startswith(f"{label(server.url)}: the server answered HTTP 500: <html>oops")


def test_an_error_line_mid_stream(face: Callable[..., Face]) -> None:
    body = (
        STREAM_HEAD + chunked(line("a")) + chunked(b'{"error": "out of memory"}\n') + b"0\r\n\r\n"
    )
    with Misbehaving(sends(body)) as server:
        error = call(face, server.url, stream=True)
    assert isinstance(error, LLMStreamError)
    assert str(error) == (
        f"{label(server.url)}: the server reported an error in the middle of the stream after "
        "1 chunks: out of memory"
    )


@pytest.mark.parametrize(
    ("body", "stream", "says"),
    [
        (
            STREAM_HEAD + chunked(line("a")) + chunked(b"<html>\n") + b"0\r\n\r\n",
            True,
            "a line of the stream is not a JSON object (b'<html>'); is this an Ollama server? "
            "(for an OpenAI-compatible one use api='openai')",
        ),
        (
            answer(200, b"hello"),
            False,
            "the answer is not JSON (b'hello'); is this an Ollama server? (for an "
            "OpenAI-compatible one use api='openai')",
        ),
        (answer(200, b"[1,2]"), False, "expected a JSON object, got b'[1,2]'"),
    ],
    ids=["stream-line", "whole-text", "whole-list"],
)
def test_a_non_json_line_or_answer(
    face: Callable[..., Face], body: bytes, stream: bool, says: str
) -> None:
    with Misbehaving(sends(body)) as server:
        error = call(face, server.url, stream)
    assert isinstance(error, LLMStreamError)
    assert str(error) == f"{label(server.url)}: {says}"


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize(
    "body",
    [
        STREAM_HEAD + chunked(line("a")) + b"64\r\n" + line("bbbbb")[:10],
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nContent-Length: 500\r\n\r\n"
        + line("a")
        + line("b")[:10],
    ],
    ids=["chunked", "content-length"],
)
def test_a_line_cut_by_the_server_hanging_up(
    face: Callable[..., Face], body: bytes, stream: bool
) -> None:
    with Misbehaving(sends(body, hang_up=True)) as server:
        error = call(face, server.url, stream)
    assert isinstance(error, LLMConnectError | LLMStreamError), repr(error)
    assert str(error).startswith(f"{label(server.url)}: ")
    assert "broke" in str(error) or "cut it short" in str(error), str(error)


def test_a_stream_that_ends_without_its_done_line(face: Callable[..., Face]) -> None:
    with Misbehaving(sends(STREAM_HEAD + chunked(line("a")) + b"0\r\n\r\n")) as server:
        error = call(face, server.url, stream=True)
    assert isinstance(error, LLMStreamError)
    assert str(error) == (
        f"{label(server.url)}: the stream ended after 1 chunks without its final 'done' chunk; "
        "the server or the connection cut it short"
    )


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_a_status_line_that_is_not_http(face: Callable[..., Face], stream: bool) -> None:
    with Misbehaving(sends(b"NOT HTTP AT ALL\r\n\r\n", hang_up=True)) as server:
        error = call(face, server.url, stream)
    assert isinstance(error, LLMConnectError)
    assert str(error).startswith(
        f"{label(server.url)}: the connection broke before the answer was complete ("
    )
    assert "NOT HTTP AT ALL" in str(error)


def test_a_stall_after_the_first_line_ends_on_the_stall_limit(face: Callable[..., Face]) -> None:
    def behaviour(send: Send, pause: Pause) -> None:
        send(STREAM_HEAD + chunked(line("a")))
        pause(60)

    with Misbehaving(behaviour) as server:
        client = face(host=server.url, cache=None, retries=0)
        with pytest.raises(LLMTimeoutError) as caught:
            client.generate("m", "hi", stream=True, timeout=Limits(30, 30, stall=0.5))
    assert (caught.value.phase, caught.value.limit) == ("stall", 0.5)


@pytest.mark.parametrize("timeout", [{"stall": 0.5}, "5", True, [5]])
def test_a_timeout_of_the_wrong_type_is_refused_before_any_request(
    face: Callable[..., Face], timeout: object
) -> None:
    client = face(host="http://127.0.0.1:9", cache=None, retries=0)
    with pytest.raises(ConfigurationError) as caught:
        client.generate("m", "hi", timeout=timeout)
    assert str(caught.value) == (
        f"timeout={timeout!r}: give a number of seconds above 0 (the total limit of every "
        "phase) or Limits(total=..., first_token=..., stall=...)"
    )


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
def test_a_timeout_of_the_wrong_value_is_refused(face: Callable[..., Face], timeout: float) -> None:
    client = face(host="http://127.0.0.1:9", cache=None, retries=0)
    with pytest.raises(
        ConfigurationError, match=r"^timeout limit total=.* must be a number of seconds above 0$"
    ):
        client.generate("m", "hi", timeout=timeout)


FIFTY_MB = 50 * 1024 * 1024


def test_a_50_mb_line_fails_the_test_naming_the_setting(pytester: pytest.Pytester) -> None:
    def behaviour(send: Send, pause: Pause) -> None:
        send(STREAM_HEAD + b"%x\r\n" % FIFTY_MB)
        piece = b"x" * (1024 * 1024)
        for _ in range(50):
            send(piece)

    with Misbehaving(behaviour) as server:
        pytester.makeini("[pytest]\nllm_max_line_bytes = 1MiB\n")
        pytester.makepyfile(
            """
            def test_reads(ollama_client):
                list(ollama_client.generate(model="m", prompt="hi", stream=True))
            """
        )
        result = pytester.runpytest("-p", "no:cacheprovider", "--llm-host", server.url)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*LLMStreamError: {label(server.url)}: a line of the stream is longer than the "
            "limit of 1048576 bytes (max_line_bytes)*"
        ]
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -1}, "retries=-1: give a whole number >= 0"),
        ({"retries": "2"}, "retries='2': give a whole number >= 0"),
        ({"concurrency": 0}, "concurrency=0: give a whole number >= 1"),
        ({"cooldown_s": float("nan")}, "cooldown_s=nan: give a number of seconds >= 0"),
        ({"max_line_bytes": "16MiB"}, "max_line_bytes='16MiB': give a whole number of bytes"),
        ({"api": "vllm"}, "unknown api 'vllm': use 'ollama' or 'openai'"),
        ({"host": 11434}, "host=11434: give a host string (as http://127.0.0.1:11434), a list"),
        ({"host": "ftp://h"}, "cannot use host 'ftp://h': the scheme must be http or https"),
    ],
    ids=[
        "retries",
        "retries-text",
        "concurrency",
        "cooldown",
        "line-limit",
        "api",
        "host",
        "scheme",
    ],
)
def test_a_client_option_of_the_wrong_type_or_value_is_refused(
    face: Callable[..., Face], options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        face(**{"host": "http://127.0.0.1:9", **options})
    assert str(caught.value).startswith(message)
