"""Every httpx-based client records a stream from the emulator and replays it offline."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import own_loop
import pytest
from noise import slack
from paced_model import MODEL

from pytest_llmperf import AsyncOllamaClient, EmulatorServer, OllamaClient
from pytest_llmperf.observe.cassettes import CassetteSession, patched

Timed = tuple[list[str], list[float]]


def official_sync(url: str) -> Timed:
    with ollama.Client(host=url) as client:
        began = time.perf_counter()
        stream = client.generate(MODEL, "hi", stream=True)
        return timed(began, lambda: (c.response for c in stream))


def official_async(url: str) -> Timed:
    async def run() -> Timed:
        async with ollama.AsyncClient(host=url) as client:
            began = time.perf_counter()
            stream = await client.generate(MODEL, "hi", stream=True)
            return await atimed(began, stream, lambda c: c.response)

    return own_loop.run(run())


MESSAGES = [{"role": "user", "content": "hi"}]


def openai_sync(url: str) -> Timed:
    with openai.OpenAI(base_url=url + "/v1", api_key="not-a-secret", max_retries=0) as client:
        began = time.perf_counter()
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        return timed(began, lambda: (c.choices[0].delta.content or "" for c in stream if c.choices))


def openai_async(url: str) -> Timed:
    async def run() -> Timed:
        async with openai.AsyncOpenAI(
            base_url=url + "/v1", api_key="not-a-secret", max_retries=0
        ) as client:
            began = time.perf_counter()
            stream = await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True
            )
            return await atimed(
                began, stream, lambda c: c.choices[0].delta.content or "" if c.choices else ""
            )

    return own_loop.run(run())


def ours_sync(url: str) -> Timed:
    # an httpx client made before the clock starts, as the official clients' are
    with httpx.Client() as http, OllamaClient(url, cache=None, http=http) as client:
        began = time.perf_counter()
        return timed(began, lambda: (c.response for c in client.generate(MODEL, "hi", stream=True)))


def ours_async(url: str) -> Timed:
    async def run() -> Timed:
        async with (
            httpx.AsyncClient() as http,
            AsyncOllamaClient(url, cache=None, http=http) as client,
        ):
            began = time.perf_counter()
            stream = await client.generate(MODEL, "hi", stream=True)
            return await atimed(began, stream, lambda c: c.response)

    return own_loop.run(run())


def timed(began: float, pieces: Callable[[], Any]) -> Timed:
    texts, offsets = [], []
    for text in pieces():
        texts.append(text)
        offsets.append(time.perf_counter() - began)
    return texts, offsets


async def atimed(began: float, stream: Any, text: Callable[[Any], str]) -> Timed:
    texts, offsets = [], []
    async for chunk in stream:
        texts.append(text(chunk))
        offsets.append(time.perf_counter() - began)
    return texts, offsets


CLIENTS = {
    "ollama-sync": official_sync,
    "ollama-async": official_async,
    "openai-sync": openai_sync,
    "openai-async": openai_async,
    "ours-sync": ours_sync,
    "ours-async": ours_async,
}


def first_text(result: Timed) -> float:
    return next(offset for text, offset in zip(*result, strict=True) if text)


@pytest.fixture
def no_gc_pauses() -> Iterator[None]:
    """A collection of this large process can pause a timed stream for ~10 ms: not ours."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


@pytest.mark.usefixtures("no_gc_pauses")
@pytest.mark.parametrize("name", CLIENTS)
def test_record_then_replay_with_the_server_stopped(
    name: str, paced: EmulatorServer, cassette_path: Path
) -> None:
    run = CLIENTS[name]
    url = paced.url
    run(url)  # warm connections and code paths, then measure
    # Live and recorded runs take turns, three of each: a busy machine only ever makes a run
    # later, so the earliest first text of each kind is the one to compare.
    lives, recordings = [], []
    for _ in range(3):
        lives.append(run(url))
        cassette_path.unlink(missing_ok=True)
        with patched(CassetteSession(cassette_path, "once")) as recording:
            recordings.append(run(url))
        recording.save(passed=True)
    paced.stop()
    recorded = recordings[-1]  # the one the cassette holds

    # recording does not change what the client sees, or when (within this machine's
    # current lateness: the stream is ~0.5 s, a replay that ignored the timing is off by that)
    assert all(result[0] == lives[0][0] for result in lives + recordings)
    earliest_live = min(first_text(result) for result in lives)
    earliest_recorded = min(first_text(result) for result in recordings)
    assert earliest_recorded == pytest.approx(earliest_live, abs=slack(0.03, 0.1))

    # Each chunk comes when it came while recording: never later (the earliest of three
    # replays), and never much earlier, as a replay that ignored the timing would. Earlier by
    # a little is the recording client's own pause, which the cassette's times leave out.
    replays = []
    for _ in range(3):
        with patched(CassetteSession(cassette_path, "none", timing=1.0)) as replaying:
            replayed = run(url)
        assert replayed[0] == recorded[0]
        assert len(replaying.replayed) == 1
        replays.append([a - b for a, b in zip(replayed[1], recorded[1], strict=True)])
    earliest = [min(deltas) for deltas in zip(*replays, strict=True)]
    # a fixed ceiling far from both what is expected (about 0) and what a replay that waited
    # twice would give (about 0.5 s): lateness sampled before the replays missed a loaded
    # machine's spikes during them (27 ms late against a bound of 26 ms, load average 14)
    assert max(earliest) < 0.1
    assert min(earliest) > -0.05

    with patched(CassetteSession(cassette_path, "none", timing=0.0)):
        instant = run(url)
    assert instant[0] == recorded[0]
    assert instant[1][-1] < recorded[1][-1] / 2
