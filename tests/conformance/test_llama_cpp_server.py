"""Our client and cassettes against a server we did not write: llama-cpp-python's own.

``python -m llama_cpp.server`` (FastAPI) serves the TinyStories model found through
``LLMPERF_STORIES_GGUF`` on a free loopback port. It has only the OpenAI routes, so the client
runs with ``api="openai"``, through both faces, whole and streamed; then a cassette recorded
against it replays with the server stopped. The tests skip with the reason when the model or
the ``llama-server`` extra is absent (under CI, where ``.ci/run`` installs both, they fail).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from client_faces import Face

from pytest_llmperf.observe.cassettes import CassetteSession, patched

MODEL = "stories"
PROMPT = "Once upon a time"
MESSAGES = [{"role": "user", "content": "Tell me a story"}]
# Greedy, so a stream and a whole answer, or a recording and its replay, say the same.
GREEDY = {"num_predict": 12, "temperature": 0, "seed": 1}


def missing(reason: str) -> NoReturn:
    """Skip, except under CI, where .ci/run installs what is missing (as conftest's does)."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


class LlamaServer:
    """``python -m llama_cpp.server`` on a free loopback port, its output in a log file."""

    def __init__(self, model: Path, log: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--model_alias",
            MODEL,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "512",
            "--n_threads",
            "1",
            "--verbose",
            "False",
        ]
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self._wait_ready(deadline=time.monotonic() + 60)

    def _wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = self.log.read_text(encoding="utf-8", errors="replace")
                if "ModuleNotFoundError" in said or "ImportError" in said:
                    last = said.strip().splitlines()[-1]
                    missing(
                        "llama-cpp-python's server is not installed "
                        f"(pip install 'pytest-llmperf[llama-server]'): {last}"
                    )
                pytest.fail(f"llama_cpp.server exited with {self.process.returncode}: {said}")
            try:
                if httpx.get(self.url + "/v1/models", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"llama_cpp.server did not answer on {self.url} within 60 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def start_server(
    stories_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], LlamaServer]]:
    """``start_server()``: a llama_cpp.server of its own; every one stops at test end."""
    started: list[LlamaServer] = []

    def start() -> LlamaServer:
        log = tmp_path_factory.mktemp("llama-server") / "server.log"
        started.append(LlamaServer(stories_gguf, log))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def llama_server(stories_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the module's live tests; its URL."""
    server = LlamaServer(stories_gguf, tmp_path_factory.mktemp("llama-server") / "server.log")
    yield server.url
    server.stop()


def text(kind: str, answer: Any) -> str:
    return str(answer["response"] if kind == "generate" else answer["message"]["content"])


def texts(kind: str, chunks: list[Any]) -> list[str]:
    return [text(kind, chunk) for chunk in chunks]


def ask(client: Face, kind: str, *, stream: bool) -> list[Any]:
    """One generate or chat call; its chunks (a whole answer is one)."""
    if kind == "generate":
        result = client.generate(model=MODEL, prompt=PROMPT, options=GREEDY, stream=stream)
    else:
        result = client.chat(model=MODEL, messages=MESSAGES, options=GREEDY, stream=stream)
    return list(result) if stream else [result]


@pytest.mark.parametrize("kind", ["generate", "chat"])
def test_whole_and_streamed_answers_agree_and_are_measured(
    face: Callable[..., Face], llama_server: str, kind: str
) -> None:
    client = face(host=llama_server, api="openai", cache=None)
    [whole] = ask(client, kind, stream=False)
    chunks = ask(client, kind, stream=True)
    assert whole["done"] and whole["done_reason"] == "length"
    assert whole["eval_count"] == GREEDY["num_predict"] and whole["prompt_eval_count"] > 0
    assert text(kind, whole).strip()
    assert "".join(texts(kind, chunks)) == text(kind, whole)
    assert chunks[-1]["done"] and not any(c["done"] for c in chunks[:-1])
    whole_record, stream_record = client.records
    route = "/v1/completions" if kind == "generate" else "/v1/chat/completions"
    assert (whole_record.route, whole_record.outcome, whole_record.stream) == (route, "ok", False)
    assert (stream_record.route, stream_record.outcome, stream_record.stream) == (route, "ok", True)
    assert stream_record.output_tokens == GREEDY["num_predict"]
    assert stream_record.ttft_s is not None and 0 < stream_record.ttft_s <= stream_record.total_s


def test_the_servers_models_are_listed(face: Callable[..., Face], llama_server: str) -> None:
    client = face(host=llama_server, api="openai")
    assert [m["name"] for m in client.list()["models"]] == [MODEL]


def test_a_recording_replays_with_the_server_stopped(
    face: Callable[..., Face], start_server: Callable[[], LlamaServer], tmp_path: Path
) -> None:
    server = start_server()
    client = face(host=server.url, api="openai", cache=None)
    cassette = tmp_path / "llama-server.yaml"
    calls = [(kind, stream) for kind in ("generate", "chat") for stream in (False, True)]
    with patched(CassetteSession(cassette, "once")) as recording:
        live = [ask(client, kind, stream=stream) for kind, stream in calls]
    recording.save(passed=True)
    assert len(recording.recorded) == len(calls)
    server.stop()

    for _ in range(2):
        with patched(CassetteSession(cassette, "none", timing=0.0)) as replaying:
            replayed = [ask(client, kind, stream=stream) for kind, stream in calls]
        assert len(replaying.replayed) == len(calls)
        assert [texts(k, r) for (k, _), r in zip(calls, replayed, strict=True)] == [
            texts(k, r) for (k, _), r in zip(calls, live, strict=True)
        ]
    recorded, first, second = (
        client.records[i : i + len(calls)] for i in (0, len(calls), 2 * len(calls))
    )
    assert [r.outcome for r in first + second] == ["ok"] * 2 * len(calls)
    assert {r.timing for r in first + second} == {"recorded"}
    for live_call, replay, again in zip(recorded, first, second, strict=True):
        assert replay.output_tokens == again.output_tokens == live_call.output_tokens
        # judged on the times the cassette kept (from the transport's send, so within the
        # client's own), not on how fast the replay ran: every replay says the same
        assert replay.ttft_s == again.ttft_s
        assert replay.total_s == again.total_s
        if live_call.stream:
            assert 0 < replay.ttft_s <= live_call.ttft_s
