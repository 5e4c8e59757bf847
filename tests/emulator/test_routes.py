"""Each route's answer shape and its errors, in-process through httpx's ASGI transport."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from pytest_llmperf.emulator import EmulatorApp
from pytest_llmperf.emulator.profiles import Catalogue, ModelProfile

Client = httpx.AsyncClient


def ndjson(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines()]


def sse(response: httpx.Response) -> list[Any]:
    events = [
        line[len("data: ") :] for line in response.text.split("\n\n") if line.startswith("data: ")
    ]
    return [e if e == "[DONE]" else json.loads(e) for e in events]


async def generate(client: Client, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/generate", json={"model": "llama3.2:1b", "stream": False, **body}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


# --- generate -----------------------------------------------------------------------------


async def test_non_stream_generate_is_one_json_object(asgi_client: Client) -> None:
    response = await asgi_client.post(
        "/api/generate", json={"model": "llama3.2:1b", "prompt": "Hi", "stream": False}
    )
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["done"] is True
    assert body["response"].strip()
    assert body["context"]
    assert body["created_at"].endswith("Z")


async def test_same_model_prompt_and_seed_give_the_same_answer(asgi_client: Client) -> None:
    first = await generate(asgi_client, prompt="Tell me a story", options={"seed": 42})
    second = await generate(asgi_client, prompt="Tell me a story", options={"seed": 42})
    other = await generate(asgi_client, prompt="Tell me a story", options={"seed": 43})
    assert first["response"] == second["response"]
    assert other["response"] != first["response"]


async def test_num_predict_cuts_with_length(asgi_client: Client) -> None:
    body = await generate(asgi_client, prompt="Hi", options={"num_predict": 3})
    assert body["done_reason"] == "length"
    assert body["eval_count"] == 3
    assert len(body["response"].split()) == 3


async def test_stop_sequence_ends_the_answer_before_it(asgi_client: Client) -> None:
    full = (await generate(asgi_client, prompt="Hi", options={"seed": 1}))["response"]
    word = full.split()[2]
    cut = await generate(asgi_client, prompt="Hi", options={"seed": 1, "stop": [f" {word}"]})
    assert cut["response"] == full[: full.index(f" {word}")]
    assert cut["done_reason"] == "stop"


async def test_format_json_and_schema(asgi_client: Client) -> None:
    plain = await generate(asgi_client, prompt="Hi", format="json")
    assert isinstance(json.loads(plain["response"]), dict)
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "ok": {"type": "boolean"},
        },
    }
    shaped = json.loads((await generate(asgi_client, prompt="Hi", format=schema))["response"])
    assert set(shaped) == {"name", "age", "ok"}
    assert isinstance(shaped["age"], int)
    assert isinstance(shaped["ok"], bool)


async def test_empty_prompt_only_loads(asgi_client: Client) -> None:
    response = await asgi_client.post("/api/generate", json={"model": "llama3.2:1b"})
    assert response.json() == {
        "model": "llama3.2:1b",
        "created_at": response.json()["created_at"],
        "response": "",
        "done": True,
        "done_reason": "load",
    }
    unload = await asgi_client.post("/api/generate", json={"model": "llama3.2:1b", "keep_alive": 0})
    assert unload.json()["done_reason"] == "unload"
    assert (await asgi_client.get("/api/ps")).json() == {"models": []}


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"prompt": "x"}, 400, "model is required"),
        (
            {"model": "nope:1b", "prompt": "x"},
            404,
            'model "nope:1b" not found, try pulling it first',
        ),
        (
            {"model": "llama3.2:1b", "prompt": "x", "keep_alive": "3600"},
            400,
            'time: missing unit in duration "3600"',
        ),
        (
            {"model": "llama3.2:1b", "prompt": "x", "raw": True, "system": "s"},
            400,
            "raw mode does not support template, system, or context",
        ),
        (
            {"model": "llama3.2:1b", "prompt": "x", "think": True},
            400,
            '"llama3.2:1b" does not support thinking',
        ),
        ({"model": "llama3.2:1b", "prompt": "x", "format": "yaml"}, 400, 'invalid format: "yaml"'),
        (
            {"model": "llama3.2:1b", "prompt": "x", "options": {"num_predict": "many"}},
            400,
            "invalid options",
        ),
    ],
)
async def test_generate_errors_before_output(
    asgi_client: Client, body: dict[str, Any], status: int, error: str
) -> None:
    response = await asgi_client.post("/api/generate", json=body)
    assert response.status_code == status
    assert response.json()["error"].startswith(error)


async def test_missing_and_invalid_bodies(asgi_client: Client) -> None:
    empty = await asgi_client.post("/api/generate")
    assert (empty.status_code, empty.json()) == (400, {"error": "missing request body"})
    broken = await asgi_client.post("/api/generate", content=b"{not json")
    assert broken.status_code == 400
    assert broken.json()["error"].startswith("invalid JSON in request body")


async def test_unknown_route_and_wrong_method(asgi_client: Client) -> None:
    assert (await asgi_client.get("/api/nothing")).status_code == 404
    wrong = await asgi_client.get("/api/generate")
    assert (wrong.status_code, wrong.text) == (405, "405 method not allowed")


# --- chat ---------------------------------------------------------------------------------


async def test_chat_stream_pieces_then_statistics(asgi_client: Client) -> None:
    messages = [{"role": "user", "content": "Hello"}]
    response = await asgi_client.post(
        "/api/chat", json={"model": "llama3.2:1b", "messages": messages}
    )
    lines = ndjson(response)
    assert all(line["message"]["role"] == "assistant" for line in lines)
    assert lines[-1]["done"] is True
    assert lines[-1]["message"]["content"] == ""
    assert "context" not in lines[-1]
    assert lines[-1]["eval_count"] == len(lines) - 1


async def test_chat_with_tools_calls_the_tool_with_schema_arguments(asgi_client: Client) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            },
        },
    }
    body = {"model": "llama3.2:1b", "stream": False, "tools": [tool]}
    called = await asgi_client.post(
        "/api/chat", json={**body, "messages": [{"role": "user", "content": "Paris?"}]}
    )
    (call,) = called.json()["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert set(call["function"]["arguments"]) == {"city", "days"}
    history = [
        {"role": "user", "content": "Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
    ]
    answered = await asgi_client.post("/api/chat", json={**body, "messages": history})
    assert "tool_calls" not in answered.json()["message"]
    assert answered.json()["message"]["content"]


async def test_chat_bad_role_is_400(asgi_client: Client) -> None:
    response = await asgi_client.post(
        "/api/chat", json={"model": "llama3.2:1b", "messages": [{"role": "wizard", "content": "x"}]}
    )
    assert response.status_code == 400


# --- embeddings -------------------------------------------------------------------------


async def test_embed_vectors_are_deterministic_normalised_and_sized(asgi_client: Client) -> None:
    body = {"model": "llama3:8b", "input": ["a", "b", "a"]}
    first = (await asgi_client.post("/api/embed", json=body)).json()
    vectors = first["embeddings"]
    assert [len(v) for v in vectors] == [4096] * 3
    assert vectors[0] == vectors[2]
    assert vectors[0] != vectors[1]
    assert sum(x * x for x in vectors[0]) == pytest.approx(1.0)
    assert first["prompt_eval_count"] == 3
    again = (await asgi_client.post("/api/embed", json=body)).json()
    assert again["embeddings"] == vectors


async def test_embed_dimensions_and_legacy_embeddings(asgi_client: Client) -> None:
    short = await asgi_client.post(
        "/api/embed", json={"model": "llama3.2:1b", "input": "x", "dimensions": 8}
    )
    assert len(short.json()["embeddings"][0]) == 8
    legacy = await asgi_client.post("/api/embeddings", json={"model": "llama3.2:1b", "prompt": "x"})
    assert len(legacy.json()["embedding"]) == 2048


# --- model information --------------------------------------------------------------------


async def test_ps_shows_the_profiles_vram_and_show_its_quantization(catalogue: Catalogue) -> None:
    offloaded = ModelProfile(name="big:70b", size=4000, size_vram=1000, quantization_level="F16")
    app = EmulatorApp(catalogue.with_model(offloaded))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://e"
    ) as client:
        await client.post("/api/generate", json={"model": "big:70b"})
        await client.post("/api/generate", json={"model": "llama3.2:1b"})
        loaded = {m["name"]: m for m in (await client.get("/api/ps")).json()["models"]}
        shown = (await client.post("/api/show", json={"model": "big:70b"})).json()
    assert (loaded["big:70b"]["size"], loaded["big:70b"]["size_vram"]) == (4000, 1000)
    small = loaded["llama3.2:1b"]
    assert small["size_vram"] == small["size"] == 1_321_098_329  # the default: all in GPU
    assert shown["details"]["quantization_level"] == "F16"


async def test_tags_show_and_pull(catalogue: Catalogue) -> None:
    hidden = ModelProfile(name="qwen2.5:0.5b", available=False)
    app = EmulatorApp(catalogue.with_model(hidden))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://e"
    ) as client:
        names = [m["name"] for m in (await client.get("/api/tags")).json()["models"]]
        assert names == ["llama3.2:1b", "llama3.2:3b", "llama3:8b"]
        missing = await client.post("/api/show", json={"model": "qwen2.5:0.5b"})
        assert missing.status_code == 404
        pulled = ndjson(await client.post("/api/pull", json={"model": "qwen2.5:0.5b"}))
        assert pulled[0] == {"status": "pulling manifest"}
        assert pulled[-1] == {"status": "success"}
        assert any(p.get("completed") == p.get("total") for p in pulled if "total" in p)
        shown = (await client.post("/api/show", json={"model": "qwen2.5:0.5b"})).json()
        assert shown["details"]["format"] == "gguf"
        assert "completion" in shown["capabilities"]
        unknown = await client.post("/api/pull", json={"model": "nothing:1b"})
        assert unknown.status_code == 200  # the failure arrives in the stream, as from Ollama
        assert ndjson(unknown)[-1] == {"error": "pull model manifest: file does not exist"}
        whole = await client.post("/api/pull", json={"model": "nothing:1b", "stream": False})
        assert (whole.status_code, whole.json()) == (
            500,
            {"error": "pull model manifest: file does not exist"},
        )


# --- OpenAI-compatible routes -------------------------------------------------------------


async def test_openai_chat_stream_with_usage(asgi_client: Client) -> None:
    body = {
        "model": "llama3.2:1b",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = await asgi_client.post("/v1/chat/completions", json=body)
    assert response.headers["content-type"] == "text/event-stream"
    events = sse(response)
    assert events[-1] == "[DONE]"
    usage = events[-2]
    assert usage["choices"] == []
    finish = events[-3]["choices"][0]["finish_reason"]
    assert finish == "stop"
    chunks = events[:-3]
    assert all(
        c["object"] == "chat.completion.chunk" and c["id"].startswith("chatcmpl-") for c in chunks
    )
    assert usage["usage"]["completion_tokens"] == len(chunks)


async def test_openai_errors_have_openai_shape(asgi_client: Client) -> None:
    response = await asgi_client.post(
        "/v1/chat/completions",
        json={"model": "nope", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "message": 'model "nope" not found, try pulling it first',
            "type": "not_found_error",
            "param": None,
            "code": None,
        }
    }


async def test_openai_models_and_embeddings(asgi_client: Client) -> None:
    models = (await asgi_client.get("/v1/models")).json()
    assert [m["id"] for m in models["data"]] == ["llama3.2:1b", "llama3.2:3b", "llama3:8b"]
    one = await asgi_client.get("/v1/models/llama3:8b")
    assert one.json()["owned_by"] == "library"
    assert (await asgi_client.get("/v1/models/nope")).status_code == 404
    emb = (
        await asgi_client.post("/v1/embeddings", json={"model": "llama3.2:1b", "input": ["a", "b"]})
    ).json()
    assert [d["index"] for d in emb["data"]] == [0, 1]
    assert emb["usage"]["prompt_tokens"] == 2


# --- faults through the profile -------------------------------------------------------------


async def test_profile_fault_every_second_request(catalogue: Catalogue) -> None:
    from pytest_llmperf.emulator.faults import FaultKind, FaultSpec

    flaky = ModelProfile(
        name="flaky:1b",
        tokens_per_s=1000,
        faults=(FaultSpec(FaultKind.STATUS, status=500, every=2),),
    )
    app = EmulatorApp(catalogue.with_model(flaky))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://e"
    ) as client:
        statuses = [
            (
                await client.post("/api/generate", json={"model": "flaky:1b", "prompt": "x"})
            ).status_code
            for _ in range(4)
        ]
    assert statuses == [200, 500, 200, 500]


async def test_error_line_in_non_stream_answer_is_a_500(asgi_client: Client) -> None:
    response = await asgi_client.post(
        "/api/generate",
        json={"model": "llama3.2:1b", "prompt": "x", "stream": False},
        headers={"X-Llmperf-Fault": "error-line; after=1; message=boom"},
    )
    assert (response.status_code, response.json()) == (500, {"error": "boom"})


async def test_bad_fault_header_is_a_400(asgi_client: Client) -> None:
    response = await asgi_client.post(
        "/api/generate",
        json={"model": "llama3.2:1b", "prompt": "x"},
        headers={"X-Llmperf-Fault": "meteor"},
    )
    assert response.status_code == 400
    assert "unknown fault kind 'meteor'" in response.json()["error"]
