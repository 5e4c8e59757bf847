"""Ollama's server behaviour on a real loopback port: loading, keep-alive, queueing, timing.

Timing assertions compare figures measured in the same run (a ratio, or a reported duration
against the client's own clock); they leave room for a slow, shared machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx
import own_loop
import pytest
from noise import slack

from pytest_llmperf import Limits, LLMTimeoutError, OllamaClient
from pytest_llmperf.emulator import EmulatorServer
from pytest_llmperf.emulator.profiles import Catalogue

Serve = Callable[..., EmulatorServer]


def post(server: EmulatorServer, path: str, **body: Any) -> httpx.Response:
    return httpx.post(server.url + path, json={"stream": False, **body}, timeout=30)


def loaded(server: EmulatorServer) -> list[str]:
    return [m["name"] for m in httpx.get(server.url + "/api/ps").json()["models"]]


def test_reported_durations_agree_with_the_time_spent(live: EmulatorServer) -> None:
    body = {"model": "llama3:8b", "prompt": "Tell me a long story please", "stream": False}
    with httpx.Client(base_url=live.url, timeout=30) as client:
        client.get("/")  # connect first: the request below times the server, not the handshake
        started = time.perf_counter()
        body = client.post("/api/generate", json=body).json()
        wall_ns = (time.perf_counter() - started) * 1e9
    parts = body["load_duration"] + body["prompt_eval_duration"] + body["eval_duration"]
    assert body["total_duration"] <= wall_ns
    # the rest is the loopback round trip and this machine's current lateness
    assert wall_ns - body["total_duration"] <= 0.05 * wall_ns + slack(0.005, 0.1) * 1e9
    assert parts <= body["total_duration"]
    assert parts >= 0.95 * body["total_duration"]


def test_cold_load_then_warm_then_unload(live: EmulatorServer, catalogue: Catalogue) -> None:
    profile_load_ns = catalogue.models["llama3:8b"].load_s * catalogue.server.time_scale * 1e9
    cold = post(
        live, "/api/generate", model="llama3:8b", prompt="Hi", options={"num_predict": 1}
    ).json()
    assert cold["load_duration"] >= profile_load_ns
    assert cold["load_duration"] <= 1.05 * profile_load_ns + slack(0.02, 0.2) * 1e9
    warm = post(
        live, "/api/generate", model="llama3:8b", prompt="Hi", options={"num_predict": 1}
    ).json()
    assert "load_duration" not in warm
    assert loaded(live) == ["llama3:8b"]
    post(live, "/api/generate", model="llama3:8b", keep_alive=0)
    assert loaded(live) == []


def test_keep_alive_expiry_and_forever(live: EmulatorServer) -> None:
    post(live, "/api/generate", model="llama3.2:1b", keep_alive="100ms")
    post(live, "/api/generate", model="llama3.2:3b", keep_alive=-1)
    (forever,) = [
        m for m in httpx.get(live.url + "/api/ps").json()["models"] if m["name"] == "llama3.2:3b"
    ]
    assert datetime.fromisoformat(forever["expires_at"].replace("Z", "+00:00")).year > 2200
    deadline = time.monotonic() + 10  # the 100 ms one expires; the other stays
    while loaded(live) != ["llama3.2:3b"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert loaded(live) == ["llama3.2:3b"]


def test_least_recently_used_model_is_evicted(serve: Serve, catalogue: Catalogue) -> None:
    server = serve(catalogue.with_server(max_loaded_models=2))
    for model in ("llama3.2:1b", "llama3.2:3b", "llama3.2:1b", "llama3:8b"):
        post(server, "/api/generate", model=model)
    assert sorted(loaded(server)) == ["llama3.2:1b", "llama3:8b"]


async def _timed_burst(server: EmulatorServer, count: int) -> tuple[float, list[float]]:
    """One request alone, then ``count`` at once: the lone time, and each one's finish time."""
    body = {"model": "llama3.2:1b", "prompt": "Hi", "stream": False, "options": {"num_predict": 8}}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        await client.post("/api/generate", json={"model": "llama3.2:1b"})  # load it first
        lone_start = time.perf_counter()
        (await client.post("/api/generate", json=body)).raise_for_status()
        lone = time.perf_counter() - lone_start
        started = time.perf_counter()

        async def one() -> float:
            response = await client.post("/api/generate", json=body)
            response.raise_for_status()
            return time.perf_counter() - started

        return lone, sorted(await asyncio.gather(*(one() for _ in range(count))))


@pytest.fixture
def steady(catalogue: Catalogue) -> Catalogue:
    """llama3.2:1b writing 8 tokens in about 0.2 s, no load time."""
    model = replace(
        catalogue.models["llama3.2:1b"], tokens_per_s=40.0, first_token_s=0.0, load_s=0.0
    )
    return catalogue.with_model(model).with_server(time_scale=1.0)


ONE_ANSWER_S = 7 / 40.0  # the steady profile's eight tokens, seven gaps: none comes sooner


def test_one_slot_serves_four_requests_one_after_another(serve: Serve, steady: Catalogue) -> None:
    _, finish = own_loop.run(_timed_burst(serve(steady.with_server(num_parallel=1)), 4))
    assert finish[-1] >= 4 * ONE_ANSWER_S * 0.95  # a load can only make it later


def test_four_slots_serve_four_requests_together(serve: Serve, steady: Catalogue) -> None:
    # against the one-slot server measured in the same test, so a loaded machine slows both
    _, one_slot = own_loop.run(_timed_burst(serve(steady.with_server(num_parallel=1)), 4))
    _, four_slots = own_loop.run(_timed_burst(serve(steady.with_server(num_parallel=4)), 4))
    assert four_slots[-1] < 0.6 * one_slot[-1]


def test_queue_beyond_max_queue_is_refused_with_503(serve: Serve, steady: Catalogue) -> None:
    server = serve(steady.with_server(num_parallel=1, max_queue=1))

    async def burst() -> list[httpx.Response]:
        body = {"model": "llama3.2:1b", "prompt": "Hi", "stream": False}
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return list(
                await asyncio.gather(*(client.post("/api/generate", json=body) for _ in range(3)))
            )

    responses = own_loop.run(burst())
    assert sorted(r.status_code for r in responses) == [200, 200, 503]
    (refused,) = [r for r in responses if r.status_code == 503]
    assert refused.json() == {
        "error": "server busy, please try again.  maximum pending requests exceeded"
    }


def test_stream_chunks_arrive_as_they_are_generated(serve: Serve, steady: Catalogue) -> None:
    server = serve(steady)
    arrivals = []
    started = time.perf_counter()
    body = {"model": "llama3.2:1b", "prompt": "Hi", "options": {"num_predict": 8}}
    with httpx.stream("POST", server.url + "/api/generate", json=body, timeout=30) as response:
        for _line in response.iter_lines():
            arrivals.append(time.perf_counter() - started)
    # eight tokens at 40/s: the first arrives well before the last (not buffered to the end)
    assert arrivals[-1] - arrivals[0] >= 0.15


def test_dropped_connection_is_seen_by_the_client(live: EmulatorServer) -> None:
    lines = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST",
            live.url + "/api/generate",
            json={"model": "llama3.2:1b", "prompt": "Hi"},
            headers={"X-Llmperf-Fault": "drop; after=2"},
        ) as response,
    ):
        lines.extend(response.iter_lines())
    assert len(lines) <= 2


def test_a_client_that_hangs_up_frees_its_models_slot(live: EmulatorServer) -> None:
    stalled = {"X-Llmperf-Fault": "stall; after=1; seconds=20"}
    patient = Limits(total=60, first_token=30, stall=30)
    with OllamaClient(live.url, cache=None, headers=stalled) as quitter:
        with pytest.raises(LLMTimeoutError) as caught:
            list(
                quitter.generate(
                    "llama3.2:1b",
                    "hi",
                    stream=True,
                    timeout=Limits(total=60, first_token=30, stall=1),
                )
            )
        assert caught.value.phase == "stall"
    gave_up = time.monotonic()
    with OllamaClient(live.url, cache=None) as next_client:
        answer = next_client.generate(
            "llama3.2:1b", "hi", timeout=patient
        )  # one slot: num_parallel 1
    # the stall had 19 s to go: served well before it would have ended
    assert time.monotonic() - gave_up < 8
    assert answer["done"]
