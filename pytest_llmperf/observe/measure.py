"""Measuring one LLM exchange while it passes the HTTP transport, whatever client made it.

An :class:`Exchange` starts when a request to an LLM route is sent and ends when its answer
has been read to the end, closed early, or failed; it then hands one :class:`CallRecord` to
the recorder that was current when the request started. The chunks go on to the client as
they arrive: a chunk is looked at only when the client asks for the next one.

The definitions are the client's (see :mod:`pytest_llmperf.observe.records`): time to first token
is from the request to the first chunk that carries text; gaps are between successive text
chunks; the statistics are the server's (Ollama's final chunk, OpenAI's ``usage``). For an
answer replayed from a cassette, times are the ones the cassette recorded, found by the
byte at which each text line ended.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from hashlib import blake2b
from typing import Any

from pytest_llmperf.client.protocol import (
    STATISTICS,
    Api,
    Kind,
    OpenAIStream,
    ServerStats,
    chunk_text,
    error_text,
    from_openai,
)
from pytest_llmperf.observe.records import CallRecord, GapSummary

perf_counter = time.perf_counter

# The routes of an LLM call, on Ollama's API and on OpenAI-compatible servers.
LLM_ROUTES: Mapping[str, tuple[Kind, Api]] = {
    "/api/generate": ("generate", "ollama"),
    "/api/chat": ("chat", "ollama"),
    "/api/embed": ("embed", "ollama"),
    "/api/embeddings": ("embed", "ollama"),
    "/v1/chat/completions": ("chat", "openai"),
    "/v1/completions": ("generate", "openai"),
    "/v1/embeddings": ("embed", "openai"),
}

MAX_KEPT = 64 * 1024 * 1024  # the most of a whole body kept to read its statistics from

Sink = Callable[[CallRecord], None]


class Routes:
    """Which request paths are LLM calls: the known routes, also under extra prefixes.

    ``prefixes``: paths a proxy puts in front of the routes, such as ``/ollama``.
    """

    def __init__(self, prefixes: Iterable[str] = ()) -> None:
        heads = {""} | {"/" + prefix.strip("/") for prefix in prefixes if prefix.strip("/")}
        self.paths: dict[str, tuple[str, Kind, Api]] = {
            head + route: (route, kind, api)
            for head in heads
            for route, (kind, api) in LLM_ROUTES.items()
        }

    def match(self, path: str) -> tuple[str, Kind, Api] | None:
        """The route, kind and API of ``path``, or ``None`` for traffic that is not a call."""
        return self.paths.get(path.rstrip("/") if path.endswith("/") else path)


class Exchange:
    """One LLM request and its answer, measured at the transport."""

    __slots__ = (
        "api",
        "body",
        "digest",
        "ended",
        "error",
        "final",
        "host",
        "kept",
        "kind",
        "last",
        "model",
        "openai",
        "partial",
        "pending",
        "position",
        "recorded",
        "route",
        "sink",
        "source",
        "started",
        "status",
        "stream",
        "texts",
        "wall",
    )

    def __init__(
        self, match: tuple[str, Kind, Api], host: str, content: bytes, sink: Sink, source: str
    ) -> None:
        """``host``: ``scheme://host:port``; ``content``: the request body (``b""`` if unread)."""
        self.started = perf_counter()
        self.wall = time.time()
        self.route, self.kind, self.api = match
        self.sink = sink
        self.source = source
        self.host = host
        # the two fields read from the request, found without parsing all of it (a chat's
        # body holds the whole conversation); in JSON text a quote inside a string is escaped
        found = _MODEL.search(content)
        self.model = found.group(1).decode("utf-8", errors="replace") if found else ""
        flag = _STREAM.search(content)
        if flag is None:  # Ollama streams unless told not to; OpenAI does not
            self.stream = self.api == "ollama" and self.kind != "embed"
        else:
            self.stream = flag.group(1) == b"true"
        self.digest = blake2b(content, digest_size=8).hexdigest() if content else None
        self.openai = OpenAIStream(self.kind, self.model) if self.api == "openai" else None
        self.status = 0
        self.recorded: tuple[float, tuple[tuple[float, int], ...]] | None = None
        self.position = 0  # bytes of the body seen so far
        self.partial = b""  # the start of a line whose end has not come yet
        self.pending: tuple[bytes, float] | None = None  # passed on, not yet looked at
        self.last: float | None = None  # when the latest chunk came
        self.body: list[bytes] = []  # a whole answer (or an error's body), kept to read
        self.kept = 0
        self.texts: list[tuple[float, int]] = []  # (when, end byte) of each text chunk
        self.final: Mapping[str, Any] | None = None
        self.error: str | None = None
        self.ended = False

    # --- what the transport tells -------------------------------------------------------

    def answered(self, status: int, extensions: Mapping[str, Any]) -> None:
        """The response's head is in."""
        self.status = status
        self.recorded = extensions.get("llmperf_recorded")

    def arrived(self, part: bytes, now: float) -> None:
        """A chunk of the body, about to go on to the client; looked at in :meth:`catch_up`."""
        if self.pending is not None:
            self._look(*self.pending)
        self.pending = (part, now)
        self.last = now

    def catch_up(self) -> None:
        """Look at the chunk the client has (it is asking for the next one)."""
        if self.pending is not None:
            self._look(*self.pending)
            self.pending = None

    def finish(self, outcome: str | None = None, error: BaseException | None = None) -> None:
        """The answer ended (``outcome=None``: read to its end, or closed by the client)."""
        if self.ended:
            return
        self.ended = True
        if self.pending is not None:
            self._look(*self.pending)
            self.pending = None
        now = perf_counter()
        # an answer read to its end ended with its last chunk, however late the client closed
        end = self.last if outcome is None and self.last is not None else now
        if self.partial:
            self._line(self.partial, end, self.position)
        if error is not None:
            self.error = f"{type(error).__name__}: {error}"
        elif outcome is None:
            outcome = self._ending(end)
        self.sink(self._record(outcome or "error", end))

    # --- reading the body ------------------------------------------------------------------

    def _look(self, part: bytes, now: float) -> None:
        start = self.position
        self.position = start + len(part)
        if not self.stream or self.status != 200:
            if self.kept < MAX_KEPT:
                self.body.append(part)
                self.kept += len(part)
            return
        if not self.partial and part.endswith(b"\n") and part.count(b"\n") == 1:
            self._line(part, now, self.position)  # one whole line: the common case
            return
        data = self.partial + part if self.partial else part
        begin = 0
        end = data.find(b"\n")
        while end >= 0:
            self._line(data[begin:end], now, start + end - len(self.partial) + 1)
            begin = end + 1
            end = data.find(b"\n", begin)
        self.partial = data[begin:] if begin < len(data) else b""

    def _line(self, line: bytes, now: float, at: int) -> None:
        """One line of a stream; ``at``: the body's byte just after it."""
        if len(line) < 3 and not line.strip():
            return
        if self.openai is not None:
            chunk = self.openai.feed(line.decode("utf-8", errors="replace").strip())
            if chunk is not None:
                self._chunk(chunk, now, at)
            return
        # Ollama's lines: a chunk on its way (compact JSON, as Ollama and the emulator write
        # it) is a text chunk unless its text field is empty; the last line (done), an error
        # and JSON of another spacing are parsed
        if b'"error"' not in line:
            if b'"done":false' in line:
                if b'":""' in line and (b'"response":""' in line or b'"content":""' in line):
                    return
                self.texts.append((now, at))
                return
            if b'"done":true' in line:  # the statistics, without parsing the token context
                if not (b'"response":""' in line or b'"content":""' in line):
                    self.texts.append((now, at))
                self.final = _statistics(line)
                return
        chunk = _object(line)
        if chunk:
            self._chunk(chunk, now, at)

    def _chunk(self, chunk: Mapping[str, Any], now: float, at: int) -> None:
        if "error" in chunk:
            self.error = error_text(chunk)
            return
        if chunk_text(chunk):
            self.texts.append((now, at))
        if chunk.get("done"):
            self.final = chunk

    def _ending(self, end: float) -> str:
        """The outcome of an answer that ended without a transport error."""
        if self.status != 200:
            data = b"".join(self.body)
            self.error = f"HTTP {self.status}: {error_text(_object(data) or _text(data))}"
            return "error"
        if not self.stream:
            data = b"".join(self.body)
            if self.openai is None and b'"error"' not in data:  # Ollama's, as usual
                self.final = _statistics(data)
            else:
                answer = _object(data)
                if "error" in answer:
                    self.error = error_text(answer)
                    return "error"
                self.final = answer if self.openai is None else from_openai(self.kind, answer)
            if self.kind != "embed":  # the whole answer is its first token, as for our client
                self.texts.append((end, self.position))
            return "ok"
        if self.error is not None:
            return "error"
        if self.final is None and self.openai is not None and self.texts:
            self.final = self.openai.final_chunk()
        return "ok" if self.final is not None else "cancelled"

    # --- the record -----------------------------------------------------------------------

    def _record(self, outcome: str, end: float) -> CallRecord:
        final = self.final or {}
        times = [when - self.started for when, _ in self.texts]
        total, timing = end - self.started, "live"
        if self.recorded is not None:
            times, total = self._recorded_times()
            timing = "recorded"
        output = final.get("eval_count")
        if output is None and self.stream and self.texts:
            output = len(self.texts)
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        return CallRecord(
            self.route,
            self.model,
            None,
            self.host,
            self.stream,
            "call",
            "off",
            self.wall,
            total,
            times[0] if times else None,
            GapSummary.of(gaps) if gaps else None,
            output,
            ServerStats.of(final),
            None,
            0,
            (),
            outcome,
            self.error,
            None,  # the phase is the client's to know
            timing,
            self.digest,
            self.source,
        )

    def _recorded_times(self) -> tuple[list[float], float]:
        """The text chunks' times and the total as the cassette recorded them."""
        headers_at, chunks = self.recorded  # type: ignore[misc]
        ends: list[tuple[int, float]] = []  # (last byte + 1, offset) of each recorded chunk
        seen = 0
        for offset, length in chunks:
            seen += length
            ends.append((seen, offset))
        times = []
        index = 0
        for _, at in self.texts:
            while index < len(ends) - 1 and ends[index][0] < at:
                index += 1
            times.append(ends[index][1] if ends else headers_at)
        total = ends[-1][1] if ends else headers_at
        return times, total


PORTS = {"http": 80, "https": 443}


def origin(scheme: str, host: str, port: int | None) -> str:
    """``scheme://host:port``, as the records name a host."""
    name = f"[{host}]" if ":" in host else host
    return f"{scheme}://{name}:{port or PORTS.get(scheme, 80)}"


_MODEL = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.)*)"')
_STREAM = re.compile(rb'"stream"\s*:\s*(true|false)')
_STATISTIC = re.compile(b'"(' + "|".join(STATISTICS).encode() + rb')"\s*:\s*(\d+)')


def _statistics(data: bytes) -> dict[str, Any]:
    """The ``done`` chunk's statistics, read off its text (its token ``context`` can be a long
    list of numbers, which a parse would turn into objects for nothing)."""
    found: dict[str, Any] = {key.decode(): int(value) for key, value in _STATISTIC.findall(data)}
    found["done"] = True
    return found


def _object(data: bytes) -> dict[str, Any]:
    """``data`` as a JSON object, or an empty one."""
    if not data:
        return {}
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _text(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    return text if len(text) <= 200 else text[:197] + "..."
