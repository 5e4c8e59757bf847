"""The real-model backend: stories260K.gguf through llama.cpp behind the Ollama API.

These tests need the model file (LLMPERF_STORIES_GGUF, default ../shared/models/) and
llama-cpp-python (the ``llama`` extra); they skip with the reason when either is absent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
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


# --- where the model runs: on the event loop's thread, or in a worker ---------------------


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The threads the model ran in a worker on (none when it ran on the loop's thread)."""
    from pytest_llmperf.emulator import llamacpp

    seen: list[str] = []
    work = llamacpp.LlamaCppBackend._work

    def spy(self: LlamaCppBackend, *args: Any) -> None:
        seen.append(threading.current_thread().name)
        work(self, *args)

    monkeypatch.setattr(llamacpp.LlamaCppBackend, "_work", spy)
    return seen


def run_model(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """From the next request on, run the model inline (as fast steps do) or in a worker."""
    from pytest_llmperf.emulator import llamacpp

    monkeypatch.setattr(llamacpp, "INLINE_STEP_S", 60.0 if where == "inline" else 0.0)


@pytest.fixture(params=["inline", "worker"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    run_model(monkeypatch, request.param)
    return str(request.param)


def test_inline_and_in_a_worker_the_same_story(
    real: ollama.Client, workers: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    options = {"num_predict": 48, "seed": 5, "temperature": 0.0}
    real.generate("stories", "Tom and Sue", options=options)  # load; the steps are timed
    assert len(workers) == 1  # a model not timed yet runs in a worker
    run_model(monkeypatch, "inline")
    chunks = list(real.generate("stories", "Tom and Sue", options=options, stream=True))
    assert len(workers) == 1
    run_model(monkeypatch, "worker")
    in_worker = real.generate("stories", "Tom and Sue", options=options)
    assert len(workers) == 2
    assert "".join(c.response or "" for c in chunks) == in_worker.response
    assert chunks[-1].eval_count == in_worker.eval_count == 48
    assert "llmperf-emulator" not in workers  # never the server's own thread


class SlowToClose:
    """A generation's steps whose clean-up takes a while (as on a busy machine)."""

    def __init__(self, steps: Iterator[Any]) -> None:
        self.steps = steps

    def __iter__(self) -> SlowToClose:
        return self

    def __next__(self) -> Any:
        return next(self.steps)

    def close(self) -> None:
        time.sleep(0.3)
        self.steps.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("first", ["inline", "worker"])
def test_the_next_request_finds_the_model_free(
    real: ollama.Client, workers: list[str], monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    """The model is released before its answer's last line goes out, so the client's next
    request runs inline (a request that found it busy would run in a worker)."""
    from pytest_llmperf.emulator import llamacpp

    options = {"num_predict": 8, "seed": 5}
    real.generate("stories", "Tom and Sue", options=options)  # load; the steps are timed
    steps = llamacpp.generation_steps
    monkeypatch.setattr(llamacpp, "generation_steps", lambda *a: SlowToClose(steps(*a)))
    run_model(monkeypatch, first)
    real.generate("stories", "Tom and Sue", options=options)
    before = len(workers)
    run_model(monkeypatch, "inline")
    assert real.generate("stories", "Tom and Sue", options=options).eval_count == 8
    assert len(workers) == before


def test_a_client_that_hangs_up_frees_the_real_model(real: ollama.Client, mode: str) -> None:
    """Stalled after its first token, then abandoned: the next request is served at once."""
    real.generate("stories", "Lily", options={"num_predict": 4})  # load; the steps are timed
    url = str(real._client.base_url)
    stalled = {"X-Llmperf-Fault": "stall; after=1; seconds=20"}
    body = {"model": "stories", "prompt": "Lily", "options": {"num_predict": 64}}
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.stream(
            "POST", url + "/api/generate", json=body, headers=stalled, timeout=1.0
        ) as response,
    ):
        for _line in response.iter_lines():
            pass
    gave_up = time.monotonic()
    answer = real.generate("stories", "Lily", options={"num_predict": 8})
    assert answer.eval_count == 8
    assert time.monotonic() - gave_up < 10  # the stall had 19 s to go


def test_serving_writes_nothing_on_stderr_per_request(
    real: ollama.Client, capfd: pytest.CaptureFixture[str]
) -> None:
    real.generate("stories", "Once upon a time", options={"num_predict": 4})
    capfd.readouterr()
    for _ in range(3):
        real.generate("stories", "Once upon a time", options={"num_predict": 4})
    assert capfd.readouterr().err == ""


def test_threads_default_to_half_the_cores(
    monkeypatch: pytest.MonkeyPatch, stories_gguf: Path
) -> None:
    from pytest_llmperf.emulator import llamacpp

    for cores, threads in ((1, 1), (2, 1), (8, 4), (None, 1)):
        monkeypatch.setattr(llamacpp.os, "cpu_count", lambda cores=cores: cores)
        assert LlamaCppBackend("stories", stories_gguf).threads == threads
    assert LlamaCppBackend("stories", stories_gguf, threads=3).threads == 3


def test_threads_must_be_positive(stories_gguf: Path) -> None:
    with pytest.raises(ConfigurationError, match="threads for 'stories' must be at least 1"):
        LlamaCppBackend("stories", stories_gguf, threads=0)


def test_serve_passes_the_thread_count(stories_gguf: Path) -> None:
    from pytest_llmperf.emulator.runner import build_app

    app = build_app(gguf=[f"stories={stories_gguf}"], gguf_threads=1)
    backend = app.engine.backends["stories:latest"]
    assert isinstance(backend, LlamaCppBackend)
    assert backend.threads == 1
