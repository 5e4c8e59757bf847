"""Serve the emulator on a real loopback port with uvicorn, in a thread or in the foreground."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import socket
import threading
import time
from types import TracebackType

import uvicorn

from pytest_llmperf.emulator.app import EmulatorApp
from pytest_llmperf.emulator.engine import DropConnection
from pytest_llmperf.emulator.heads import heads_with_first_parts
from pytest_llmperf.errors import LLMPerfError


class _QuietDrops(logging.Filter):
    """An injected ``drop`` fault is not a server bug: keep it out of uvicorn's error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DropConnection))


# Ollama's server (Go's net/http with no IdleTimeout) keeps an idle connection open until
# the client closes it; uvicorn closes one after 5 s by default, and a client that sends its
# next request just as that close arrives gets a reset or an empty answer (httpx's ReadError):
# found by the soak benchmark, where idle pooled connections were seldom used for a while.
IDLE_CONNECTION_S = 24 * 3600


def _stack(own_process: bool) -> tuple[str, str]:
    """uvicorn's HTTP parser and event loop for a server.

    In a thread of a test process: h11 and asyncio, the same on every machine (uvicorn's
    "auto" takes uvloop where it is installed, and uvicorn before 0.30 then sets the event loop
    policy of the whole process, under the user's own async tests). In a process of its own
    (``llmperf serve``): httptools and uvloop when installed (the ``serve`` extra), which cut
    the server's instructions per streamed request by 47% (``benchmarks/bench_serve_stack.py``).
    """
    if not own_process:
        return "h11", "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return http, loop


def _protocol(http: str) -> type[asyncio.Protocol]:
    """uvicorn's protocol class for the parser ``http``, each response's head written with the
    first part of its body (:mod:`.heads`)."""
    base: type[asyncio.Protocol]
    if http == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        base = HttpToolsProtocol
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        base = H11Protocol
    return heads_with_first_parts(base)


def _config(app: EmulatorApp, log_level: str, own_process: bool = False) -> uvicorn.Config:
    logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
    http, loop = _stack(own_process)
    return uvicorn.Config(
        app,
        http=_protocol(http),
        loop=loop,
        log_level=log_level,
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=1,
        timeout_keep_alive=IDLE_CONNECTION_S,
    )


def bind(host: str, port: int) -> socket.socket:
    """Open the listening socket (port 0: any free port), with a clear error if it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LLMPerfError(
            f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port "
            "(or 0 for any free port)"
        ) from None
    sock.listen(2048)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


# Where the emulators of this process listen, (host, port): --llm-block-network lets
# connections to them through.
LISTENING: set[tuple[str, int]] = set()


class EmulatorServer:
    """The emulator on a loopback port in a background thread.

    >>> with EmulatorServer(EmulatorApp()) as server:  # doctest: +SKIP
    ...     httpx.get(server.url + "/api/version")
    """

    def __init__(self, app: EmulatorApp | None = None, host: str = "127.0.0.1", port: int = 0):
        self.app = app or EmulatorApp()
        self._socket = bind(host, port)
        self.url = url_of(self._socket)
        self.address: tuple[str, int] = self._socket.getsockname()[:2]
        LISTENING.add(self.address)
        self._server = uvicorn.Server(_config(self.app, "warning"))
        self._thread = threading.Thread(target=self._run, name="llmperf-emulator", daemon=True)

    def _run(self) -> None:
        self._server.run(sockets=[self._socket])

    def start(self, timeout: float = 10.0) -> EmulatorServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise LLMPerfError(f"the emulator did not start on {self.url} within {timeout} s")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
        LISTENING.discard(self.address)

    def kill(self) -> None:
        """Stop at once, cutting every open connection, as a crashed server would."""
        for connection in list(self._server.server_state.connections):
            transport = getattr(connection, "transport", None)
            loop = getattr(connection, "loop", None)
            if transport is not None and loop is not None:
                loop.call_soon_threadsafe(transport.abort)
        self._server.force_exit = True
        self.stop()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(app: EmulatorApp, host: str, port: int, log_level: str = "info") -> None:
    """Serve in the foreground until interrupted (``llmperf serve``)."""
    sock = bind(host, port)
    print(f"llmperf emulator listening on {url_of(sock)}", flush=True)
    uvicorn.Server(_config(app, log_level, own_process=True)).run(sockets=[sock])
