"""A response's head goes out with the first part of its body, in one write."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, cast

from pytest_llmperf.emulator.heads import HeadWithFirstPart
from pytest_llmperf.emulator.server import EmulatorServer


class Recorder:
    """A transport that keeps what is written to it, one entry a write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def held(recorder: Recorder) -> HeadWithFirstPart:
    return HeadWithFirstPart(cast(asyncio.Transport, recorder))


def test_the_head_goes_with_the_first_part_and_later_parts_go_alone() -> None:
    async def run() -> list[bytes]:
        recorder = Recorder()
        transport = held(recorder)
        transport.write(b"HEAD\r\n\r\n")
        assert recorder.writes == [] and transport.get_write_buffer_size() == len(b"HEAD\r\n\r\n")
        transport.write(b"first")
        transport.write(b"second")
        transport.response_complete()
        transport.write(b"NEXT HEAD")
        transport.write(b"its body")
        await asyncio.sleep(0)
        return recorder.writes

    assert asyncio.run(run()) == [b"HEAD\r\n\r\nfirst", b"second", b"NEXT HEADits body"]


def test_a_head_with_no_part_in_its_step_goes_out_at_the_loops_next_turn() -> None:
    async def run() -> list[bytes]:
        recorder = Recorder()
        transport = held(recorder)
        transport.write(b"HEAD")
        await asyncio.sleep(0)
        transport.write(b"body")
        return recorder.writes

    assert asyncio.run(run()) == [b"HEAD", b"body"]


def test_closing_writes_the_held_head_first_and_aborting_drops_it() -> None:
    async def run() -> tuple[Recorder, Recorder]:
        closed, aborted = Recorder(), Recorder()
        transport = held(closed)
        transport.write(b"HEAD")
        transport.close()
        transport = held(aborted)
        transport.write(b"HEAD")
        transport.abort()
        await asyncio.sleep(0)
        return closed, aborted

    closed, aborted = asyncio.run(run())
    assert closed.closed and closed.writes == [b"HEAD"]
    assert aborted.aborted and aborted.writes == []
    assert held(Recorder()).get_extra_info("peername") == ("127.0.0.1", 1)


def test_the_servers_connections_hold_heads_and_answers_arrive_whole() -> None:
    with EmulatorServer() as server, socket.create_connection(server.address) as sock:
        sock.settimeout(10)
        sock.sendall(b"GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)  # one write: the head and the body arrive together
        assert first.startswith(b"HTTP/1.1 200") and b'{"version":' in first
        while not first.endswith(b"0\r\n\r\n"):  # (h11 ends the chunked body on its own)
            first += sock.recv(65536)
        body = b'{"model":"llama3.2:1b","prompt":"hi","stream":true}'
        sock.sendall(
            b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body
        )
        data = sock.recv(65536)
        assert data.startswith(b"HTTP/1.1 200") and b"\r\n\r\n" in data
        assert b'"response":' in data
        connections = list(server._server.server_state.connections)
        assert connections and all(isinstance(c.transport, HeadWithFirstPart) for c in connections)
