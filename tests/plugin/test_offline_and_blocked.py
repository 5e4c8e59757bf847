"""Offline means offline: a replay opens no socket, and --llm-block-network refuses every
connection but to the emulator and the allowed hosts, beside pytest-recording's block too.

Every address connected to here is on the loopback range: a guard that failed would reach
only this machine.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

FAST = ["--llm-emulator-time-scale", "0.02", "-p", "no:cacheprovider"]
# pytest-rerunfailures binds a socket of its own at startup: not ours to count
QUIET = [*FAST, "-p", "no:rerunfailures"]

SOCKETS_SEEN = """
import contextlib
import json
import sys

# urllib3 binds a socket to ('::1', 0) as it is imported, to learn whether IPv6 works: a probe,
# not a use of the network. Imported before the hook, wherever it would be imported later.
with contextlib.suppress(ImportError):
    import urllib3

SEEN = []


def _hook(event, args):
    if event in ("socket.bind", "socket.connect"):
        SEEN.append([event, repr(args[1])])


sys.addaudithook(_hook)


def pytest_unconfigure(config):
    with open("sockets.json", "w") as out:
        json.dump(SEEN, out)
"""
REPLAYED = """
import pytest

@pytest.mark.llm_cassette
def test_story(ollama_client, llm_cassette):
    assert ollama_client.generate(tier="fast", prompt="a story").response
    assert len(llm_cassette.replayed) + len(llm_cassette.recorded) == 1
"""


def sockets(pytester: pytest.Pytester, *args: str) -> list[list[str]]:
    pytester.runpytest_subprocess(*QUIET, *args).assert_outcomes(passed=1)
    seen: list[list[str]] = json.loads((pytester.path / "sockets.json").read_text("utf-8"))
    return seen


def test_a_replay_binds_and_connects_nothing(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SOCKETS_SEEN)
    pytester.makepyfile(test_tales=REPLAYED)
    recording = sockets(pytester, "--llm-record-mode", "once")
    assert [event for event, _ in recording] == ["socket.bind", "socket.connect"]  # emulator
    assert sockets(pytester) == []  # none mode: the cassette answers, no emulator starts
    assert sockets(pytester, "--llm-record-mode", "once") == []  # once, the cassette there


def test_a_test_that_asks_for_the_emulator_gets_it_in_none_mode(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(SOCKETS_SEEN)
    pytester.makepyfile(
        """
        def test_live(ollama_emulator, ollama_client):
            assert ollama_client.generate(tier="fast", prompt="hi").response
        """
    )
    seen = sockets(pytester)
    assert [event for event, _ in seen] == ["socket.bind", "socket.connect"]


@pytest.fixture
def listening() -> Iterator[int]:
    """A loopback port something listens on (not the emulator): the other host."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


CONNECTS = """
import asyncio
import socket

import pytest

PORT = {port}


def test_emulator_is_reachable(ollama_client):
    assert ollama_client.generate(tier="fast", prompt="hi").response


def test_other_host_sync():
    with socket.create_connection(("127.0.0.1", PORT), timeout=5):
        pass


def test_other_host_async():
    async def connect():
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
        writer.close()

    asyncio.run(connect())
"""


def test_the_block_refuses_other_hosts_naming_them_and_the_way_out(
    pytester: pytest.Pytester, listening: int
) -> None:
    pytester.makepyfile(test_net=CONNECTS.format(port=listening))
    result = pytester.runpytest(*FAST, "--llm-block-network", "on")
    result.assert_outcomes(passed=1, failed=2)
    shown = f"127.0.0.1:{listening}"
    result.stdout.fnmatch_lines(
        [
            f"E *pytest_llmperf.errors.NetworkBlockedError: pytest-llmperf blocked a "
            f"connection to {shown}: --llm-block-network is on, and only the embedded "
            "emulator and the allowed hosts are reachable. Allow this host with "
            "--llm-allowed-host 127.0.0.1 (or the llm_allowed_hosts ini option, or "
            "LLMPERF_ALLOWED_HOSTS; each a regular expression of a host or host:port), "
            "replay the call from a cassette, or turn the block off with "
            "--llm-block-network off",
        ]
    )
    # (under CI pytest repeats each message whole in its short summary: counted before it)
    shown_once = result.stdout.str().partition("short test summary info")[0]
    assert shown_once.count(f"blocked a connection to {shown}") == 2  # sync, async


@pytest.mark.parametrize(
    "how",
    [
        ["--llm-allowed-host", "127.0.0.1"],
        ["--llm-allowed-host", r"127\.0\.0\.1:{port}"],
        ["ini llm_allowed_hosts =\n    localhost\n    127.0.0.*"],
        ["env LLMPERF_ALLOWED_HOSTS=10.0.0.1 127.0.0.1"],
    ],
)
def test_an_allowed_host_is_let_through(
    pytester: pytest.Pytester,
    listening: int,
    how: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.makepyfile(test_net=CONNECTS.format(port=listening))
    if how[0].startswith("env "):
        name, _, value = how[0][4:].partition("=")
        monkeypatch.setenv(name, value)
        how = []
    elif how[0].startswith("ini "):
        pytester.makeini(f"[pytest]\n{how[0][4:]}\n")
        how = []
    args = [arg.format(port=listening) for arg in how]
    result = pytester.runpytest(*FAST, "--llm-block-network", "on", *args)
    result.assert_outcomes(passed=3)


def test_without_the_option_nothing_is_blocked(
    pytester: pytest.Pytester, listening: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_net=CONNECTS.format(port=listening))
    pytester.runpytest(*FAST).assert_outcomes(passed=3)
    monkeypatch.setenv("LLMPERF_BLOCK_NETWORK", "on")  # and the environment turns it on
    pytester.runpytest(*FAST).assert_outcomes(passed=1, failed=2)
    pytester.runpytest(*FAST, "--llm-block-network", "off").assert_outcomes(passed=3)


def test_a_bad_allowed_host_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest(*FAST, "--llm-allowed-host", "127.0.0.(1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*invalid value '127.0.0.(1' for command-line option --llm-allowed-host: write a "
            "host, or a regular expression of hosts or host:port (missing ), unterminated "
            "subpattern at position 8)*"
        ]
    )


def test_our_client_on_a_blocked_host_fails_with_the_block_s_message(
    pytester: pytest.Pytester, listening: int
) -> None:
    pytester.makepyfile(
        """
        def test_call(ollama_client):
            ollama_client.generate(tier="fast", prompt="hi")
        """
    )
    host = f"127.0.0.1:{listening}"
    result = pytester.runpytest(*FAST, "--llm-block-network", "on", "--llm-host", host)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [f"*NetworkBlockedError: pytest-llmperf blocked a connection to {host}:*"]
    )


BESIDE_RECORDING = """
import socket

import pytest

PORT = {port}


def connect(host):
    with socket.socket() as sock:
        sock.settimeout(5)
        sock.connect((host, PORT))


def test_1_emulator(ollama_client):
    assert ollama_client.generate(tier="fast", prompt="hi").response


def test_2_theirs_allow_it_ours_do_not():
    with pytest.raises(RuntimeError, match="pytest-llmperf blocked a connection to 127.0.0.1"):
        connect("127.0.0.1")


def test_3_theirs_refuse_it_first():
    with pytest.raises(RuntimeError, match="Network is disabled for host '127.0.0.2'"):
        connect("127.0.0.2")


def test_4_ours_still_hold_after_theirs_were_taken_off():
    with pytest.raises(RuntimeError, match="pytest-llmperf blocked"):
        connect("127.0.0.1")
"""


def test_both_blocks_hold_together_beside_pytest_recording(
    pytester: pytest.Pytester, listening: int
) -> None:
    pytest.importorskip("pytest_recording")
    pytester.makepyfile(test_both=BESIDE_RECORDING.format(port=listening))
    theirs = ["--block-network", "--allowed-hosts=127.0.0.1"]
    result = pytester.runpytest(*FAST, *theirs, "--llm-block-network", "on", "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    # and each alone: theirs let 127.0.0.1 through, so tests 2 and 4 fail
    result = pytester.runpytest(*FAST, *theirs, "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=2)


def test_the_block_ends_with_the_run() -> None:
    """The inner runs above blocked this very process: nothing of it is left."""
    from pytest_llmperf.plugin import network

    assert network._blocks == []
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass


def test_pytest_recordings_options_of_the_same_names_are_not_ours(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("pytest_recording")
    pytester.makepyfile(
        """
        def test_settings(llm_settings):
            assert llm_settings.record_mode == "none"
            assert llm_settings.block_network is False and llm_settings.allowed_hosts == ()
        """
    )
    theirs = ["--record-mode", "all", "--block-network", "--allowed-hosts", "x"]
    pytester.runpytest(*FAST, *theirs).assert_outcomes(passed=1)
