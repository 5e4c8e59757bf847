"""A loopback HTTP server on threads that misbehaves as told, for clients of either face.

``Misbehaving(behaviour)`` answers every request by calling ``behaviour(send, pause)``:
``send(data)`` writes bytes to the client, ``pause(seconds)`` waits (on an event, so the
server stops at once when the test ends). A client that hangs up ends the behaviour; a
behaviour that raises :class:`HangUp` closes the connection there (a server cut off mid-answer).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import TracebackType

Send = Callable[[bytes], None]
Pause = Callable[[float], None]
Behaviour = Callable[[Send, Pause], None]


class _Stopped(Exception):
    pass


class HangUp(Exception):
    """Raised by a behaviour: the server closes the connection at once."""


class Misbehaving:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.threads: list[threading.Thread] = []
        self.connections: list[socket.socket] = []

    def __enter__(self) -> Misbehaving:
        self._start(self._accept)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop.set()
        for conn in [self.listener, *self.connections]:  # (wakes accept() and recv())
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=10)
        for conn in self.connections:
            conn.close()

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            self._start(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        def send(data: bytes) -> None:
            if self.stop.is_set():
                raise _Stopped
            conn.sendall(data)

        def pause(seconds: float) -> None:
            if self.stop.wait(seconds):
                raise _Stopped

        try:
            while _read_request(conn):
                self.behaviour(send, pause)
        except HangUp:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        except (_Stopped, OSError):
            pass


def _read_request(conn: socket.socket) -> bool:
    """Read one request (head and Content-Length body); False once the client has gone."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            return False
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(body) < length:
        more = conn.recv(65536)
        if not more:
            return False
        body += more
    return True
