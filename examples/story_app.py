"""A tiny application under test: it asks a local LLM for a story, streaming."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx


@dataclass
class Story:
    text: str
    time_to_first_token_s: float
    tokens: int


def tell_story(host: str, topic: str, model: str = "llama3.2:1b", max_tokens: int = 16) -> Story:
    """Stream a short story about ``topic`` from Ollama's /api/generate."""
    started = time.perf_counter()
    first: float | None = None
    pieces: list[str] = []
    body = {
        "model": model,
        "prompt": f"Tell a story about {topic}.",
        "options": {"num_predict": max_tokens, "seed": 7},
    }
    with (
        httpx.Client(base_url=host, timeout=30) as client,
        client.stream("POST", "/api/generate", json=body) as response,
    ):
        response.raise_for_status()
        for line in response.iter_lines():
            chunk = json.loads(line)
            if "error" in chunk:
                raise RuntimeError(chunk["error"])
            if chunk.get("response") and first is None:
                first = time.perf_counter() - started
            pieces.append(chunk.get("response", ""))
            if chunk["done"]:
                return Story("".join(pieces), first or 0.0, chunk.get("eval_count", 0))
    raise RuntimeError("the stream ended without a final object")
