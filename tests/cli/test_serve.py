"""``llmperf serve`` as a user runs it: a separate process on a loopback port."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest

LISTENING = "llmperf emulator listening on "


class Served:
    def __init__(self, *args: str) -> None:
        command = [sys.executable, "-m", "pytest_llmperf.cli", "serve", "--port", "0", *args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith(LISTENING):
            self.stop()
            raise AssertionError(
                f"llmperf serve did not start: {line!r} {self.process.stderr.read()!r}"
            )  # type: ignore[union-attr]
        self.url = line[len(LISTENING) :].strip()

    def stop(self) -> None:
        self.process.terminate()
        self.process.communicate(timeout=10)


@pytest.fixture
def served() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for server in started:
        server.stop()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_llmperf.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_serve_answers_the_official_client(served: list[Served]) -> None:
    served.append(server := Served("--time-scale", "0.01"))
    with ollama.Client(host=server.url) as client:
        answer = client.generate("llama3.2:1b", "Hello", options={"num_predict": 4})
        assert answer.eval_count == 4
        assert [m.model for m in client.list().models] == [
            "llama3.2:1b",
            "llama3.2:3b",
            "llama3:8b",
        ]


def test_serve_with_the_real_model(served: list[Served], stories_gguf: Path) -> None:
    served.append(server := Served("--gguf", f"stories={stories_gguf}"))
    with ollama.Client(host=server.url) as client:
        chunks = list(
            client.generate("stories", "Once upon a time", stream=True, options={"num_predict": 32})
        )
    text = "".join(c.response or "" for c in chunks)
    assert len(text.split()) >= 5
    assert chunks[-1].eval_count and chunks[-1].eval_count > 5
    assert chunks[-1].eval_duration and chunks[-1].prompt_eval_duration and chunks[-1].load_duration


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port))
    assert result.returncode == 2
    assert (
        f"llmperf: error: cannot listen on 127.0.0.1:{port}: Address already in use; choose another --port"
        in result.stderr
    )


def test_missing_profiles_and_bad_gguf_are_clear_errors(tmp_path: Path) -> None:
    missing = run("serve", "--port", "0", "--profiles", str(tmp_path / "none.toml"))
    assert missing.returncode == 2
    assert "does not exist; pass an existing TOML file" in missing.stderr
    bad = run("serve", "--port", "0", "--gguf", "nothing")
    assert bad.returncode == 2
    assert "--gguf takes NAME=PATH" in bad.stderr


def test_bad_numbers_are_refused_by_argparse() -> None:
    result = run("serve", "--num-parallel", "0")
    assert result.returncode == 2
    assert "must be a whole number >= 1, got '0'" in result.stderr


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ("--port", "99999"),
            "llmperf serve: error: argument --port: must be a port number from 0 to 65535 (0: any free port), got '99999'",
        ),
        (
            ("--port", "http"),
            "llmperf serve: error: argument --port: must be a port number from 0 to 65535 (0: any free port), got 'http'",
        ),
        (
            ("--time-scale", "fast"),
            "llmperf serve: error: argument --time-scale: must be a number >= 0 (1: the profiles' delays, 0.01: 100x faster), got 'fast'",
        ),
    ],
)
def test_a_bad_number_is_one_line_naming_the_value_and_the_range(
    args: tuple[str, ...], error: str
) -> None:
    result = run("serve", *args)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == error
    assert "Traceback" not in result.stderr
