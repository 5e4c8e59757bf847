"""Fuzzing what a server sends: the NDJSON stream reader, the SSE (OpenAI) event parser and
the host string parser raise only our documented errors, whatever the bytes.

The bodies reach the real client through httpx's MockTransport (no socket, so thousands of
examples take seconds); everything from the transport up is the code a live call runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pytest_llmperf import ConfigurationError, LLMPerfError, OllamaClient
from pytest_llmperf.client.protocol import OpenAIStream, parse_host

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    [
        "response",
        "message",
        "done",
        "done_reason",
        "eval_count",
        "eval_duration",
        "total_duration",
        "prompt_eval_count",
        "load_duration",
        "error",
        "content",
        "tool_calls",
        "choices",
        "delta",
        "usage",
        "text",
        "finish_reason",
        "model",
        "embeddings",
    ]
)
# Objects whose keys are the fields the client reads, with values of any shape: the
# likeliest way to find a field read without a check.
CHUNK = st.dictionaries(FIELDS, JSON | st.dictionaries(FIELDS, JSON, max_size=4), max_size=6)
LINE = (
    CHUNK.map(lambda c: json.dumps(c).encode())
    | JSON.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=60)
)
NDJSON = st.lists(LINE, max_size=6).map(lambda lines: b"\n".join(lines))
SSE = st.lists(
    st.one_of(
        LINE.map(lambda data: b"data: " + data),
        st.just(b"data: [DONE]"),
        st.binary(max_size=30),
    ),
    max_size=6,
).map(lambda lines: b"\n\n".join(lines))


class Server:
    """A MockTransport handler that answers each request with ``body``."""

    body = b""
    kind = "application/x-ndjson"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=self.body, headers={"content-type": self.kind})


@pytest.fixture(scope="module")
def clients() -> Iterator[tuple[Server, dict[str, OllamaClient]]]:
    server = Server()
    made = {
        api: OllamaClient(
            host="http://fuzz.invalid:1",
            api=api,  # type: ignore[arg-type]
            http=httpx.Client(transport=httpx.MockTransport(server)),
            cache=None,
            retries=0,
        )
        for api in ("ollama", "openai")
    }
    yield server, made
    for client in made.values():
        client.close()


def answer(client: OllamaClient, stream: bool, chat: bool) -> Any:
    if chat:
        result = client.chat("m", [{"role": "user", "content": "hi"}], stream=stream, timeout=5)
    else:
        result = client.generate("m", "hi", stream=stream, timeout=5)
    return list(result) if stream else result


@given(body=NDJSON, stream=st.booleans(), chat=st.booleans())
@example(body=b'{"message": "hi", "done": false}\n{"done": true}', stream=True, chat=True)
@example(body=b'{"done": true, "eval_duration": "x"}', stream=False, chat=False)
def test_an_ndjson_body_gives_an_answer_or_our_error(
    clients: tuple[Server, dict[str, OllamaClient]], body: bytes, stream: bool, chat: bool
) -> None:
    server, made = clients
    server.body = body
    try:
        result = answer(made["ollama"], stream, chat)
    except LLMPerfError:
        return
    assert isinstance(result, list) if stream else isinstance(result, dict)


@given(body=SSE | NDJSON, stream=st.booleans(), chat=st.booleans())
@example(body=b'data: {"choices": [1]}\n\ndata: [DONE]', stream=True, chat=False)
@example(body=b'{"choices": "x"}', stream=False, chat=False)
def test_an_openai_body_gives_an_answer_or_our_error(
    clients: tuple[Server, dict[str, OllamaClient]], body: bytes, stream: bool, chat: bool
) -> None:
    server, made = clients
    server.body = body
    server.kind = "text/event-stream" if stream else "application/json"
    try:
        result = answer(made["openai"], stream, chat)
    except LLMPerfError:
        return
    assert isinstance(result, list) if stream else isinstance(result, dict)


@given(line=st.text(max_size=200) | LINE.map(lambda d: "data: " + d.decode("utf-8", "replace")))
def test_an_sse_line_gives_a_chunk_nothing_or_an_error_chunk(line: str) -> None:
    for kind in ("generate", "chat"):
        out = OpenAIStream(kind, "m").feed(line)  # type: ignore[arg-type]
        assert out is None or isinstance(out, dict)


HOSTISH = st.lists(
    st.sampled_from([*"htps:/[]@.0123456789abcxyz-_%?#~ \t\n", "::1", "://", "http", "https"]),
    max_size=20,
).map("".join)


@given(text=st.text(max_size=60) | HOSTISH)
@example(text="http://[::1")
@example(text="http://h:99999")
@example(text="HTTP:://")
def test_a_host_string_is_a_url_or_a_configuration_error(text: str) -> None:
    try:
        url = parse_host(text)
    except ConfigurationError:
        return
    assert httpx.URL(url).scheme in ("http", "https")
