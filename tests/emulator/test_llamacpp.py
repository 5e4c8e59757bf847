"""The real-model backend: stories260K.gguf through llama.cpp behind the Ollama API.

These tests need the model file (LLMPERF_STORIES_GGUF, default ../shared/models/) and
llama-cpp-python (the ``llama`` extra); they skip with the reason when either is absent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import ollama
import pytest

from pytest_llmperf.emulator import EmulatorApp, EmulatorServer, LlamaCppBackend
from pytest_llmperf.emulator.llamacpp import parse_gguf_spec
from pytest_llmperf.emulator.profiles import Catalogue
from pytest_llmperf.errors import ConfigurationError


@pytest.fixture
def real(
    serve: Callable[..., EmulatorServer], catalogue: Catalogue, stories_gguf: Path
) -> Iterator[ollama.Client]:
    server = serve(EmulatorApp(catalogue, [LlamaCppBackend("stories", stories_gguf)]))
    with ollama.Client(host=server.url) as client:
        yield client


def test_streams_real_text_with_real_statistics(real: ollama.Client) -> None:
    chunks = list(
        real.generate(
            "stories", "Once upon a time", stream=True, options={"num_predict": 24, "seed": 1}
        )
    )
    text = "".join(c.response or "" for c in chunks)
    assert len(chunks) > 5
    assert len(text.split()) >= 4
    final = chunks[-1]
    assert final.done
    assert final.prompt_eval_count and final.prompt_eval_count >= 4
    assert final.eval_count and 0 < final.eval_count <= 24
    assert final.load_duration and final.load_duration > 0
    assert final.prompt_eval_duration and final.prompt_eval_duration > 0
    assert final.eval_duration and final.eval_duration > 0
    assert (
        final.total_duration
        and final.total_duration >= final.eval_duration + final.prompt_eval_duration
    )


def test_same_seed_same_story_and_warm_second_call(real: ollama.Client) -> None:
    options = {"num_predict": 16, "seed": 7, "temperature": 0.8}
    first = real.generate("stories", "Lily went to the park", options=options)
    second = real.generate("stories", "Lily went to the park", options=options)
    assert first.response == second.response
    assert first.load_duration
    assert not second.load_duration


def test_chat_and_embed(real: ollama.Client) -> None:
    reply = real.chat(
        "stories",
        messages=[{"role": "user", "content": "Tom had a red ball."}],
        options={"num_predict": 12},
    )
    assert reply.message.content
    vectors = real.embed("stories", input=["a cat", "a dog"]).embeddings
    assert [len(v) for v in vectors] == [64, 64]
    assert vectors[0] != vectors[1]


def test_num_predict_reports_length(real: ollama.Client) -> None:
    answer = real.generate("stories", "Once upon a time", options={"num_predict": 5, "seed": 3})
    assert answer.eval_count == 5
    assert answer.done_reason == "length"


@pytest.mark.parametrize("spec", ["stories", "=x.gguf", "stories="])
def test_bad_gguf_spec(spec: str) -> None:
    with pytest.raises(ConfigurationError, match="--gguf takes NAME=PATH"):
        parse_gguf_spec(spec)


def test_missing_gguf_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"GGUF model file .*nope\.gguf.* does not exist"):
        parse_gguf_spec(f"stories={tmp_path / 'nope.gguf'}")
