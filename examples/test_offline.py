"""The same app tested offline: its LLM traffic replays from cassettes shipped in cassettes/.

Record them again against a server with ``--llm-record-mode rewrite``; by default a cassette
is only replayed, so these tests never reach the network.
"""

from __future__ import annotations

import pytest
from story_app import tell_story


@pytest.mark.llm_cassette("examples/story.yaml")
def test_story_offline_from_the_emulator(ollama_host: str, llm_cassette) -> None:
    # the host does not matter on replay: requests match on method, path and body
    story = tell_story(ollama_host, "a lighthouse")
    assert story.text.strip()
    assert len(llm_cassette.replayed) + len(llm_cassette.recorded) == 1


@pytest.mark.llm_cassette("examples/stories260K.yaml", timing="recorded")
def test_real_model_story_offline_at_its_recorded_pace(ollama_host: str, llm_cassette) -> None:
    # recorded from llama.cpp running stories260K.gguf behind `llmperf serve --gguf`
    story = tell_story(ollama_host, "a cat", model="stories", max_tokens=24)
    assert story.text.strip()
    [interaction] = llm_cassette.replayed or llm_cassette.recorded
    assert interaction.stats and interaction.stats["eval_count"] > 0
    assert story.time_to_first_token_s >= interaction.chunks[0][0] * 0.9
