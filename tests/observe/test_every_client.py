"""Every LLM call a test makes is measured and judged, whatever client makes it.

A user's suite calls the emulator on a real port through the clients people use (the
official ``ollama`` client sync and async, streamed and not; ``openai`` on ``/v1``;
LangChain's ``ChatOllama``; llama-index's ``Ollama``; raw httpx; ``requests``). Each test
with a budget it cannot meet fails with the budget message, a generous one passes, and the
records match what the emulator served, live and replayed offline from cassettes.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from noise import slack

from pytest_llmperf import EmulatorServer
from pytest_llmperf.emulator import Catalogue


# The cassette takes a chunk's time as it leaves the network, the measurement as it reaches
# the client, a few statements later; the emulator's thread in this process may hold the
# GIL in between, for up to a switch interval (5 ms), and a loaded machine adds its lateness.
def tolerance() -> float:
    return slack(0.002 + sys.getswitchinterval(), 0.03)


APP = """
import asyncio
import gc
import os
import warnings

import httpx
import ollama
import openai
import pytest
import requests

pytestmark = pytest.mark.llm_cassette
URL = os.environ["APP_LLM_URL"]


@pytest.fixture(autouse=True)
def _drop_leaked_connections():
    # LangChain's and llama-index's clients are never closed: collect them after each test
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()

MODEL = "llama3.2:1b"
PROMPT = "Why is the sky blue?"
MESSAGES = [{"role": "user", "content": PROMPT}]


def official_whole():
    with ollama.Client(host=URL) as client:
        return client.generate(model=MODEL, prompt=PROMPT).response


def official_stream():
    with ollama.Client(host=URL) as client:
        stream = client.chat(model=MODEL, messages=MESSAGES, stream=True)
        return "".join(chunk.message.content for chunk in stream)


def official_async_whole():
    async def run():
        async with ollama.AsyncClient(host=URL) as client:
            return (await client.chat(model=MODEL, messages=MESSAGES)).message.content

    return asyncio.run(run())


def official_async_stream():
    async def run():
        async with ollama.AsyncClient(host=URL) as client:
            stream = await client.generate(model=MODEL, prompt=PROMPT, stream=True)
            return "".join([chunk.response async for chunk in stream])

    return asyncio.run(run())


def openai_whole():
    with openai.OpenAI(base_url=URL + "/v1", api_key="none", max_retries=0) as client:
        answer = client.chat.completions.create(model=MODEL, messages=MESSAGES)
        return answer.choices[0].message.content


def openai_stream():
    with openai.OpenAI(base_url=URL + "/v1", api_key="none", max_retries=0) as client:
        stream = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def langchain():
    from langchain_ollama import ChatOllama

    return ChatOllama(model=MODEL, base_url=URL).invoke(PROMPT).content


def llama_index():
    from llama_index.llms.ollama import Ollama

    return Ollama(model=MODEL, base_url=URL, request_timeout=30).complete(PROMPT).text


def raw_httpx():
    body = {"model": MODEL, "prompt": PROMPT, "stream": False}
    return httpx.post(URL + "/api/generate", json=body).json()["response"]


def requests_whole():
    body = {"model": MODEL, "messages": MESSAGES, "stream": False}
    return requests.post(URL + "/api/chat", json=body, timeout=30).json()["message"]["content"]


def requests_stream():
    body = {"model": MODEL, "prompt": PROMPT}
    with requests.post(URL + "/api/generate", json=body, stream=True, timeout=30) as answer:
        return [line for line in answer.iter_lines() if line]


CLIENTS = {
    name: f
    for name, f in list(globals().items())
    if callable(f) and getattr(f, "__module__", "") == __name__ and not name.startswith("_")
}


@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.llm_budget(total=0.000001)
def test_tight(client):
    assert CLIENTS[client]()


@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.llm_budget(total=60, calls=1)
def test_generous(client, llm_calls):
    assert CLIENTS[client]()
    assert len(llm_calls) == 1
"""

CLIENTS = [
    "langchain",
    "llama_index",
    "official_async_stream",
    "official_async_whole",
    "official_stream",
    "official_whole",
    "openai_stream",
    "openai_whole",
    "raw_httpx",
    "requests_stream",
    "requests_whole",
]
OPTIONS = ["-p", "no:cacheprovider", "--llm-report", "report.json"]
# LangChain's and llama-index's clients keep their connections until collected: not ours
LEAKS = ["-W", "ignore::pytest.PytestUnraisableExceptionWarning"]


@pytest.fixture
def app(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    pytester.makepyfile(test_app=APP)

    def run(url: str, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
        monkeypatch.setenv("APP_LLM_URL", url)
        result = pytester.runpytest(*OPTIONS, *LEAKS, *args)
        report = json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))
        return result, report

    return run


def _calls(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {test["nodeid"].split("::")[1]: test["calls"] for test in report["tests"]}


def _breakdowns_add_up(lines: list[str], skip: str = "") -> None:
    """Each violation's breakdown sums to the call's total (within 5%, and rounding)."""
    seen = 0
    test = ""
    ends = [n for n, line in enumerate(lines) if "short test summary info" in line]
    lines = lines[: ends[0]] if ends else lines  # (under CI the summary repeats each message)
    for line, parts in itertools.pairwise(lines):
        test = line if line.startswith("LLM budget exceeded in") else test
        found = re.search(r"\): total ([0-9.e-]+) s > budget", line)
        if not found or (skip and skip in test):
            seen += bool(found)
            continue
        total = float(found.group(1))
        summed = sum(float(x) for x in re.findall(r" ([0-9.e-]+) s", parts))
        assert summed == pytest.approx(total, rel=0.05, abs=0.001), (line, parts)
        seen += 1
    assert seen == len(CLIENTS)


def _same_call(call: dict[str, Any]) -> tuple[Any, ...]:
    return (call["model"], call["route"], call["stream"], call["request_digest"], call["outcome"])


def test_every_client_is_measured_judged_and_replayed(
    app: Callable[..., Any], serve: Callable[..., EmulatorServer], catalogue: Catalogue
) -> None:
    # slow enough that 5% of a call is well above a busy machine's scheduling noise
    server = serve(catalogue.with_server(time_scale=0.25))
    live, report = app(server.url, "--llm-record-mode", "once")
    live.assert_outcomes(failed=len(CLIENTS), passed=len(CLIENTS))
    for client in CLIENTS:  # the budget message: the call, its figure, its breakdown, a hint
        live.stdout.fnmatch_lines(
            [
                f"*LLM budget exceeded in test_app.py::test_tight[[]{client}[]] (1 violation):",
                "  call 1 of 1 (/*, llama3.2:1b*): total * s > budget 1e-06 s",
                "    *",
                "hint: *",
            ]
        )
    _breakdowns_add_up(live.outlines)
    calls = _calls(report)
    assert {name: len(found) for name, found in calls.items()} == {
        f"test_{kind}[{client}]": 1 for kind in ("tight", "generous") for client in CLIENTS
    }
    served = server.app.engine.requests_served
    assert report["summary"]["calls"] == served == 2 * len(CLIENTS)
    table = next(line for line in live.outlines if line.startswith("llama3.2:1b"))
    assert table.split()[1] == str(served)  # the terminal table holds the same calls
    every = [call for found in calls.values() for call in found]
    assert all(call["timing"] == "live" and call["outcome"] == "ok" for call in every)
    streamed = [call for call in every if call["stream"]]
    assert streamed and all(call["ttft_s"] is not None for call in streamed)
    assert all(call["output_tokens"] for call in every)
    # (the openai client is on httpx's fork httpx2 from openai 2 on)
    assert (
        {"httpx", "requests"}
        <= {call["source"] for call in every}
        <= {
            "httpx",
            "httpx2",
            "requests",
        }
    )

    server.stop()  # offline: the cassettes alone answer
    replay, replayed = app(server.url, "--llm-record-mode", "none")
    replay.assert_outcomes(failed=len(CLIENTS), passed=len(CLIENTS))
    # vcrpy's cassettes (requests) replay at once and keep no timing: their totals are the
    # replay's own, shorter than the server's statistics recorded in the answer
    _breakdowns_add_up(replay.outlines, skip="[requests_")
    again = _calls(replayed)
    assert {name: [_same_call(c) for c in found] for name, found in again.items()} == {
        name: [_same_call(c) for c in found] for name, found in calls.items()
    }
    close = tolerance()
    for name, found in again.items():
        (was,), (now,) = calls[name], found
        if now["source"] == "requests":  # vcrpy's cassettes keep no timing
            continue
        assert now["timing"] == "recorded"
        assert now["total_s"] == pytest.approx(was["total_s"], rel=0.05, abs=close), name
        if was["ttft_s"] is not None:
            assert now["ttft_s"] == pytest.approx(was["ttft_s"], rel=0.05, abs=close), name

    spread, parallel = app(server.url, "--llm-record-mode", "none", "-n", "2")
    spread.assert_outcomes(failed=len(CLIENTS), passed=len(CLIENTS))
    assert {name: [_same_call(c) for c in found] for name, found in _calls(parallel).items()} == {
        name: [_same_call(c) for c in found] for name, found in again.items()
    }


OWN = """
def test_ours(ollama_client, llm_calls):
    for _ in range(2):
        assert ollama_client.generate(tier="fast", prompt="hi", options={"seed": 1}).response
    assert [(c.tier, c.cache, c.source) for c in llm_calls] == [
        ("fast", "miss", "llmperf"), ("fast", "hit-memory", "llmperf")
    ]
"""


def test_our_clients_calls_appear_once_each_with_tier_and_cache(
    pytester: pytest.Pytester, serve: Callable[..., EmulatorServer], catalogue: Catalogue
) -> None:
    server = serve(catalogue)
    pytester.makepyfile(test_own=OWN)
    result = pytester.runpytest(*OPTIONS, "--llm-host", server.url)
    result.assert_outcomes(passed=1)
    report = json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))
    assert report["summary"]["calls"] == 2
    assert server.app.engine.requests_served == 1  # the second was the cache's


def test_measure_own_leaves_other_clients_out(
    app: Callable[..., Any], serve: Callable[..., EmulatorServer], catalogue: Catalogue
) -> None:
    server = serve(catalogue)
    result, report = app(
        server.url, "--llm-measure", "own", "--llm-record-mode", "all", "-k", "generous"
    )
    # calls=1 is not met: nothing is measured, so the generous budgets see no call at all
    result.assert_outcomes(failed=len(CLIENTS))
    assert report["summary"]["calls"] == 0


def test_a_test_or_a_block_can_be_left_out(
    pytester: pytest.Pytester, serve: Callable[..., EmulatorServer], catalogue: Catalogue
) -> None:
    server = serve(catalogue)
    pytester.makepyfile(
        test_out=f"""
        import ollama
        import pytest
        from pytest_llmperf import not_measured

        URL = {server.url!r}

        def ask():
            with ollama.Client(host=URL) as client:
                return client.generate(model="llama3.2:1b", prompt="hi").response

        @pytest.mark.llm_unmeasured
        def test_left_out(llm_calls):
            assert ask()
            assert len(llm_calls) == 0

        def test_block_left_out(llm_calls):
            with not_measured():
                assert ask()
            assert ask()
            assert len(llm_calls) == 1
        """
    )
    result = pytester.runpytest(*OPTIONS)
    result.assert_outcomes(passed=2)
    report = json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))
    assert report["summary"]["calls"] == 1
    assert server.app.engine.requests_served == 3


def test_calls_outside_any_test_go_to_the_session(
    pytester: pytest.Pytester, serve: Callable[..., EmulatorServer], catalogue: Catalogue
) -> None:
    server = serve(catalogue)
    pytester.makeconftest(
        f"""
        import ollama
        import pytest

        URL = {server.url!r}
        CLIENT = ollama.Client(host=URL)  # built at import time, before any test
        CLIENT.generate(model="llama3.2:1b", prompt="at import")

        @pytest.fixture(scope="session")
        def warm():
            CLIENT.generate(model="llama3.2:3b", prompt="", keep_alive="5m")

        def pytest_unconfigure():
            CLIENT.close()
        """
    )
    pytester.makepyfile(
        test_s="""
        from conftest import CLIENT

        def test_one(warm, llm_calls):
            CLIENT.generate(model="llama3.2:1b", prompt="in the test")
            assert len(llm_calls) == 1

        def test_two(warm, llm_calls):
            assert len(llm_calls) == 0
        """
    )
    result = pytester.runpytest(*OPTIONS)
    result.assert_outcomes(passed=2)
    report = json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))
    assert [c["model"] for c in report["session"]["calls"]] == ["llama3.2:1b", "llama3.2:3b"]
    assert report["summary"]["session_calls"] == 2
    assert report["summary"]["calls"] == 1
    result.stdout.fnmatch_lines(["*1 LLM calls (and 2 outside any test)*"])


def test_a_rerun_test_is_judged_on_its_last_attempt(
    pytester: pytest.Pytester, serve: Callable[..., EmulatorServer], catalogue: Catalogue
) -> None:
    pytest.importorskip("pytest_rerunfailures")
    server = serve(catalogue)
    marker = pytester.path / "first-attempt-done"
    pytester.makepyfile(
        test_flaky=f"""
        import pathlib
        import ollama
        import pytest

        URL = {server.url!r}
        MARK = pathlib.Path({str(marker)!r})

        @pytest.mark.llm_budget(calls=1)
        def test_flaky(llm_calls):
            with ollama.Client(host=URL) as client:
                if not MARK.exists():  # the first attempt makes two calls, then fails
                    MARK.write_text("x")
                    client.generate(model="llama3.2:1b", prompt="one")
                    client.generate(model="llama3.2:1b", prompt="two")
                    raise AssertionError("flaky")
                client.generate(model="llama3.2:1b", prompt="three")
            assert len(llm_calls) == 1
        """
    )
    result = pytester.runpytest(*OPTIONS, "-p", "rerunfailures", "--reruns", "1")
    outcomes = result.parseoutcomes()
    assert (outcomes.get("passed"), outcomes.get("rerun")) == (1, 1), outcomes
    report = json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))
    (test,) = report["tests"]
    assert (test["outcome"], test["attempts"], len(test["calls"])) == ("passed", 2, 1)
    assert report["summary"]["calls"] == 1
    assert server.app.engine.requests_served == 3
    assert Path(marker).exists()


OWN_RECORDED = """
import pytest

@pytest.mark.llm_cassette
def test_first_calls(ollama_client):
    ollama_client.generate(tier="fast", prompt="one")
    list(ollama_client.chat(tier="fast", messages=[{"role": "user", "content": "x"}], stream=True))
"""


def test_our_clients_replayed_calls_keep_the_times_measured_live(
    pytester: pytest.Pytester, serve: Callable[..., EmulatorServer], catalogue: Catalogue
) -> None:
    """The first call of a test makes the client's HTTP client: not part of the call's time."""
    server = serve(catalogue.with_server(time_scale=0.25))
    pytester.makepyfile(test_own=OWN_RECORDED)
    recorded = pytester.runpytest(*OPTIONS, "--llm-host", server.url, "--llm-record-mode", "once")
    recorded.assert_outcomes(passed=1)
    live = _calls(json.loads((pytester.path / "report.json").read_text(encoding="utf-8")))
    server.stop()
    pytester.runpytest(*OPTIONS, "--llm-host", server.url).assert_outcomes(passed=1)
    again = _calls(json.loads((pytester.path / "report.json").read_text(encoding="utf-8")))
    close = tolerance()
    for was, now in zip(live["test_first_calls"], again["test_first_calls"], strict=True):
        assert (was["timing"], now["timing"]) == ("live", "recorded")
        assert now["total_s"] == pytest.approx(was["total_s"], rel=0.05, abs=close)
        assert now["ttft_s"] == pytest.approx(was["ttft_s"], rel=0.05, abs=close)


def test_calls_from_threads_and_tasks_the_test_started_are_its_own(
    pytester: pytest.Pytester, serve: Callable[..., EmulatorServer], catalogue: Catalogue
) -> None:
    server = serve(catalogue)
    pytester.makepyfile(
        test_threads=f"""
        import asyncio
        import threading

        import ollama

        URL = {server.url!r}

        def ask():
            with ollama.Client(host=URL) as client:
                client.generate(model="llama3.2:1b", prompt="from a thread")

        async def ask_async():
            async with ollama.AsyncClient(host=URL) as client:
                await asyncio.gather(
                    *(client.generate(model="llama3.2:1b", prompt=str(n)) for n in range(3))
                )

        def test_threads_and_tasks(llm_calls):
            threads = [threading.Thread(target=ask) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            asyncio.run(ask_async())
            assert len(llm_calls) == 5

        def test_next(llm_calls):
            assert len(llm_calls) == 0
        """
    )
    result = pytester.runpytest(*OPTIONS)
    result.assert_outcomes(passed=2)
    assert server.app.engine.requests_served == 5
