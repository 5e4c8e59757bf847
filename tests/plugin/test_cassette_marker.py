"""The llm_cassette marker and fixture, the record and replay options, through pytester."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FAST = ["--llm-emulator-time-scale", "0.02", "-p", "no:cacheprovider"]

INNER = """
import pytest

@pytest.mark.llm_cassette
def test_story(ollama_client, llm_cassette):
    chunks = list(ollama_client.generate(tier="fast", prompt="a story", stream=True))
    assert chunks[-1].done
"""


def test_record_once_then_replay_with_no_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_tales=INNER)
    pytester.runpytest("--llm-record-mode", "once", *FAST).assert_outcomes(passed=1)
    cassette = pytester.path / "cassettes" / "test_tales" / "test_story.yaml"
    assert cassette.is_file()
    # replay: the client points at a port nobody listens on; the cassette answers
    result = pytester.runpytest("--llm-host", "127.0.0.1:9", *FAST)
    result.assert_outcomes(passed=1)


def test_replay_is_the_default_and_an_unrecorded_test_fails_clearly(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_tales=INNER)
    result = pytester.runpytest("--llm-host", "127.0.0.1:9", *FAST)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*CassetteMismatchError: no recorded answer in cassette *test_tales/test_story.yaml*",
            "*record it with --llm-record-mode new_episodes*",
        ]
    )


def test_the_fixture_shows_what_was_recorded_and_replayed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_seen="""
        import os

        def test_seen(ollama_client, llm_cassette):
            ollama_client.generate(tier="fast", prompt="x", options={"seed": 2})
            expected = os.environ["EXPECTED"]
            counts = (len(llm_cassette.recorded), len(llm_cassette.replayed))
            assert counts == ((1, 0) if expected == "recorded" else (0, 1))
        """
    )
    os.environ["EXPECTED"] = "recorded"
    try:
        pytester.runpytest(
            "--llm-record-mode", "once", "--llm-cache", "off", *FAST
        ).assert_outcomes(passed=1)
        os.environ["EXPECTED"] = "replayed"
        pytester.runpytest("--llm-cache", "off", *FAST).assert_outcomes(passed=1)
    finally:
        del os.environ["EXPECTED"]


def test_a_named_cassette_and_marker_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm_cassette("shared/story.json", record_mode="once", timing="recorded")
        def test_named(ollama_client, llm_cassette):
            ollama_client.generate(tier="fast", prompt="x")
            assert llm_cassette.path.name == "story.json"
            assert llm_cassette.timing == 1.0
        """
    )
    pytester.runpytest(*FAST).assert_outcomes(passed=1)
    assert (pytester.path / "cassettes" / "shared" / "story.json").is_file()


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            "llm_cassette(record_mode='sometimes')",
            "record_mode='sometimes': choose one of none, once",
        ),
        ("llm_cassette(timing='slowly')", "timing='slowly': choose instant, recorded or a factor"),
        ("llm_cassette(path='x')", "unknown argument 'path'"),
    ],
)
def test_a_bad_marker_fails_at_collection(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(f"import pytest\n\n@pytest.mark.{marker}\ndef test_x():\n    pass\n")
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*marker llm_cassette on *test_x: {message}*"])


def test_a_failing_rewrite_keeps_the_old_cassette(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_tales=INNER)
    pytester.runpytest("--llm-record-mode", "once", *FAST).assert_outcomes(passed=1)
    cassette = pytester.path / "cassettes" / "test_tales" / "test_story.yaml"
    before = cassette.read_bytes()
    result = pytester.runpytest(
        "--llm-record-mode", "rewrite", "--llm-host", "127.0.0.1:9", "--llm-retries", "0", *FAST
    )
    result.assert_outcomes(failed=1)
    assert cassette.read_bytes() == before


SLOW_RECORDING = """
import time
import pytest

@pytest.mark.llm_cassette
def test_story(ollama_client):
    list(ollama_client.generate(tier="fast", prompt="a new story", stream=True))
    print("RECORDED", flush=True)
    time.sleep(60)
"""


def test_killing_a_recording_run_leaves_the_old_cassette(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_tales=INNER)
    pytester.runpytest("--llm-record-mode", "once", *FAST).assert_outcomes(passed=1)
    cassette = pytester.path / "cassettes" / "test_tales" / "test_story.yaml"
    before = cassette.read_bytes()
    Path(pytester.path / "test_tales.py").write_text(SLOW_RECORDING, encoding="utf-8")
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-s",
            "-p",
            "no:asyncio",
            "--llm-record-mode",
            "all",
            *FAST,
        ],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    assert run.stdout is not None
    recorded = False
    for line in run.stdout:
        recorded = "RECORDED" in line
        if recorded or time.monotonic() > deadline:
            break
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    run.stdout.close()
    assert recorded  # the run had recorded its interaction when it was killed
    assert cassette.read_bytes() == before
    assert not list(cassette.parent.glob(".*.tmp"))


def test_each_test_records_every_request_into_its_own_cassette(
    pytester: pytest.Pytester,
) -> None:
    # the same repeatable call in two same-named tests of two classes: with the cache on,
    # the second would be a cache hit and its cassette would miss the request
    pytester.makepyfile(
        test_pair="""
        import pytest

        def ask(client):
            client.generate(tier="fast", prompt="same", options={"seed": 1})

        @pytest.mark.llm_cassette
        class TestX:
            def test_c(self, ollama_client):
                ask(ollama_client)

        @pytest.mark.llm_cassette
        class TestY:
            def test_c(self, ollama_client):
                ask(ollama_client)
        """
    )
    pytester.runpytest("--llm-record-mode", "once", *FAST).assert_outcomes(passed=2)
    folder = pytester.path / "cassettes" / "test_pair"
    assert sorted(p.name for p in folder.iterdir()) == ["TestX.test_c.yaml", "TestY.test_c.yaml"]
    result = pytester.runpytest("test_pair.py::TestY", "--llm-host", "127.0.0.1:9", *FAST)
    result.assert_outcomes(passed=1)
