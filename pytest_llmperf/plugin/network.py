"""``--llm-block-network``: the test process connects to nothing but the emulator and the
hosts allowed.

The block is a Python audit hook on ``socket.connect`` (which ``connect_ex`` and asyncio's
connections raise too), not a patch of ``socket.socket.connect`` as pytest-recording's
``--block-network`` is: pytest-recording puts its own patch on and takes it off around each
test, restoring the ``connect`` it found when it was imported, which would take a patch of
ours off with it. An audit hook runs inside the real ``connect`` whatever is patched over
it, so both blocks hold when both are on: a connection must pass each.

Only internet sockets (IPv4, IPv6) are checked: a Unix socket does not leave the machine.
A connection to an emulator of this process (:data:`pytest_llmperf.emulator.server.LISTENING`)
is always let through. An audit hook cannot be removed: it is installed once, on first
use, and does nothing while no block is on.
"""

from __future__ import annotations

import re
import socket
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pytest_llmperf.errors import NetworkBlockedError

_INTERNET = (socket.AF_INET, socket.AF_INET6)


@dataclass(frozen=True)
class Block:
    """Which hosts a blocked process may still connect to: regular expressions, each
    matched against the whole host (``127.0.0.1``, ``redis.local``) or ``host:port``."""

    allowed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for pattern in self.allowed:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None

    def allows(self, host: str, port: int) -> bool:
        if (host, port) in _emulators():
            return True
        return any(
            re.fullmatch(pattern, host) or re.fullmatch(pattern, f"{host}:{port}")
            for pattern in self.allowed
        )


_blocks: list[Block] = []  # the blocks on, innermost (pytester's inline runs) last
_installed = False


@contextmanager
def blocking(allowed: Iterable[str] = ()) -> Iterator[Block]:
    """Block every internet connection of the process but to ``allowed`` hosts and the
    emulators, until the block ends."""
    global _installed
    block = Block(tuple(allowed))
    if not _installed:
        sys.addaudithook(_audit)
        _installed = True
    _blocks.append(block)
    try:
        yield block
    finally:
        _blocks.remove(block)


def _emulators() -> set[tuple[str, int]]:
    server = sys.modules.get("pytest_llmperf.emulator.server")  # not loaded: none running
    return getattr(server, "LISTENING", set()) if server is not None else set()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" or not _blocks:
        return
    sock, address = args
    if sock.family not in _INTERNET or not isinstance(address, tuple):
        return
    host, port = str(address[0]), int(address[1])
    if _blocks[-1].allows(host, port):
        return
    # closed here: socket.create_connection (httpcore's way in) closes a socket whose
    # connect failed only on an OSError, and a leaked one is a ResourceWarning
    sock.close()
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    raise NetworkBlockedError(
        f"pytest-llmperf blocked a connection to {shown}: --llm-block-network is on, and "
        "only the embedded emulator and the allowed hosts are reachable. Allow this host "
        f"with --llm-allowed-host {host} (or the llm_allowed_hosts ini option, or "
        "LLMPERF_ALLOWED_HOSTS; each a regular expression of a host or host:port), replay "
        "the call from a cassette, or turn the block off with --llm-block-network off"
    )
