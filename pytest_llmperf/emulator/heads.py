"""Each response's head goes out with the first part of its body, in one write, as Ollama's.

uvicorn writes a response's status line and headers to the socket as soon as the app starts
the response, and its body in a write of its own. A streamed answer's head and first token
then cost two system calls and wake the client twice: on a busy machine the client, woken by
the head, can take the core from the server before the first token is written. Ollama's
server (Go's net/http) buffers the head and sends it with the first chunk it flushes, and
so does this one. (On a quiet machine the time to the first token measured the same either
way, within the noise: ``benchmarks/bench_real_model.py``, the README's figures.)

:func:`heads_with_first_parts` makes a uvicorn HTTP protocol class whose connections hold a
response's head until the next write (the body's first part), or until the event loop's next
turn when none follows at once, so no head waits longer than the step that wrote it.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar, cast

P = TypeVar("P", bound=asyncio.Protocol)


class HeadWithFirstPart:
    """A connection's transport that holds each response's head for the write that follows.

    The protocol says when a response is over (:meth:`response_complete`): the next write is
    the next response's head. Everything else is the wrapped transport's.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held = b""
        self._release: asyncio.Handle | None = None
        self._next_is_head = True

    def response_complete(self) -> None:
        self._next_is_head = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._release is not None:  # the head waits: it goes with this part
            data = self._held + bytes(data)
            self._cancel()
        elif self._next_is_head and data:
            self._next_is_head = False
            self._held = bytes(data)
            self._release = asyncio.get_running_loop().call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        """Write the held head now (no part of the body came in the step that wrote it)."""
        if self._release is not None:
            held = self._held
            self._cancel()
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._cancel()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held)

    def _cancel(self) -> None:
        if self._release is not None:
            self._release.cancel()
            self._release = None
        self._held = b""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def heads_with_first_parts(base: type[P]) -> type[P]:
    """``base`` (uvicorn's h11 or httptools protocol), its heads written with their bodies."""

    class Protocol(base):  # type: ignore[valid-type, misc]
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(cast(asyncio.Transport, HeadWithFirstPart(transport)))

        def on_response_complete(self) -> None:
            self.transport.response_complete()
            super().on_response_complete()

    Protocol.__name__ = Protocol.__qualname__ = f"HeadsWithFirstParts{base.__name__}"
    return cast(type[P], Protocol)
