"""The client against the emulator on a real loopback port, through both faces."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import pytest
from client_faces import Face

from pytest_llmperf import (
    AdaptiveTimeouts,
    EmulatorServer,
    Limits,
    LLMConnectError,
    LLMServerError,
    LLMStreamError,
    LLMTimeoutError,
    ModelNotFoundError,
    ResponseCache,
)
from pytest_llmperf.client.timeouts import TIER_LIMITS
from pytest_llmperf.emulator import Catalogue

SEEDED = {"seed": 7}
HELLO = [{"role": "user", "content": "hello"}]


def served(server: EmulatorServer) -> int:
    return server.app.engine.requests_served


def test_tier_picks_the_tier_model(face: Callable[..., Face], live: EmulatorServer) -> None:
    client = face(host=live.url)
    answer = client.generate(tier="balanced", prompt="hi")
    assert answer["model"] == answer.model == "llama3.2:3b"
    [record] = client.records
    assert (record.tier, record.model, record.host) == ("balanced", "llama3.2:3b", live.url)
    assert [m["name"] for m in client.ps()["models"]] == ["llama3.2:3b"]


def test_a_repeated_call_is_a_cache_hit_with_no_request(
    face: Callable[..., Face], live: EmulatorServer
) -> None:
    client = face(host=live.url, cache=ResponseCache())
    first = client.chat(tier="fast", messages=HELLO, options=SEEDED)
    before = served(live)
    second = client.chat(tier="fast", messages=HELLO, options=SEEDED)
    assert served(live) == before
    assert second == first
    assert [r.cache for r in client.records] == ["miss", "hit-memory"]


def test_a_repeated_stream_is_served_back_as_the_same_stream(
    face: Callable[..., Face], live: EmulatorServer
) -> None:
    client = face(host=live.url, cache=ResponseCache())
    first = client.generate(tier="fast", prompt="a story", options=SEEDED, stream=True)
    before = served(live)
    second = client.generate(tier="fast", prompt="a story", options=SEEDED, stream=True)
    assert served(live) == before
    assert len(first) > 3
    assert second == first
    assert client.records[-1].cache == "hit-memory"
    assert client.records[-1].output_tokens == client.records[0].output_tokens


def test_stream_and_keep_alive_do_not_change_the_key(
    face: Callable[..., Face], live: EmulatorServer
) -> None:
    client = face(host=live.url, cache=ResponseCache())
    streamed = client.generate(tier="fast", prompt="x", options=SEEDED, stream=True)
    whole = client.generate(tier="fast", prompt="x", options=SEEDED, keep_alive="1h")
    assert whole["response"] == "".join(chunk["response"] for chunk in streamed)
    assert whole["eval_count"] == streamed[-1]["eval_count"]
    assert [r.cache for r in client.records] == ["miss", "hit-memory"]


def test_unrepeatable_calls_are_not_cached_unless_asked(
    face: Callable[..., Face], live: EmulatorServer
) -> None:
    client = face(host=live.url, cache=ResponseCache())
    for _ in range(2):
        client.generate(tier="fast", prompt="x")
    client.generate(tier="fast", prompt="y", cache=True)
    client.generate(tier="fast", prompt="y", cache=True)
    client.generate(tier="fast", prompt="z", options={"temperature": 0})
    client.generate(tier="fast", prompt="z", options={"temperature": 0}, cache=False)
    assert [r.cache for r in client.records] == [
        "bypass",
        "bypass",
        "miss",
        "hit-memory",
        "miss",
        "bypass",
    ]


def test_every_call_is_recorded_with_the_server_statistics(
    face: Callable[..., Face], live: EmulatorServer
) -> None:
    client = face(host=live.url)
    chunks = client.generate("llama3.2:1b", "tell me", stream=True, options={"num_predict": 12})
    [record] = client.records
    final = chunks[-1]
    assert record.outcome == "ok"
    assert record.route == "/api/generate"
    assert record.stream
    assert record.output_tokens == final["eval_count"] == 12
    assert record.server.eval_count == 12
    assert record.server.load_s == pytest.approx(final["load_duration"] / 1e9)
    assert record.gaps is not None and record.gaps.count == 11
    assert 0 < record.ttft_s < record.total_s
    assert record.tokens_per_s == pytest.approx(final["eval_count"] / final["eval_duration"] * 1e9)
    assert record.limits == TIER_LIMITS["fast"]
    assert record.to_dict()["cache_hit"] is False


def test_openai_mode_answers_in_ollama_shape(
    face: Callable[..., Face], live: EmulatorServer
) -> None:
    client = face(host=live.url, api="openai")
    whole = client.chat("llama3.2:1b", HELLO, options={"num_predict": 5})
    streamed = client.chat("llama3.2:1b", HELLO, options={"num_predict": 5}, stream=True)
    completion = client.generate("llama3.2:1b", "hi", options={"num_predict": 5})
    embedded = client.embed("llama3.2:1b", ["a", "b"])
    assert whole["message"]["content"] == "".join(c["message"]["content"] for c in streamed)
    assert streamed[-1]["done"] and streamed[-1]["eval_count"] == 5
    assert whole["eval_count"] == completion["eval_count"] == 5
    assert len(embedded["embeddings"]) == 2
    assert [m["name"] for m in client.list()["models"]][:1] == ["llama3.2:1b"]
    assert [r.route for r in client.records][:3] == [
        "/v1/chat/completions",
        "/v1/chat/completions",
        "/v1/completions",
    ]


# --- errors -------------------------------------------------------------------------------


def test_nobody_listening_names_the_address_and_the_ways_out(face: Callable[..., Face]) -> None:
    client = face(host="127.0.0.1:9", retries=0)
    with pytest.raises(LLMConnectError) as caught:
        client.generate("llama3.2:1b", "hi")
    message = str(caught.value)
    assert "http://127.0.0.1:9" in message
    for way_out in ("ollama serve", "llmperf serve", "cassettes"):
        assert way_out in message
    assert client.records[0].outcome == "error"


def test_an_unknown_model_says_how_to_pull_it(
    face: Callable[..., Face], live: EmulatorServer
) -> None:
    client = face(host=live.url)
    with pytest.raises(ModelNotFoundError, match=r"ollama pull mistral:7b"):
        client.chat("mistral:7b", HELLO)


def test_a_server_error_keeps_its_status(face: Callable[..., Face], live: EmulatorServer) -> None:
    client = face(host=live.url, headers={"X-Llmperf-Fault": "status=500"})
    with pytest.raises(LLMServerError) as caught:
        client.generate("llama3.2:1b", "hi")
    assert caught.value.status_code == 500
    assert "HTTP 500" in str(caught.value)


def test_an_error_line_mid_stream_fails_the_call(
    face: Callable[..., Face], live: EmulatorServer
) -> None:
    client = face(
        host=live.url, headers={"X-Llmperf-Fault": "error-line; after=3; message=CUDA error"}
    )
    with pytest.raises(LLMStreamError, match=r"after 3 chunks: CUDA error"):
        client.generate("llama3.2:1b", "hi", stream=True)
    assert client.records[0].outcome == "error"


def test_a_connection_cut_mid_stream_is_not_retried(
    face: Callable[..., Face], live: EmulatorServer
) -> None:
    client = face(host=live.url, headers={"X-Llmperf-Fault": "drop; after=2"})
    with pytest.raises(LLMStreamError, match="broke in the middle of the stream"):
        client.generate("llama3.2:1b", "hi", stream=True)
    assert client.records[0].retries == 0


# --- timeouts and fallback ------------------------------------------------------------------


def test_a_stall_mid_stream_trips_the_stall_limit_not_the_total(
    face: Callable[..., Face], live: EmulatorServer
) -> None:
    stall = 0.3
    limits = Limits(total=30, first_token=30, stall=stall)
    client = face(host=live.url, headers={"X-Llmperf-Fault": "stall; after=3; seconds=5"})
    began = time.perf_counter()
    with pytest.raises(LLMTimeoutError) as caught:
        client.generate("llama3.2:1b", "hi", stream=True, timeout=limits)
    waited = time.perf_counter() - began
    assert caught.value.phase == "stall"
    assert caught.value.limit == stall
    assert "stalled" in str(caught.value)
    assert stall <= waited < stall + 2.0
    assert client.records[-1].timeout_phase == "stall"


def scaled(limits: Limits, factor: float) -> Limits:
    return Limits(
        total=limits.total * factor,
        first_token=limits.first_token * factor,
        stall=limits.stall * factor,
        connect=limits.connect,
    )


@pytest.fixture
def cold(serve: Callable[..., EmulatorServer], catalogue: Catalogue) -> EmulatorServer:
    """The shipped proportions at 1/20 of their delays, all models unloaded."""
    return serve(catalogue)


FAST_AT_SCALE = scaled(TIER_LIMITS["fast"], 0.05)  # the catalogue runs at 0.05


def test_a_cold_large_model_times_out_under_the_fast_tier_limits(
    face: Callable[..., Face], cold: EmulatorServer
) -> None:
    client = face(host=cold.url, timeouts=AdaptiveTimeouts(tiers={"complex": FAST_AT_SCALE}))
    with pytest.raises(LLMTimeoutError) as caught:
        client.generate(tier="complex", prompt="explain", stream=True)
    assert caught.value.phase == "first_token"
    assert "no first token within the first_token limit" in str(caught.value)
    assert "llama3:8b" in str(caught.value)
    assert client.records[0].outcome == "timeout"


def test_fallback_answers_a_timed_out_call_on_the_next_faster_tier(
    face: Callable[..., Face], cold: EmulatorServer
) -> None:
    timeouts = AdaptiveTimeouts(tiers={"complex": FAST_AT_SCALE, "balanced": FAST_AT_SCALE})
    client = face(host=cold.url, timeouts=timeouts, fallback=True)
    chunks = client.generate(tier="complex", prompt="explain", stream=True)
    assert {chunk["model"] for chunk in chunks} == {"llama3.2:3b"}
    [record] = client.records
    assert (record.outcome, record.tier, record.fallback_from) == ("ok", "balanced", ("complex",))


# --- hosts ------------------------------------------------------------------------------------


def test_a_refused_host_is_retried_on_another(
    face: Callable[..., Face], live: EmulatorServer
) -> None:
    client = face(host=["127.0.0.1:9", live.url])
    answers = [client.generate("llama3.2:1b", str(i)) for i in range(4)]
    assert all(answer["done"] for answer in answers)
    assert sum(record.retries for record in client.records) == 1
    assert {record.host for record in client.records} == {live.url}


def test_503_is_retried_with_backoff(face: Callable[..., Face], live: EmulatorServer) -> None:
    client = face(host=live.url, headers={"X-Llmperf-Fault": "status=503"}, retries=2)
    with pytest.raises(LLMServerError) as caught:
        client.generate("llama3.2:1b", "hi")
    assert caught.value.status_code == 503
    assert client.records[0].retries == 2


def test_the_stall_limit_starts_after_the_first_token(
    face: Callable[..., Face], live: EmulatorServer
) -> None:
    # a first token 0.5 s late is fine under first_token=5 though stall=0.2 ...
    slow_start = face(host=live.url, headers={"X-Llmperf-Fault": "slow-first-token; seconds=0.5"})
    limits = Limits(total=10, first_token=5, stall=0.2)
    chunks = slow_start.generate("llama3.2:1b", "hi", stream=True, timeout=limits)
    assert chunks[-1]["done"]
    assert slow_start.records[0].ttft_s >= 0.5
    # ... and is a first_token timeout under first_token=0.2
    with pytest.raises(LLMTimeoutError) as caught:
        slow_start.generate(
            "llama3.2:1b", "hi", stream=True, timeout=replace(limits, first_token=0.2)
        )
    assert (caught.value.phase, caught.value.limit) == ("first_token", 0.2)


def test_a_call_that_runs_past_its_total_fails_on_the_total(
    face: Callable[..., Face], live: EmulatorServer
) -> None:
    slow = face(
        host=live.url,
        headers={"X-Llmperf-Fault": "stall; after=2; seconds=0.15, stall; after=4; seconds=0.15"},
    )
    limits = Limits(total=0.25, first_token=5, stall=5)
    with pytest.raises(LLMTimeoutError) as caught:
        slow.generate("llama3.2:1b", "hi", stream=True, timeout=limits)
    assert caught.value.phase == "total"
    assert "the call ran past the total limit of 0.25 s" in str(caught.value)
