"""The README's fixture example, verbatim (tests/test_readme.py checks that they match)."""

from __future__ import annotations

import httpx


def test_story_has_text(ollama_emulator):
    answer = httpx.post(
        ollama_emulator.url + "/api/generate",
        json={"model": "llama3.2:1b", "prompt": "Hi", "stream": False},
    ).json()
    assert answer["response"]
