"""How a streamed body reaches the connection: at once when idle, gathered in a burst."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import httpx

from pytest_llmperf.emulator import EmulatorServer
from pytest_llmperf.emulator.app import GATHER_S, Responder


class Wire:
    """A fake ASGI ``send`` that keeps every message with the loop time it was sent."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, Mapping[str, Any]]] = []

    async def send(self, message: Mapping[str, Any]) -> None:
        self.messages.append((asyncio.get_running_loop().time(), message))

    def bodies(self) -> list[bytes]:
        return [m["body"] for _t, m in self.messages if m["type"] == "http.response.body"]


async def until(condition: Any, deadline_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    ends = loop.time() + deadline_s
    while not condition():
        assert loop.time() < ends, "condition not met within the deadline"
        await asyncio.sleep(0.001)


async def test_a_part_that_finds_the_stream_idle_goes_at_once() -> None:
    wire = Wire()
    out = Responder(wire.send)
    await out.start(200, "application/x-ndjson")
    await out.body(b"first\n", more=True)
    assert wire.bodies() == [b"first\n"]


async def test_a_burst_is_gathered_into_one_write_in_order() -> None:
    wire = Wire()
    out = Responder(wire.send)
    await out.start(200, "application/x-ndjson")
    parts = [f"{n}\n".encode() for n in range(50)]
    for part in parts:
        await out.body(part, more=True)
    assert wire.bodies() == [parts[0]]  # the rest wait for the write interval
    await until(lambda: len(wire.bodies()) == 2)
    assert wire.bodies() == [parts[0], b"".join(parts[1:])]
    first, gathered = (t for t, m in wire.messages if m["type"] == "http.response.body")
    assert gathered - first >= GATHER_S * 0.9  # the loop's clock has about 1 ms of grain


async def test_the_last_part_carries_what_was_gathered_before_it() -> None:
    wire = Wire()
    out = Responder(wire.send)
    await out.start(200, "application/x-ndjson")
    await out.body(b"a\n", more=True)
    await out.body(b"b\n", more=True)
    await out.body(b"end\n")
    assert wire.bodies() == [b"a\n", b"b\n", b"end\n"]
    assert [m.get("more_body") for _t, m in wire.messages[1:]] == [True, True, False]
    assert out.finished


async def test_nothing_is_written_after_close() -> None:
    wire = Wire()
    out = Responder(wire.send)
    await out.start(200, "application/x-ndjson")
    await out.body(b"a\n", more=True)
    await out.body(b"b\n", more=True)
    out.close()  # the client hung up
    await asyncio.sleep(GATHER_S * 3)  # the write interval passes: nothing is due any more
    assert wire.bodies() == [b"a\n"]


def test_a_fast_stream_arrives_whole_and_in_fewer_writes(live: EmulatorServer) -> None:
    body = {"model": "llama3.2:1b", "prompt": "hi", "options": {"num_predict": 40}}
    with httpx.Client(base_url=live.url, timeout=60) as client:
        lines, reads = [], 0
        with client.stream("POST", "/api/generate", json=body) as response:
            buffer = b""
            for data in response.iter_raw():
                reads += 1
                buffer += data
                *complete, buffer = buffer.split(b"\n")
                lines += [json.loads(line) for line in complete]
        whole = client.post("/api/generate", json={**body, "stream": False}).json()
    *tokens, final = lines
    assert final["done"] and final["eval_count"] == len(tokens) > 5
    assert "".join(line["response"] for line in tokens) == whole["response"]
    assert reads < len(lines)  # the test catalogue's time scale is tiny: the tokens come in bursts
