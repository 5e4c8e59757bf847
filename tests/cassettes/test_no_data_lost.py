"""What a recording may write: only a passing test's, never cut short as if whole, never over
another test's interactions, and nothing left behind when the disk is full."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from paced_model import MODEL

from pytest_llmperf import AsyncOllamaClient, EmulatorServer, OllamaClient
from pytest_llmperf.observe.cassettes import (
    Cassette,
    CassetteCutShortError,
    CassetteError,
    CassetteSession,
    patched,
)

RECORDING_MODES = ("once", "new_episodes", "all", "rewrite")


def ask(url: str, prompt: str = "hi") -> None:
    httpx.post(url + "/api/generate", json={"model": MODEL, "prompt": prompt, "stream": False})


def recorded(
    path: Path, url: str, test: str, *prompts: str, mode: str = "all", own: bool = True
) -> CassetteSession:
    session = CassetteSession(path, mode, test=test, own=own)
    with patched(session):
        for prompt in prompts:
            ask(url, prompt)
    session.save(passed=True)
    return session


def prompts(path: Path) -> list[str]:
    return [json.loads(str(i.request_body))["prompt"] for i in Cassette.load(path).interactions]


@pytest.mark.parametrize("mode", RECORDING_MODES)
@pytest.mark.parametrize("passed", [None, False])
def test_an_interrupted_test_writes_nothing_and_a_failed_one_destroys_nothing(
    paced: EmulatorServer, cassette_path: Path, mode: str, passed: bool | None
) -> None:
    if mode != "once":  # once records only a cassette that does not exist yet
        recorded(cassette_path, paced.url, "t::old", "old")
        before = cassette_path.read_bytes()
    session = CassetteSession(cassette_path, mode, test="t::new")
    with patched(session):
        ask(paced.url, "new")
    assert len(session.recorded) == 1
    session.save(passed=passed)  # None: it did not run to its end
    if passed is False and mode == "once":  # a new cassette: the failure replays offline
        assert prompts(cassette_path) == ["new"]
    elif passed is False and mode == "new_episodes":  # added to what was there
        assert prompts(cassette_path) == ["old", "new"]
    elif mode == "once":
        assert not cassette_path.parent.exists()  # not even its folder
    else:  # interrupted, or all and rewrite, which would replace the old recording
        assert cassette_path.read_bytes() == before
    if cassette_path.parent.exists():
        assert [p.name for p in cassette_path.parent.iterdir()] == [cassette_path.name]


def stream_then_close(url: str, lines: int) -> None:
    """Read ``lines`` lines of a stream and close it: the rest of the answer is not read."""
    with OllamaClient(url, cache=None) as client:
        stream = client.generate(MODEL, "a long story", stream=True, options={"num_predict": 8})
        for _, _chunk in zip(range(lines), stream, strict=False):
            pass
        stream.close()


def test_a_stream_the_client_cut_short_is_saved_as_cut_short_and_its_replay_fails_loudly(
    paced: EmulatorServer, cassette_path: Path
) -> None:
    session = CassetteSession(cassette_path, "once", test="t::cut")
    with patched(session):
        stream_then_close(paced.url, 2)
    session.save(passed=True)
    [cut] = Cassette.load(cassette_path).interactions
    assert cut.cut_short and cut.test == "t::cut"
    assert b'"done":true' not in cut.body
    paced.stop()
    # the same client, stopping where it stopped: the replay has what it reads
    with patched(CassetteSession(cassette_path, "none")):
        stream_then_close(paced.url, 2)
    # a client that reads on: the cassette does not have the rest, and says so
    with (
        patched(CassetteSession(cassette_path, "none")),
        OllamaClient(paced.url, cache=None) as client,
        pytest.raises(CassetteCutShortError) as caught,
    ):
        list(client.generate(MODEL, "a long story", stream=True, options={"num_predict": 8}))
    message = str(caught.value)
    assert f"cassette {cassette_path}, interaction 1 of 1 (POST /api/generate)" in message
    assert f"closed the stream after {len(cut.body)} bytes" in message
    assert "--llm-record-mode rewrite" in message


async def read_all(stream: Any) -> None:
    async for _chunk in stream:
        pass


async def test_a_cut_short_replay_fails_loudly_for_the_async_client_too(
    paced: EmulatorServer, cassette_path: Path
) -> None:
    session = CassetteSession(cassette_path, "once", test="t::cut")
    with patched(session):
        stream_then_close(paced.url, 1)
    session.save(passed=True)
    paced.stop()
    with patched(CassetteSession(cassette_path, "none")):
        async with AsyncOllamaClient(paced.url, cache=None) as client:
            stream = await client.generate(
                MODEL, "a long story", stream=True, options={"num_predict": 8}
            )
            with pytest.raises(CassetteCutShortError, match="interaction 1 of 1"):
                await read_all(stream)


def test_a_response_closed_before_its_body_was_read_is_cut_short(
    paced: EmulatorServer, cassette_path: Path
) -> None:
    session = CassetteSession(cassette_path, "once", test="t::unread")
    body = {"model": MODEL, "prompt": "hi"}
    with patched(session), httpx.stream("POST", paced.url + "/api/generate", json=body):
        pass  # headers only: not one byte of the body read
    [unread] = session.recorded
    assert unread.cut_short and unread.body == b""


def test_a_shared_cassette_keeps_every_other_tests_interactions(
    paced: EmulatorServer, cassette_path: Path
) -> None:
    recorded(cassette_path, paced.url, "t::a", "a1", "a2", own=False)
    recorded(cassette_path, paced.url, "t::b", "b1", own=False)
    recorded(cassette_path, paced.url, "t::a", "a3", own=False)  # a records itself afresh
    recorded(cassette_path, paced.url, "t::c", "c1", mode="new_episodes", own=False)
    found = Cassette.load(cassette_path).interactions
    assert [(i.test, json.loads(str(i.request_body))["prompt"]) for i in found] == [
        ("t::b", "b1"),
        ("t::a", "a3"),
        ("t::c", "c1"),
    ]


def test_a_recording_loaded_before_another_test_wrote_still_keeps_that_tests_work(
    paced: EmulatorServer, cassette_path: Path
) -> None:
    recorded(cassette_path, paced.url, "t::a", "a1", own=False)
    # b loads the cassette, then c writes to it, then b writes: c's interaction stays
    late = CassetteSession(cassette_path, "new_episodes", test="t::b", own=False)
    recorded(cassette_path, paced.url, "t::c", "c1", mode="new_episodes", own=False)
    with patched(late):
        ask(paced.url, "b1")
    late.save(passed=True)
    tests = [i.test for i in Cassette.load(cassette_path).interactions]
    assert tests == ["t::a", "t::c", "t::b"]


def test_writers_of_one_cassette_at_the_same_time_lose_nothing(
    paced: EmulatorServer, cassette_path: Path
) -> None:
    recorded(cassette_path, paced.url, "t::seed", "seed", own=False)
    sessions = []
    for number in range(8):
        session = CassetteSession(cassette_path, "new_episodes", test=f"t::{number}", own=False)
        with patched(session):
            ask(paced.url, f"p{number}")
        sessions.append(session)
    start = threading.Barrier(len(sessions))

    def save(session: CassetteSession) -> None:
        start.wait()
        session.save(passed=True)

    threads = [threading.Thread(target=save, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    tests = sorted(str(i.test) for i in Cassette.load(cassette_path).interactions)
    assert tests == sorted(["t::seed", *(f"t::{n}" for n in range(8))])


def test_a_tests_own_cassette_recorded_afresh_drops_its_unowned_old_interactions(
    paced: EmulatorServer, cassette_path: Path
) -> None:
    recorded(cassette_path, paced.url, "", "before", mode="once")  # no test named: unowned
    [old] = Cassette.load(cassette_path).interactions
    assert old.test is None
    recorded(cassette_path, paced.url, "t::own", "after", own=True)
    [new] = Cassette.load(cassette_path).interactions
    assert new.test == "t::own" and json.loads(str(new.request_body))["prompt"] == "after"


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(
    paced: EmulatorServer, cassette_path: Path
) -> None:
    recorded(cassette_path, paced.url, "t::a", "a1")
    leftover = cassette_path.with_name(f".{cassette_path.name}.k1ll3d.tmp")
    leftover.write_text("half a cassette", encoding="utf-8")
    recorded(cassette_path, paced.url, "t::a", "a2")
    assert sorted(p.name for p in cassette_path.parent.iterdir()) == [cassette_path.name]


def test_a_full_disk_leaves_the_old_cassette_and_no_temporary_file(
    paced: EmulatorServer, cassette_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded(cassette_path, paced.url, "t::a", "a1")
    before = cassette_path.read_bytes()
    session = CassetteSession(cassette_path, "all", test="t::a")
    with patched(session):
        ask(paced.url, "a2")
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, handle: int, *args: object, **kwargs: object) -> None:
            self.file = real_fdopen(handle, "w")

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("pytest_llmperf.files.os.fdopen", Full)
    with pytest.raises(CassetteError, match=r"No space left on device.*old cassette is intact"):
        session.save(passed=True)
    assert cassette_path.read_bytes() == before
    assert sorted(p.name for p in cassette_path.parent.iterdir()) == [cassette_path.name]


def test_a_really_full_disk_leaves_the_old_cassette_and_no_temporary_file(
    paced: EmulatorServer, tiny_disk: Path
) -> None:
    path = tiny_disk / "story.yaml"
    recorded(path, paced.url, "t::a", "a1")
    before = path.read_bytes()
    session = CassetteSession(path, "new_episodes", test="t::a")
    with patched(session):
        ask(paced.url, "x" * 100_000)  # its request body alone is larger than the disk
    with pytest.raises(CassetteError, match="No space left on device"):
        session.save(passed=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["story.yaml"]
