"""Functionality: what applications ask of the fast tier's model, through our client."""

from __future__ import annotations

import json

import pytest

from pytest_llmperf import OllamaClient
from pytest_llmperf.validate.suite.conftest import WEATHER_TOOL, Measured, Target

OPTIONS = {"num_predict": 16, "seed": 7, "temperature": 0}
# Each scenario within the fast tier's default total limit (10 s), in the target's time.
pytestmark = pytest.mark.scenario_budget(total=10.0)


@pytest.fixture(autouse=True)
def _fast_tier(target: Target) -> None:
    target.need("fast")


def test_generate(ollama_client: OllamaClient, measured: Measured) -> None:
    """Generate completes a prompt"""
    answer = ollama_client.generate(tier="fast", prompt="Once upon a time", options=OPTIONS)
    assert answer.done and answer.response.strip(), f"an empty answer: {dict(answer)}"
    measured.record(output_tokens=answer.get("eval_count"))


def test_chat(ollama_client: OllamaClient) -> None:
    """Chat answers a conversation"""
    messages = [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": "Tell me a very short story."},
    ]
    answer = ollama_client.chat(tier="fast", messages=messages, options=OPTIONS)
    assert answer.message["role"] == "assistant"
    assert answer.message["content"].strip(), f"an empty answer: {dict(answer)}"


def test_streaming(ollama_client: OllamaClient, measured: Measured) -> None:
    """Streaming gives the answer chunk by chunk"""
    chunks = list(
        ollama_client.generate(
            tier="fast", prompt="Once upon a time", options={**OPTIONS, "seed": 8}, stream=True
        )
    )
    assert len(chunks) > 2, f"{len(chunks)} chunks: the answer did not stream"
    assert chunks[-1].done and not any(c.done for c in chunks[:-1])
    measured.record(chunks=len(chunks))


def test_embeddings(ollama_client: OllamaClient, measured: Measured) -> None:
    """Embeddings give one vector per input, all of one length"""
    answer = ollama_client.embed(tier="fast", input=["a cat", "a dog", "a car"])
    vectors = answer.embeddings
    assert len(vectors) == 3 and len({len(v) for v in vectors}) == 1 and len(vectors[0]) > 0
    measured.record(dimensions=len(vectors[0]))


def test_json_format(ollama_client: OllamaClient, target: Target) -> None:
    """JSON format gives a JSON document"""
    if target.is_real("fast"):
        pytest.skip(
            "the emulator's llama.cpp backend does not constrain its output to JSON (format)"
        )
    answer = ollama_client.generate(
        tier="fast",
        prompt="Describe a cat as JSON with the keys name and age.",
        format="json",
        options={**OPTIONS, "num_predict": 64},
    )
    try:
        json.loads(answer.response)
    except ValueError:
        pytest.fail(f"format='json' gave no JSON document: {answer.response[:200]!r}")


def test_tool_calls(ollama_client: OllamaClient, target: Target) -> None:
    """Tool calls name a tool and its arguments"""
    capabilities = target.capabilities("fast")
    if capabilities is not None and "tools" not in capabilities:
        pytest.skip(f"{target.model('fast')} does not take tools (capabilities: {capabilities})")
    answer = ollama_client.chat(
        tier="fast",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        options=OPTIONS,
    )
    calls = answer.message.get("tool_calls") or []
    assert calls, f"no tool call in the answer: {answer.message}"
    assert calls[0]["function"]["name"] == "get_weather"
    assert isinstance(calls[0]["function"]["arguments"], dict)
