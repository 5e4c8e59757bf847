"""The official ``ollama`` Python client against the emulator on a real loopback port.

Every test talks to the emulator only through ``ollama.Client`` or ``ollama.AsyncClient``, so
a response shape, a status code or a stream framing that the real client would reject, or
would read differently from a real Ollama server, fails here.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import httpx
import jsonschema
import ollama
import pytest
from conformance_data import FAULT_HEADER, MODEL, PERSON_SCHEMA, WEATHER_TOOL

from pytest_llmperf.emulator import Catalogue, EmulatorServer, ModelProfile

PROMPT = "Tell me a story"
# A slow-writing copy of MODEL: one token every PACED_STEP_S, PACED_TOKENS tokens an answer.
PACED_STEP_S = 0.02
PACED_TOKENS = 12

T = TypeVar("T")


@pytest.fixture
def client(live: EmulatorServer) -> Iterator[ollama.Client]:
    with ollama.Client(host=live.url) as client:
        yield client


@pytest.fixture
def faulty(live: EmulatorServer) -> Iterator[Callable[[str], ollama.Client]]:
    """``faulty(spec)``: a client whose every request carries ``X-Llmperf-Fault: spec``."""
    with ExitStack() as clients:

        def make(spec: str) -> ollama.Client:
            client = ollama.Client(host=live.url, headers={FAULT_HEADER: spec})
            clients.enter_context(client)
            return client

        yield make


@pytest.fixture
def paced(serve: Callable[..., EmulatorServer], catalogue: Catalogue) -> EmulatorServer:
    """An emulator whose MODEL writes PACED_TOKENS tokens, one every PACED_STEP_S."""
    profile = catalogue.models[MODEL]
    slow = replace(
        profile,
        tokens_per_s=catalogue.server.time_scale / PACED_STEP_S,
        response_tokens=(PACED_TOKENS, PACED_TOKENS),
    )
    return serve(catalogue.with_model(slow))


def drain(stream: Iterable[T], into: list[T]) -> None:
    """Collect a stream's chunks into ``into``, keeping those read before any failure."""
    for chunk in stream:
        into.append(chunk)


async def adrain(stream: AsyncIterable[T], into: list[T]) -> None:
    """``drain`` for an async stream."""
    async for chunk in stream:
        into.append(chunk)


def arrival_times(stream: Iterable[object]) -> list[float]:
    """Seconds from the start of reading ``stream`` to the arrival of each of its chunks."""
    start = time.perf_counter()
    return [time.perf_counter() - start for _chunk in stream]


def ask_weather() -> list[dict[str, Any]]:
    return [{"role": "user", "content": "What is the weather in Paris?"}]


def loaded_models(client: ollama.Client) -> list[str | None]:
    return [m.model for m in client.ps().models]


# --- generate and chat ------------------------------------------------------------------


def test_generate_returns_text_and_statistics(client: ollama.Client) -> None:
    answer = client.generate(model=MODEL, prompt=PROMPT)
    assert answer.model == MODEL
    assert answer.done is True
    assert answer.done_reason == "stop"
    assert answer.response
    assert answer.eval_count is not None
    assert answer.eval_count > 0
    assert answer.prompt_eval_count is not None
    assert answer.prompt_eval_count > 0
    assert answer.total_duration is not None
    assert answer.eval_duration is not None
    assert 0 < answer.eval_duration <= answer.total_duration
    assert answer.context


def test_generate_stream_yields_pieces_then_a_final_object(client: ollama.Client) -> None:
    chunks = list(client.generate(model=MODEL, prompt=PROMPT, stream=True))
    *pieces, final = chunks
    assert pieces
    assert all(piece.done is False for piece in pieces)
    assert final.done is True
    assert final.done_reason == "stop"
    assert final.response == ""
    assert final.eval_count == len(pieces)


def test_generate_stream_and_whole_answer_agree(client: ollama.Client) -> None:
    whole = client.generate(model=MODEL, prompt=PROMPT)
    streamed = "".join(
        c.response or "" for c in client.generate(model=MODEL, prompt=PROMPT, stream=True)
    )
    assert streamed == whole.response


def test_chat_returns_an_assistant_message(client: ollama.Client) -> None:
    answer = client.chat(model=MODEL, messages=[{"role": "user", "content": PROMPT}])
    assert answer.done is True
    assert answer.done_reason == "stop"
    assert answer.message.role == "assistant"
    assert answer.message.content
    assert answer.eval_count is not None
    assert answer.eval_count > 0


def test_chat_stream_pieces_join_to_the_whole_answer(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": PROMPT}]
    whole = client.chat(model=MODEL, messages=messages)
    *pieces, final = list(client.chat(model=MODEL, messages=messages, stream=True))
    assert all(p.done is False and p.message.role == "assistant" for p in pieces)
    assert "".join(p.message.content or "" for p in pieces) == whole.message.content
    assert final.done is True
    assert final.done_reason == "stop"


def test_chat_with_tools_returns_a_tool_call(client: ollama.Client) -> None:
    answer = client.chat(model=MODEL, messages=ask_weather(), tools=[WEATHER_TOOL])
    calls = answer.message.tool_calls
    assert calls is not None
    assert len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert isinstance(calls[0].function.arguments, dict)
    assert isinstance(calls[0].function.arguments["city"], str)


def test_chat_stream_with_tools_carries_the_call_in_a_chunk(client: ollama.Client) -> None:
    chunks = list(
        client.chat(model=MODEL, messages=ask_weather(), tools=[WEATHER_TOOL], stream=True)
    )
    calls = [call for c in chunks for call in (c.message.tool_calls or [])]
    assert [call.function.name for call in calls] == ["get_weather"]
    assert isinstance(calls[0].function.arguments, dict)
    assert chunks[-1].done is True


def test_chat_after_a_tool_result_answers_in_text(client: ollama.Client) -> None:
    first = client.chat(model=MODEL, messages=ask_weather(), tools=[WEATHER_TOOL])
    history: list[Mapping[str, Any] | ollama.Message] = [
        *ask_weather(),
        first.message,
        {"role": "tool", "content": "sunny, 21 C", "tool_name": "get_weather"},
    ]
    answer = client.chat(model=MODEL, messages=history, tools=[WEATHER_TOOL])
    assert not answer.message.tool_calls
    assert answer.message.content


# --- options and formats ----------------------------------------------------------------


def test_num_predict_cuts_the_answer_with_reason_length(client: ollama.Client) -> None:
    answer = client.generate(model=MODEL, prompt=PROMPT, options={"num_predict": 3})
    assert answer.done_reason == "length"
    assert answer.eval_count == 3


def test_stop_sequence_ends_the_answer_before_it(client: ollama.Client) -> None:
    full = client.generate(model=MODEL, prompt=PROMPT, options={"seed": 1}).response or ""
    stop = " " + full.split()[2]
    cut = client.generate(model=MODEL, prompt=PROMPT, options={"seed": 1, "stop": [stop]})
    assert cut.done_reason == "stop"
    assert cut.response == full[: full.index(stop)]


def test_same_seed_and_prompt_give_the_same_text(client: ollama.Client) -> None:
    first = client.generate(model=MODEL, prompt=PROMPT, options={"seed": 7})
    again = client.generate(model=MODEL, prompt=PROMPT, options={"seed": 7})
    other = client.generate(model=MODEL, prompt=PROMPT, options={"seed": 8})
    assert first.response == again.response
    assert other.response != first.response


def test_format_json_gives_parseable_json(client: ollama.Client) -> None:
    answer = client.generate(model=MODEL, prompt=PROMPT, format="json")
    assert isinstance(json.loads(answer.response or ""), dict)


def test_format_schema_gives_an_instance_of_the_schema(client: ollama.Client) -> None:
    answer = client.generate(model=MODEL, prompt=PROMPT, format=PERSON_SCHEMA)
    document = json.loads(answer.response or "")
    jsonschema.validate(document, PERSON_SCHEMA)
    assert set(document) == set(PERSON_SCHEMA["properties"])


def test_chat_format_schema_gives_an_instance_of_the_schema(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": PROMPT}]
    answer = client.chat(model=MODEL, messages=messages, format=PERSON_SCHEMA)
    jsonschema.validate(json.loads(answer.message.content or ""), PERSON_SCHEMA)


# --- embeddings -------------------------------------------------------------------------


def test_embed_one_string_gives_one_vector_of_the_model_size(
    client: ollama.Client, catalogue: Catalogue
) -> None:
    answer = client.embed(model=MODEL, input="hello world")
    assert len(answer.embeddings) == 1
    assert len(answer.embeddings[0]) == catalogue.models[MODEL].embedding_length
    assert math.sqrt(sum(v * v for v in answer.embeddings[0])) == pytest.approx(1.0)


def test_embed_a_list_gives_one_vector_each(client: ollama.Client, catalogue: Catalogue) -> None:
    answer = client.embed(model=MODEL, input=["first text", "second text", "third"])
    size = catalogue.models[MODEL].embedding_length
    assert [len(v) for v in answer.embeddings] == [size, size, size]
    assert answer.embeddings[0] != answer.embeddings[1]


def test_embed_is_deterministic(client: ollama.Client) -> None:
    first = client.embed(model=MODEL, input="the same words")
    again = client.embed(model=MODEL, input=["other", "the same words"])
    assert list(again.embeddings[1]) == list(first.embeddings[0])


def test_embed_dimensions_truncates_to_a_unit_vector(client: ollama.Client) -> None:
    (vector,) = client.embed(model=MODEL, input="hello world", dimensions=64).embeddings
    assert len(vector) == 64
    assert math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0)


def test_legacy_embeddings_give_one_deterministic_vector(
    client: ollama.Client, catalogue: Catalogue
) -> None:
    first = client.embeddings(model=MODEL, prompt="hello world")
    again = client.embeddings(model=MODEL, prompt="hello world")
    assert len(first.embedding) == catalogue.models[MODEL].embedding_length
    assert list(first.embedding) == list(again.embedding)


# --- models: list, ps, show, pull -------------------------------------------------------


def test_list_names_every_available_model(client: ollama.Client, catalogue: Catalogue) -> None:
    listed = client.list().models
    assert {m.model for m in listed} == set(catalogue.models)
    for model in listed:
        assert model.size
        assert model.digest
        assert model.modified_at is not None
        assert model.details is not None


def test_ps_lists_a_used_model_with_its_expiry(client: ollama.Client) -> None:
    client.generate(model=MODEL, prompt=PROMPT)
    before = datetime.now(timezone.utc)
    (entry,) = client.ps().models
    assert entry.model == MODEL
    assert entry.size_vram
    assert entry.expires_at is not None
    assert before < entry.expires_at <= datetime.now(timezone.utc) + timedelta(minutes=5)


def test_keep_alive_duration_sets_the_expiry(client: ollama.Client) -> None:
    client.generate(model=MODEL, prompt=PROMPT, keep_alive="10m")
    (entry,) = client.ps().models
    assert entry.expires_at is not None
    assert entry.expires_at > datetime.now(timezone.utc) + timedelta(minutes=9)


def test_negative_keep_alive_keeps_the_model_forever(client: ollama.Client) -> None:
    client.generate(model=MODEL, prompt="", keep_alive=-1)
    (entry,) = client.ps().models
    assert entry.expires_at is not None
    assert entry.expires_at.year > 2200


def test_show_describes_the_model(client: ollama.Client, catalogue: Catalogue) -> None:
    profile = catalogue.models[MODEL]
    shown = client.show(MODEL)
    assert shown.details is not None
    assert shown.details.family == profile.family
    assert shown.details.parameter_size == profile.parameter_size
    assert shown.capabilities is not None
    assert "completion" in shown.capabilities
    assert shown.modelinfo is not None
    assert shown.modelinfo[f"{profile.family}.embedding_length"] == profile.embedding_length


def test_pull_stream_reports_progress_and_ends_with_success(client: ollama.Client) -> None:
    statuses = list(client.pull(MODEL, stream=True))
    assert statuses[0].status == "pulling manifest"
    assert statuses[-1].status == "success"
    progress = [s for s in statuses if s.total]
    assert progress
    assert [s.completed for s in progress] == sorted(s.completed or 0 for s in progress)
    assert progress[-1].completed == progress[-1].total


def test_pull_without_stream_answers_success(client: ollama.Client) -> None:
    assert client.pull(MODEL).status == "success"


def test_pull_makes_a_missing_model_available(
    serve: Callable[..., EmulatorServer], catalogue: Catalogue
) -> None:
    missing = ModelProfile(name="tinyllama:latest", available=False)
    server = serve(catalogue.with_model(missing))
    with ollama.Client(host=server.url) as client:
        with pytest.raises(ollama.ResponseError) as before:
            client.generate(model="tinyllama", prompt=PROMPT)
        assert before.value.status_code == 404
        assert list(client.pull("tinyllama", stream=True))[-1].status == "success"
        assert "tinyllama:latest" in {m.model for m in client.list().models}
        assert client.generate(model="tinyllama", prompt=PROMPT).done_reason == "stop"


# --- loading and unloading --------------------------------------------------------------


def test_empty_prompt_only_loads_the_model(client: ollama.Client) -> None:
    answer = client.generate(model=MODEL, prompt="")
    assert answer.done is True
    assert answer.done_reason == "load"
    assert answer.response == ""
    assert loaded_models(client) == [MODEL]


def test_chat_without_messages_only_loads_the_model(client: ollama.Client) -> None:
    answer = client.chat(model=MODEL, messages=[])
    assert answer.done_reason == "load"
    assert loaded_models(client) == [MODEL]


def test_keep_alive_zero_without_prompt_unloads(client: ollama.Client) -> None:
    client.generate(model=MODEL, prompt="")
    assert loaded_models(client) == [MODEL]
    answer = client.generate(model=MODEL, prompt="", keep_alive=0)
    assert answer.done_reason == "unload"
    assert MODEL not in loaded_models(client)


def test_keep_alive_zero_unloads_after_the_answer(client: ollama.Client) -> None:
    answer = client.generate(model=MODEL, prompt=PROMPT, keep_alive=0)
    assert answer.response
    assert MODEL not in loaded_models(client)


def test_keep_alive_string_without_unit_is_refused(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        client.generate(model=MODEL, prompt=PROMPT, keep_alive="3600")
    assert refused.value.status_code == 400
    assert "missing unit" in refused.value.error


# --- errors and faults ------------------------------------------------------------------


def test_unknown_model_is_a_404_with_ollamas_message(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        client.generate(model="no-such-model", prompt=PROMPT)
    assert missing.value.status_code == 404
    assert missing.value.error == 'model "no-such-model" not found, try pulling it first'


def test_thinking_on_a_model_without_it_is_a_400(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        client.generate(model=MODEL, prompt=PROMPT, think=True)
    assert refused.value.status_code == 400
    assert refused.value.error == f'"{MODEL}" does not support thinking'


def test_raw_mode_with_a_system_prompt_is_a_400(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        client.generate(model=MODEL, prompt=PROMPT, raw=True, system="Be brief")
    assert refused.value.status_code == 400
    assert refused.value.error == "raw mode does not support template, system, or context"


def test_unknown_model_in_a_stream_is_a_404(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        list(client.chat(model="no-such-model", messages=ask_weather(), stream=True))
    assert missing.value.status_code == 404


def test_show_of_an_unknown_model_is_a_404(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        client.show("no-such-model")
    assert missing.value.status_code == 404


def test_unknown_model_fault_is_a_404(faulty: Callable[[str], ollama.Client]) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        faulty("unknown-model").generate(model=MODEL, prompt=PROMPT)
    assert missing.value.status_code == 404
    assert missing.value.error == f'model "{MODEL}" not found, try pulling it first'


@pytest.mark.parametrize("status", [429, 500, 503])
def test_status_fault_is_a_response_error_with_that_status(
    faulty: Callable[[str], ollama.Client], status: int
) -> None:
    with pytest.raises(ollama.ResponseError) as failed:
        faulty(f"status={status}").generate(model=MODEL, prompt=PROMPT)
    assert failed.value.status_code == status


def test_busy_fault_carries_ollamas_busy_message(faulty: Callable[[str], ollama.Client]) -> None:
    with pytest.raises(ollama.ResponseError) as busy:
        list(faulty("status=503").generate(model=MODEL, prompt=PROMPT, stream=True))
    assert busy.value.status_code == 503
    assert busy.value.error.startswith("server busy, please try again.")


def test_error_line_mid_stream_raises_after_the_chunks_before_it(
    faulty: Callable[[str], ollama.Client],
) -> None:
    chunks: list[ollama.GenerateResponse] = []
    stream = faulty("error-line; after=2; message=CUDA error").generate(
        model=MODEL, prompt=PROMPT, stream=True
    )
    with pytest.raises(ollama.ResponseError) as failed:
        drain(stream, chunks)
    assert len(chunks) == 2
    assert failed.value.status_code == -1
    assert failed.value.error == "CUDA error"


def test_error_line_without_stream_is_a_500(faulty: Callable[[str], ollama.Client]) -> None:
    with pytest.raises(ollama.ResponseError) as failed:
        faulty("error-line; after=2").generate(model=MODEL, prompt=PROMPT)
    assert failed.value.status_code == 500


def test_dropped_stream_raises_httpx_remote_protocol_error(
    faulty: Callable[[str], ollama.Client],
) -> None:
    chunks: list[ollama.ChatResponse] = []
    stream = faulty("drop; after=2").chat(model=MODEL, messages=ask_weather(), stream=True)
    with pytest.raises(httpx.RemoteProtocolError):
        drain(stream, chunks)
    assert len(chunks) == 2


def test_dropped_whole_answer_raises_httpx_remote_protocol_error(
    faulty: Callable[[str], ollama.Client],
) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        faulty("drop; after=2").generate(model=MODEL, prompt=PROMPT)


def test_stall_fault_pauses_between_two_chunks(faulty: Callable[[str], ollama.Client]) -> None:
    stream = faulty("stall; after=1; seconds=0.5").generate(model=MODEL, prompt=PROMPT, stream=True)
    times = arrival_times(stream)
    assert times[1] - times[0] >= 0.45


def test_slow_first_token_fault_delays_the_first_chunk(
    faulty: Callable[[str], ollama.Client],
) -> None:
    stream = faulty("slow-first-token; seconds=0.5").generate(
        model=MODEL, prompt=PROMPT, stream=True
    )
    assert arrival_times(stream)[0] >= 0.45


def test_chunks_after_a_stall_keep_the_models_pace(paced: EmulatorServer) -> None:
    headers = {FAULT_HEADER: "stall; after=1; seconds=0.3"}
    with ollama.Client(host=paced.url, headers=headers) as client:
        times = arrival_times(client.generate(model=MODEL, prompt=PROMPT, stream=True))
    text_chunks = times[:PACED_TOKENS]
    # chunks 2..12 are ten steps apart at the profile's rate, after the 0.3 s stall. Bounded
    # from the start, not from chunk 2, whose reading a loaded machine can delay (a late read
    # only moves an arrival later, so this bound holds however busy the client is)
    assert text_chunks[-1] >= 0.3 + 0.75 * (PACED_TOKENS - 2) * PACED_STEP_S


def test_chunks_after_a_slow_first_token_keep_the_models_pace(paced: EmulatorServer) -> None:
    headers = {FAULT_HEADER: "slow-first-token; seconds=0.3"}
    with ollama.Client(host=paced.url, headers=headers) as client:
        times = arrival_times(client.generate(model=MODEL, prompt=PROMPT, stream=True))
    text_chunks = times[:PACED_TOKENS]
    # after the 0.3 s wait, eleven steps at the profile's rate, not a burst (bounded from the
    # start: a late read of the first chunk only moves arrivals later)
    assert text_chunks[-1] >= 0.3 + 0.75 * (PACED_TOKENS - 1) * PACED_STEP_S


# --- the async client -------------------------------------------------------------------


async def test_async_client_streams_a_chat(live: EmulatorServer) -> None:
    async with ollama.AsyncClient(host=live.url) as client:
        stream = await client.chat(model=MODEL, messages=ask_weather(), stream=True)
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].done is True
    assert chunks[-1].done_reason == "stop"
    assert "".join(c.message.content or "" for c in chunks)


async def test_async_client_generates_and_embeds(
    live: EmulatorServer, catalogue: Catalogue
) -> None:
    async with ollama.AsyncClient(host=live.url) as client:
        answer = await client.generate(model=MODEL, prompt=PROMPT, options={"num_predict": 2})
        vectors = await client.embed(model=MODEL, input=["a", "b"])
    assert answer.done_reason == "length"
    assert answer.eval_count == 2
    assert [len(v) for v in vectors.embeddings] == [catalogue.models[MODEL].embedding_length] * 2


async def test_async_client_raises_response_error_mid_stream(live: EmulatorServer) -> None:
    headers = {FAULT_HEADER: "error-line; after=2"}
    chunks: list[ollama.GenerateResponse] = []
    async with ollama.AsyncClient(host=live.url, headers=headers) as client:
        stream = await client.generate(model=MODEL, prompt=PROMPT, stream=True)
        with pytest.raises(ollama.ResponseError) as failed:
            await adrain(stream, chunks)
    assert len(chunks) == 2
    assert failed.value.status_code == -1


async def test_async_client_sees_an_unknown_model_as_404(live: EmulatorServer) -> None:
    async with ollama.AsyncClient(host=live.url) as client:
        with pytest.raises(ollama.ResponseError) as missing:
            await client.chat(model="no-such-model", messages=ask_weather())
    assert missing.value.status_code == 404
