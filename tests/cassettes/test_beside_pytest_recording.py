"""Our cassettes beside pytest-recording's: on the same test, each keeps its own traffic."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from pytest_llmperf import EmulatorServer
from pytest_llmperf.emulator import Catalogue

pytest.importorskip("pytest_recording")

BOTH = """
import os

import ollama
import pytest

URL = os.environ["APP_LLM_URL"]


@pytest.mark.vcr
@pytest.mark.llm_cassette
def test_both():
    with ollama.Client(host=URL) as client:
        assert client.generate(model="llama3.2:1b", prompt="Why is the sky blue?").response
        assert [m.model for m in client.list().models]  # /api/tags: not an LLM call
"""
OPTIONS = ["-p", "no:cacheprovider", "--llm-report", "report.json"]


def test_vcr_and_llm_cassette_on_one_test_record_and_replay_offline_each_its_own(
    pytester: pytest.Pytester,
    serve: Callable[..., EmulatorServer],
    catalogue: Catalogue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = serve(catalogue.with_server(time_scale=0.25))
    monkeypatch.setenv("APP_LLM_URL", server.url)
    pytester.makepyfile(test_app=BOTH)  # at the rootdir: both plugins' default paths meet
    record = ["--record-mode", "once", "--llm-record-mode", "once"]
    pytester.runpytest(*OPTIONS, *record).assert_outcomes(passed=1)
    live = json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))
    folder = pytester.path / "cassettes" / "test_app"
    ours, theirs = folder / "test_both.llm.yaml", folder / "test_both.yaml"
    ours_text, theirs_text = ours.read_text(encoding="utf-8"), theirs.read_text(encoding="utf-8")
    assert "/api/generate" in ours_text and "/api/tags" not in ours_text
    assert "/api/tags" in theirs_text and "/api/generate" not in theirs_text

    server.stop()  # offline
    replay = ["--record-mode", "none", "--llm-record-mode", "none"]
    pytester.runpytest(*OPTIONS, *replay).assert_outcomes(passed=1)
    again = json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))
    (was,), (now,) = live["tests"][0]["calls"], again["tests"][0]["calls"]
    assert (was["timing"], now["timing"]) == ("live", "recorded")  # our timing is kept
    assert now["total_s"] == pytest.approx(was["total_s"], rel=0.05)
    assert ours.read_text(encoding="utf-8") == ours_text  # both intact
    assert theirs.read_text(encoding="utf-8") == theirs_text


EMULATED = """
import ollama


def test_on_the_embedded_emulator(ollama_emulator, llm_calls):
    with ollama.Client(host=ollama_emulator.url) as client:
        assert client.generate(model="llama3.2:1b", prompt="hi").response
    assert len(llm_calls) == 1


def test_the_rest_stays_blocked():
    import socket

    with socket.socket() as sock:
        try:
            sock.connect(("192.0.2.1", 80))
        except RuntimeError as exc:
            assert "Network is disabled" in str(exc)
        else:
            raise AssertionError("not blocked")
"""


def test_block_network_with_the_embedded_emulator_allowed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_emulated=EMULATED)
    blocked = ["--block-network", "--llm-emulator-time-scale", "0.02"]
    result = pytester.runpytest(*OPTIONS, *blocked, "--allowed-hosts", "127.0.0.1")
    result.assert_outcomes(passed=2)


def test_block_network_without_it_says_how_to_allow_the_emulator(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_ours="def test_ours(ollama_client):\n"
        "    ollama_client.generate(tier='fast', prompt='hi')\n"
    )
    # in a process of its own: httpcore leaves the socket whose connect was refused to the
    # collector, and this process must not meet it in a later test
    result = pytester.runpytest_subprocess(
        *OPTIONS, "--block-network", "--llm-emulator-time-scale", "0.02"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*pytest-recording's --block-network refused the connection to 127.0.0.1*--allowed-hosts*"]
    )
