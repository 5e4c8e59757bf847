"""An example suite as a user writes it: tests of an app that calls Ollama.

Run against the embedded emulator (``pytest examples``) or any Ollama
(``OLLAMA_HOST=http://127.0.0.1:11434 pytest examples``).
"""

from __future__ import annotations

import httpx
import pytest
from story_app import tell_story


def test_story_has_text_and_respects_the_token_limit(ollama_host: str) -> None:
    story = tell_story(ollama_host, "a robot")
    assert story.text.strip()
    assert 0 < story.tokens <= 16


def test_same_seed_same_story(ollama_host: str) -> None:
    assert tell_story(ollama_host, "the sea").text == tell_story(ollama_host, "the sea").text


def test_warm_model_answers_faster_than_cold_load(ollama_host: str) -> None:
    with httpx.Client(base_url=ollama_host, timeout=60) as client:
        client.post("/api/generate", json={"model": "llama3.2:3b", "keep_alive": 0})  # unload
        cold = client.post(
            "/api/generate", json={"model": "llama3.2:3b", "prompt": "hi", "stream": False}
        ).json()
        warm = client.post(
            "/api/generate", json={"model": "llama3.2:3b", "prompt": "hi", "stream": False}
        ).json()
    assert cold["load_duration"] > 0
    assert warm.get("load_duration", 0) < cold["load_duration"]


def test_unknown_model_is_a_clear_404(ollama_host: str) -> None:
    with pytest.raises(httpx.HTTPStatusError) as failure:
        tell_story(ollama_host, "x", model="no-such-model:7b")
    assert failure.value.response.status_code == 404
