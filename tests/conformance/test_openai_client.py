"""The official ``openai`` Python client against the emulator's OpenAI-compatible routes.

Every test talks to ``/v1`` only through ``openai.OpenAI`` or ``openai.AsyncOpenAI`` on a real
loopback port, so a shape the client cannot parse, or an error it would map to the wrong
exception class, fails here. Retries are off so that injected errors surface at once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from typing import TypeVar

import jsonschema
import openai
import pytest
from conformance_data import FAULT_HEADER, MODEL, PERSON_SCHEMA, WEATHER_TOOL
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from pytest_llmperf.emulator import Catalogue, EmulatorServer
from pytest_llmperf.emulator.text import count_tokens

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Tell me a story"}]

T = TypeVar("T")


@pytest.fixture
def client(live: EmulatorServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def fault(spec: str) -> dict[str, str]:
    """Per-request headers that ask the emulator for a fault."""
    return {FAULT_HEADER: spec}


def drain(stream: Iterable[T], into: list[T]) -> None:
    """Collect a stream's chunks into ``into``, keeping those read before any failure."""
    for chunk in stream:
        into.append(chunk)


def text_of(chunks: Iterable[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# --- chat completions -------------------------------------------------------------------


def test_chat_completion_has_openais_shape(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == MODEL
    assert completion.system_fingerprint == "fp_ollama"
    (choice,) = completion.choices
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content


def test_chat_completion_usage_counts_its_content(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    usage = completion.usage
    assert usage is not None
    assert usage.completion_tokens == count_tokens(completion.choices[0].message.content or "")
    assert usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_stream_is_chunks_ending_with_stop(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert all(c.usage is None for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_chat_stream_text_matches_the_whole_answer(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    assert text_of(stream) == whole.choices[0].message.content


def test_chat_stream_with_include_usage_ends_with_a_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    *body, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == count_tokens(text_of(body))
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert body[-1].choices[0].finish_reason == "stop"


def test_max_tokens_cuts_with_finish_reason_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=3)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3


def test_stop_ends_the_answer_before_the_stop_string(client: openai.OpenAI) -> None:
    full = client.chat.completions.create(model=MODEL, messages=MESSAGES, seed=1)
    text = full.choices[0].message.content or ""
    stop = " " + text.split()[2]
    cut = client.chat.completions.create(model=MODEL, messages=MESSAGES, seed=1, stop=[stop])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.index(stop)]


def test_same_seed_gives_the_same_answer(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model=MODEL, messages=MESSAGES, seed=3)
    again = client.chat.completions.create(model=MODEL, messages=MESSAGES, seed=3)
    assert first.choices[0].message.content == again.choices[0].message.content


def test_tools_give_a_tool_call_with_json_string_arguments(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL]
    )
    (choice,) = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.id
    assert call.function.name == "get_weather"
    assert isinstance(call.function.arguments, str)
    assert isinstance(json.loads(call.function.arguments)["city"], str)


def test_streamed_tool_call_ends_with_finish_reason_tool_calls(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL], stream=True
        )
    )
    calls = [call for c in chunks for call in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1
    assert calls[0].function is not None
    assert calls[0].function.name == "get_weather"
    assert isinstance(json.loads(calls[0].function.arguments or ""), dict)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_response_format_json_object_gives_json(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(completion.choices[0].message.content or ""), dict)


def test_response_format_json_schema_gives_an_instance(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON_SCHEMA},
        },
    )
    jsonschema.validate(json.loads(completion.choices[0].message.content or ""), PERSON_SCHEMA)


# --- completions, embeddings, models ----------------------------------------------------


def test_completion_has_openais_shape(client: openai.OpenAI) -> None:
    completion = client.completions.create(model=MODEL, prompt="Once upon a time")
    assert completion.object == "text_completion"
    assert completion.id.startswith("cmpl-")
    (choice,) = completion.choices
    assert choice.text
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == count_tokens(choice.text)


def test_completion_stream_with_max_tokens(client: openai.OpenAI) -> None:
    stream = client.completions.create(
        model=MODEL, prompt="Once upon a time", max_tokens=2, stream=True
    )
    chunks = list(stream)
    assert count_tokens("".join(c.choices[0].text for c in chunks)) == 2
    assert chunks[-1].choices[0].finish_reason == "length"


def test_embeddings_one_vector_per_input(client: openai.OpenAI, catalogue: Catalogue) -> None:
    response = client.embeddings.create(model=MODEL, input=["first", "second"])
    assert response.object == "list"
    assert [d.index for d in response.data] == [0, 1]
    size = catalogue.models[MODEL].embedding_length
    assert [len(d.embedding) for d in response.data] == [size, size]
    assert math.sqrt(sum(v * v for v in response.data[0].embedding)) == pytest.approx(1.0)
    assert response.usage.prompt_tokens > 0


def test_embeddings_are_deterministic(client: openai.OpenAI) -> None:
    single = client.embeddings.create(model=MODEL, input="second")
    listed = client.embeddings.create(model=MODEL, input=["first", "second"])
    assert single.data[0].embedding == listed.data[1].embedding


def test_models_list_names_every_model(client: openai.OpenAI, catalogue: Catalogue) -> None:
    models = list(client.models.list())
    assert {m.id for m in models} == set(catalogue.models)
    assert {m.object for m in models} == {"model"}


def test_models_retrieve_one_model(client: openai.OpenAI) -> None:
    assert client.models.retrieve(MODEL).id == MODEL


# --- errors -----------------------------------------------------------------------------


def test_unknown_model_is_not_found_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert missing.value.status_code == 404
    assert 'model "no-such-model" not found' in missing.value.message


def test_empty_messages_are_a_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=MODEL, messages=[])
    assert refused.value.status_code == 400


def test_unknown_model_fault_is_not_found_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model=MODEL, input="x", extra_headers=fault("unknown-model"))


def test_retrieving_an_unknown_model_is_not_found_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model:1b")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai.BadRequestError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_status_fault_maps_to_the_clients_exception(
    client: openai.OpenAI, status: int, error: type[openai.APIStatusError]
) -> None:
    with pytest.raises(error) as failed:
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers=fault(f"status={status}")
        )
    assert failed.value.status_code == status


def test_error_line_mid_stream_raises_api_error(client: openai.OpenAI) -> None:
    chunks: list[ChatCompletionChunk] = []
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        stream=True,
        extra_headers=fault("error-line; after=2; message=CUDA error"),
    )
    with pytest.raises(openai.APIError) as failed:
        drain(stream, chunks)
    assert len(chunks) == 2
    assert failed.value.message == "CUDA error"


def test_dropped_stream_raises_api_connection_error(client: openai.OpenAI) -> None:
    chunks: list[ChatCompletionChunk] = []
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, extra_headers=fault("drop; after=2")
    )
    with pytest.raises(openai.APIConnectionError):
        drain(stream, chunks)
    assert len(chunks) == 2


def test_dropped_answer_raises_api_connection_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers=fault("drop; after=2")
        )


# --- the async client -------------------------------------------------------------------


async def test_async_client_streams_with_usage(live: EmulatorServer) -> None:
    async with openai.AsyncOpenAI(
        base_url=live.url + "/v1", api_key="unused", max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    *body, last = chunks
    assert last.usage is not None
    assert last.usage.completion_tokens == count_tokens(text_of(body))
    assert body[-1].choices[0].finish_reason == "stop"


async def test_async_client_raises_not_found(live: EmulatorServer) -> None:
    async with openai.AsyncOpenAI(
        base_url=live.url + "/v1", api_key="unused", max_retries=0
    ) as client:
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="no-such-model", messages=MESSAGES)
