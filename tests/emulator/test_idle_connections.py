"""Idle kept-alive connections stay open, as Ollama's do, until the client closes them."""

from __future__ import annotations

import select
import socket

from pytest_llmperf.emulator import EmulatorServer

UVICORN_DEFAULT_IDLE_S = 5.0  # what uvicorn would close an idle connection after
REQUEST = b"GET /api/version HTTP/1.1\r\nHost: e\r\n\r\n"


def answer(sock: socket.socket) -> bytes:
    """One whole chunked answer (or what came before the server closed the connection)."""
    data = b""
    while not data.endswith(b"\r\n0\r\n\r\n"):
        more = sock.recv(4096)
        if not more:
            break
        data += more
    return data


def test_an_idle_connection_is_not_closed_by_the_server(live: EmulatorServer) -> None:
    host, port = live.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(REQUEST)
        assert answer(sock).startswith(b"HTTP/1.1 200")
        # readable within the wait means the server closed it (recv would give b"")
        readable, _, _ = select.select([sock], [], [], UVICORN_DEFAULT_IDLE_S + 1.5)
        assert not readable, "the server closed an idle kept-alive connection"
        sock.sendall(REQUEST)
        assert answer(sock).startswith(b"HTTP/1.1 200")
