"""``GET /llmperf/stats``: the emulator's own counters, which a load test checks its calls by."""

from __future__ import annotations

import time

import httpx

from pytest_llmperf.emulator import EmulatorApp, EmulatorServer
from pytest_llmperf.emulator.faults import FAULT_HEADER
from pytest_llmperf.emulator.profiles import Catalogue


async def test_stats_count_every_request_that_reached_a_model(catalogue: Catalogue) -> None:
    app = EmulatorApp(catalogue)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://e"
    ) as client:
        before = (await client.get("/llmperf/stats")).json()
        body = {"model": "llama3.2:1b", "prompt": "hi", "stream": False}
        assert (await client.post("/api/generate", json=body)).status_code == 200
        refused = await client.post(
            "/api/generate", json=body, headers={FAULT_HEADER: "status=503"}
        )
        assert refused.status_code == 503
        missing = await client.post("/api/generate", json={**body, "model": "nope:1b"})
        assert missing.status_code == 404
        embed = await client.post("/api/embed", json={"model": "llama3.2:1b", "input": "x"})
        assert embed.status_code == 200
        after = (await client.get("/llmperf/stats")).json()
    assert before["requests"] == 0 and before["requests_by_model"] == {}
    # the unknown model never reached one; the refused request did, as Ollama's would
    assert after["requests"] == 3
    assert after["requests_by_model"] == {"llama3.2:1b": 3}
    assert after["http_requests"] == 5  # every request but this one, the 404 included
    assert after["in_flight"] == 0
    assert after["loaded_models"] == ["llama3.2:1b"]


def test_stats_show_a_stream_in_flight_until_its_client_hangs_up(live: EmulatorServer) -> None:
    body = {"model": "llama3.2:1b", "prompt": "a story", "stream": True}
    stall = {FAULT_HEADER: "stall; after=1; seconds=60"}
    with httpx.Client(base_url=live.url, timeout=30) as client:
        with client.stream("POST", "/api/generate", json=body, headers=stall) as response:
            lines = response.iter_lines()  # (kept: a dropped iterator closes the response)
            next(lines)  # the first token is out; the stream now stalls
            assert client.get("/llmperf/stats").json()["in_flight"] == 1
        deadline = time.monotonic() + 20  # the hang-up reaches the server soon, on any machine
        while (now := client.get("/llmperf/stats").json())["in_flight"] and (
            time.monotonic() < deadline
        ):
            time.sleep(0.01)
    assert now["in_flight"] == 0
    assert now["requests"] == 1
