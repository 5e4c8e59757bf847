"""Host strings, cache identity, repeatability, chunk merging and OpenAI translation."""

from __future__ import annotations

import pytest

from pytest_llmperf import ConfigurationError
from pytest_llmperf.client.protocol import (
    OpenAIStream,
    cache_identity,
    from_openai,
    merge,
    parse_host,
    repeatable,
    to_openai,
)


@pytest.mark.parametrize(
    ("given", "url"),
    [
        (None, "http://127.0.0.1:11434"),
        ("", "http://127.0.0.1:11434"),
        ("1.2.3.4", "http://1.2.3.4:11434"),
        (":56789", "http://127.0.0.1:56789"),
        ("example.com", "http://example.com:11434"),
        ("http://example.com", "http://example.com:80"),
        ("https://example.com", "https://example.com:443"),
        ("https://example.com:56789/path/", "https://example.com:56789/path"),
        ("example.com/ollama", "http://example.com:11434/ollama"),
        ("[0001:002::3]", "http://[0001:002::3]:11434"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_hosts_follow_ollama_host_semantics(given: str | None, url: str) -> None:
    assert parse_host(given) == url


@pytest.mark.parametrize(
    ("given", "complaint"),
    [("ftp://x", "scheme must be http or https"), ("x:99999", "port is not a number")],
)
def test_bad_hosts_say_what_is_wrong(given: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        parse_host(given)


def test_cache_identity_ignores_stream_and_keep_alive_only() -> None:
    base = {"model": "m", "prompt": "p", "options": {"seed": 1, "temperature": 0.2}}
    same = {**base, "stream": True, "keep_alive": "1h", "options": {"temperature": 0.2, "seed": 1}}
    assert cache_identity("/api/generate", base) == cache_identity("/api/generate", same)
    for changed in (
        {**base, "prompt": "q"},
        {**base, "system": "s"},
        {**base, "format": "json"},
        {**base, "options": {"seed": 2, "temperature": 0.2}},
        {**base, "model": "n"},
    ):
        assert cache_identity("/api/generate", changed) != cache_identity("/api/generate", base)
    assert cache_identity("/api/chat", base) != cache_identity("/api/generate", base)


@pytest.mark.parametrize(
    ("kind", "options", "expected"),
    [
        ("generate", None, False),
        ("generate", {"temperature": 0.8}, False),
        ("generate", {"temperature": 0}, True),
        ("chat", {"temperature": 1.2, "seed": 3}, True),
        ("embed", None, True),
    ],
)
def test_only_repeatable_calls_are_cacheable(kind: str, options: object, expected: bool) -> None:
    request = {"model": "m"} if options is None else {"model": "m", "options": options}
    assert repeatable(kind, request) is expected  # type: ignore[arg-type]


def test_merge_adds_up_text_tool_calls_and_keeps_the_final_statistics() -> None:
    chunks = [
        {"model": "m", "message": {"role": "assistant", "content": "Hel"}, "done": False},
        {
            "model": "m",
            "message": {
                "role": "assistant",
                "content": "lo",
                "tool_calls": [{"function": {"name": "f", "arguments": {}}}],
            },
            "done": False,
        },
        {
            "model": "m",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "eval_count": 2,
        },
    ]
    whole = merge(chunks)
    assert whole["message"]["content"] == "Hello"
    assert whole["message"]["tool_calls"] == [{"function": {"name": "f", "arguments": {}}}]
    assert (whole["done"], whole["eval_count"]) == (True, 2)
    assert (
        merge([{"response": "a", "done": False}, {"response": "b", "done": True}])["response"]
        == "ab"
    )


def test_requests_translate_to_openai() -> None:
    body = to_openai(
        "chat",
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "options": {"num_predict": 5, "temperature": 0, "stop": ["x"]},
            "format": "json",
        },
        stream=True,
    )
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0,
        "stop": ["x"],
        "max_tokens": 5,
        "response_format": {"type": "json_object"},
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert (
        to_openai("generate", {"model": "m", "prompt": "p", "system": "s"}, False)["prompt"]
        == "s\n\np"
    )


def test_openai_answers_translate_to_ollama_shape() -> None:
    answer = from_openai(
        "chat",
        {
            "model": "m",
            "choices": [
                {
                    "message": {
                        "content": None,
                        "tool_calls": [{"function": {"name": "f", "arguments": '{"a": 1}'}}],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4},
        },
    )
    assert answer["message"]["tool_calls"] == [{"function": {"name": "f", "arguments": {"a": 1}}}]
    assert (answer["done_reason"], answer["prompt_eval_count"], answer["eval_count"]) == (
        "tool_calls",
        3,
        4,
    )


def test_an_openai_stream_ends_with_a_done_chunk_carrying_the_usage() -> None:
    stream = OpenAIStream("generate", "m")
    lines = [
        'data: {"choices":[{"text":"Hi","finish_reason":null}]}',
        "",
        'data: {"choices":[{"text":"!","finish_reason":"length"}]}',
        'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}',
        "data: [DONE]",
    ]
    chunks = [c for c in map(stream.feed, lines) if c is not None]
    assert [c["response"] for c in chunks] == ["Hi", "!", ""]
    assert chunks[-1]["done"] and chunks[-1]["done_reason"] == "length"
    assert chunks[-1]["eval_count"] == 2
    assert stream.feed('data: {"error":{"message":"boom"}}') == {"error": "boom"}


def test_tool_call_arguments_streamed_in_pieces_are_joined() -> None:
    stream = OpenAIStream("chat", "m")
    pieces = [
        '{"index":0,"function":{"name":"get_weather","arguments":""}}',
        '{"index":0,"function":{"arguments":"{\\"city\\": "}}',
        '{"index":0,"function":{"arguments":"\\"Paris\\"}"}}',
    ]
    for piece in pieces:
        stream.feed('data: {"choices":[{"delta":{"tool_calls":[' + piece + "]}}]}")
    final = stream.feed("data: [DONE]")
    assert final is not None
    assert final["message"]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ]


def test_an_event_that_is_not_json_is_an_error_chunk() -> None:
    assert OpenAIStream("chat", "m").feed("data: {not json") == {
        "error": "an event of the stream is not JSON: '{not json'"
    }
