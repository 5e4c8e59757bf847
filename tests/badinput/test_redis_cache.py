"""The Redis cache going wrong under a pytest run: down at the start, killed in the middle of
the run, holding entries it did not write. The tests pass (a cache never fails a call), the
run says so once, and a foreign entry is never served: it is a miss and is overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from redis_server import RedisServer

FAST = ["--llm-emulator-time-scale", "0.02", "-p", "no:cacheprovider"]

CALLS = """
import os
import signal
import socket
import time


def call(ollama_client, llm_calls, prompt="same"):
    ollama_client.generate(tier="fast", prompt=prompt, options={"seed": 1})
    return llm_calls[-1].cache


def test_one(ollama_client, llm_calls):
    assert call(ollama_client, llm_calls) == os.environ["FIRST"]


def test_two(ollama_client, llm_calls):
    if os.environ.get("KILL"):
        pid, port = (int(x) for x in os.environ["KILL"].split(":"))
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the port refuses
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            except OSError:
                break
            time.sleep(0.05)
    prompt = "other" if os.environ.get("KILL") else "same"  # a miss asks Redis
    assert call(ollama_client, llm_calls, prompt) == os.environ["SECOND"]
"""

DOWN = "llmperf: the response cache could not reach {url} (ConnectionError: *); the calls ran with the in-process cache only"


def test_redis_down_at_the_start(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(CALLS)
    monkeypatch.setenv("FIRST", "miss")
    monkeypatch.setenv("SECOND", "hit-memory")
    url = "redis://127.0.0.1:9/0"
    result = pytester.runpytest("--llm-cache", url, *FAST)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([DOWN.format(url=url)])
    assert result.stdout.str().count("could not reach") == 1
    assert "Traceback" not in result.stdout.str()


def test_redis_killed_in_the_middle_of_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytester.makepyfile(CALLS)
    with RedisServer(tmp_path) as server:
        assert server.process is not None
        monkeypatch.setenv("KILL", f"{server.process.pid}:{server.port}")
        monkeypatch.setenv("FIRST", "miss")
        monkeypatch.setenv("SECOND", "miss")
        result = pytester.runpytest("--llm-cache", server.url, *FAST)
        assert server.process.poll() is not None  # it was killed, not left running
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*could not reach " + server.url + "*"])
    assert result.stdout.str().count("could not reach") == 1
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    "garbage",
    [b"\xff\xfe not utf-8", b"not json", b'{"a": 1}', b"[]", b'[{"response": "x"}]'],
    ids=["not-utf8", "not-json", "an-object", "empty-list", "no-final-chunk"],
)
def test_redis_holding_entries_it_did_not_write(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, redis_url: str, garbage: bytes
) -> None:
    pytester.makepyfile(CALLS)
    namespace = f"garbage-{garbage.hex()[:12]}"
    args = ["--llm-cache", redis_url, "--llm-cache-namespace", namespace, *FAST]
    monkeypatch.setenv("FIRST", "miss")
    monkeypatch.setenv("SECOND", "hit-memory")
    pytester.runpytest(*args).assert_outcomes(passed=2)  # one entry, in Redis
    store = redis.Redis.from_url(redis_url)
    [key] = store.keys(f"{namespace}:*")
    store.set(key, garbage)

    result = pytester.runpytest(*args)  # a new process: its memory level is empty
    result.assert_outcomes(passed=2)  # the foreign entry was a miss, never an answer
    result.stdout.no_fnmatch_line("*Traceback*")
    assert store.get(key) != garbage  # the fresh answer replaced it

    monkeypatch.setenv("FIRST", "hit-redis")
    pytester.runpytest(*args).assert_outcomes(passed=2)
