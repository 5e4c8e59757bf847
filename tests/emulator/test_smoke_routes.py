"""Every route answers in Ollama's shape (in-process, through httpx's ASGI transport)."""

from __future__ import annotations

import json

import httpx


async def test_root_and_version(asgi_client: httpx.AsyncClient) -> None:
    root = await asgi_client.get("/")
    assert root.status_code == 200
    assert root.text == "Ollama is running"
    assert (await asgi_client.get("/api/version")).json() == {"version": "0.5.1"}


async def test_generate_stream_is_ndjson_ending_with_statistics(
    asgi_client: httpx.AsyncClient,
) -> None:
    response = await asgi_client.post(
        "/api/generate", json={"model": "llama3.2:1b", "prompt": "Hi"}
    )
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert all(line["done"] is False for line in lines[:-1])
    final = lines[-1]
    assert final["done"] is True
    assert final["done_reason"] == "stop"
    assert final["response"] == ""
    for key in (
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ):
        assert isinstance(final[key], int)
        assert final[key] > 0
    assert final["eval_count"] == len(lines) - 1
