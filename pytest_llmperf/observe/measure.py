"""Measuring one LLM exchange while it passes the HTTP transport, whatever client made it.

An :class:`Exchange` starts when a request to an LLM route is sent and ends when its answer
has been read to the end, closed early, or failed; it then hands one :class:`CallRecord` to
the recorder that was current when the request started. The chunks go on to the client as
they arrive, with only their arrival time noted; they are read when the answer ends.

The definitions are the client's (see :mod:`pytest_llmperf.observe.records`): time to first token
is from the request to the first chunk that carries text; gaps are between successive text
chunks; the statistics are the server's (Ollama's final chunk, OpenAI's ``usage``). For an
answer replayed from a cassette, times are the ones the cassette recorded, found by the
byte at which each text line ended.
"""

from __future__ import annotations

import itertools
import json
import operator
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
from pytest_llmperf.observe.scan import newlines, newlines_each

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
BATCH = 1024  # chunks of an answer kept before they are read (the rest: when it ends)
_LAST_BYTE = operator.itemgetter(-1)
_ONLY_NEWLINE = {ord("\n")}  # the last bytes of parts that each end a line
_LINE_END = re.compile(b"\n")

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
    """One LLM request and its answer, measured at the transport.

    While the answer passes, only its chunks and their arrival times are kept
    (:meth:`arrived`, or the same two appends made in httpx's body loop by
    :mod:`~pytest_llmperf.observe.streams`); they are read when the answer ends, or every
    :data:`BATCH` chunks of a long one. So the client's reading pays two list appends and a
    clock reading a chunk.
    """

    __slots__ = (
        "api",
        "body",
        "content",
        "digest",
        "ended",
        "error",
        "final",
        "fresh",
        "gathered",
        "host",
        "kept",
        "kind",
        "last",
        "model",
        "openai",
        "partial",
        "parts",
        "position",
        "recorded",
        "route",
        "sink",
        "source",
        "started",
        "status",
        "stream",
        "text_ends",
        "text_times",
        "times",
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
        self.content = content  # read when the answer ends (model, stream, digest)
        self.status = 0
        self.recorded: tuple[float, tuple[tuple[float, int], ...]] | None = None
        self.parts: list[bytes] = []  # the chunks passed on, not yet read
        self.times: list[float] = []  # when each of them came
        self.last: float | None = None  # when the latest chunk already read came
        self.ended = False
        self.fresh = True  # the request's fields not read yet
        # the server's statistics: the final chunk, or read off its text
        self.final: Mapping[str, Any] | ServerStats | None = None
        self.error: str | None = None

    # --- what the transport tells -------------------------------------------------------

    def answered(self, status: int, extensions: Mapping[str, Any]) -> None:
        """The response's head is in."""
        self.status = status
        self.recorded = extensions.get("llmperf_recorded")

    def arrived(self, part: bytes, now: float) -> None:
        """A chunk of the body, passed on to the client at ``now``; read later."""
        self.parts.append(part)
        self.times.append(now)
        if len(self.parts) >= BATCH:
            self.read_batch()

    def finish(self, outcome: str | None = None, error: BaseException | None = None) -> None:
        """The answer ended (``outcome=None``: read to its end, or closed by the client)."""
        if self.ended:
            return
        self.ended = True
        now = perf_counter()
        self.read_batch()
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

    def read_batch(self) -> None:
        """Read the chunks kept so far (the first time: the request's fields too)."""
        if self.fresh:
            self._read_request()
        parts, times = self.parts, self.times
        if not parts:
            return
        self.last = times[-1]
        if not self.stream or self.status != 200:  # a whole body (or an error's): kept
            self._keep(parts)
        elif self.openai is not None or not self._compact_lines(parts, times):
            for part, now in zip(parts, times, strict=True):
                self._look(part, now)
        parts.clear()  # (arrived() appends to these lists)
        times.clear()

    def _read_request(self) -> None:
        # the two fields read from the request, found without parsing all of it (a chat's
        # body holds the whole conversation); in JSON text a quote inside a string is escaped
        self.fresh = False
        content = self.content
        self.model, flag = _fields(content)
        if flag is None:  # Ollama streams unless told not to; OpenAI does not
            self.stream = self.api == "ollama" and self.kind != "embed"
        else:
            self.stream = flag
        self.digest = blake2b(content, digest_size=8).hexdigest() if content else None
        self.openai = OpenAIStream(self.kind, self.model) if self.api == "openai" else None
        self.position = 0  # bytes of the body read so far
        self.partial = b""  # the start of a line whose end has not come yet
        self.body: list[bytes] = []  # a whole answer (or an error's body), kept to read
        self.kept = 0
        self.text_times: list[float] = []  # when each text chunk came
        self.gathered = False  # whether some of them came together in one read
        self.text_ends: list[int] = []  # the body's byte just after each text chunk

    def _compact_lines(self, parts: list[bytes], times: list[float]) -> bool:
        """Read an Ollama stream of compact JSON lines whose chunks each end at a line's end,
        as Ollama and the emulator send them (a line a chunk, or several gathered into one
        write), with a few scans of the whole batch (a call per line costs more than a scan
        of its bytes); ``False``, with nothing read, for any other shape."""
        if self.partial or not all(parts):
            return False
        count = len(parts)
        if set(map(_LAST_BYTE, parts)) != _ONLY_NEWLINE:
            return False
        data = b"".join(parts)
        lines = newlines(data)
        cut = data.rfind(b"\n", 0, len(data) - 1) + 1  # where the last line starts
        last = data[cut:]
        done = last.find(b'"done":true') >= 0
        # each line a chunk on its way (its "done" false), but the last, which may be the
        # done line. An error line ({"error":...}, which has no "done") breaks that count, so
        # only the last line, which may hold "done":true, is looked at for an error
        if data.count(b'"done":false') != lines - done or last.find(b'"error":') >= 0:
            return False
        # each is a text chunk; only the last line (the done line) may have an empty field,
        # and is not one if its text field is empty
        text = lines
        if data.find(b'":""', 0, cut) >= 0:
            return False
        if last.find(b'":""') >= 0:
            if not done:
                return False
            if last.find(b'"response":""') >= 0 or last.find(b'"content":""') >= 0:
                text -= 1
        if done:
            self.final = _statistics(last)
        start = self.position
        self.position = start + len(data)
        if lines == count:  # a line a chunk: each line came with its chunk
            self.text_times += times[:text] if text < count else times
            if self.recorded is not None:  # where each line ends: the recorded times go by it
                ends = itertools.accumulate(map(len, parts[:text]), initial=start)
                self.text_ends += itertools.islice(ends, 1, None)
            return True
        # lines gathered into chunks: each line came with the chunk that holds it
        self.gathered = True
        self.text_times += _line_times(parts, times, text)
        if self.recorded is not None:
            found = _LINE_END.finditer(data)
            self.text_ends += (start + match.end() for match in itertools.islice(found, text))
        return True

    def _keep(self, parts: list[bytes]) -> None:
        """Keep the parts of a whole body, up to :data:`MAX_KEPT`, to read when it ends."""
        size = sum(map(len, parts)) if len(parts) > 1 else len(parts[0])
        self.position += size
        if self.kept < MAX_KEPT:
            self.body += parts
            self.kept += size

    def _look(self, part: bytes, now: float) -> None:
        start = self.position
        self.position = start + len(part)
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
        if line.find(b'"error"') < 0:
            if line.find(b'"done":false') >= 0:
                if line.find(b'":""') >= 0 and (
                    line.find(b'"response":""') >= 0 or line.find(b'"content":""') >= 0
                ):
                    return
                self.text_times.append(now)
                self.text_ends.append(at)
                return
            if line.find(b'"done":true') >= 0:  # the statistics, without parsing the token context
                if not (line.find(b'"response":""') >= 0 or line.find(b'"content":""') >= 0):
                    self.text_times.append(now)
                    self.text_ends.append(at)
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
            self.text_times.append(now)
            self.text_ends.append(at)
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
            # Ollama's, as usual: its statistics end it (an error has none); or no error in it
            stats = None if self.openai is not None else _in_order(data)
            if stats is None and self.openai is None and data.find(b'"error"') < 0:
                stats = _searched(data)
            if stats is not None:
                self.final = stats
            else:
                answer = _object(data)
                if "error" in answer:
                    self.error = error_text(answer)
                    return "error"
                self.final = answer if self.openai is None else from_openai(self.kind, answer)
            if self.kind != "embed":  # the whole answer is its first token, as for our client
                self.text_times.append(end)
                self.text_ends.append(self.position)
            return "ok"
        if self.error is not None:
            return "error"
        if self.final is None and self.openai is not None and self.text_times:
            self.final = self.openai.final_chunk()
        return "ok" if self.final is not None else "cancelled"

    # --- the record -----------------------------------------------------------------------

    def _record(self, outcome: str, end: float) -> CallRecord:
        final = self.final
        stats = final if isinstance(final, ServerStats) else ServerStats.of(final or {})
        times = self.text_times
        started = self.started
        total, timing, gathered = end - started, "live", self.gathered
        if self.recorded is not None:  # (a cassette's times need not be in order)
            times, total = self._recorded_times()
            started, timing, gathered = 0.0, "recorded", False
        output = stats.eval_count
        if output is None and self.stream and times:
            output = len(times)
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
            times[0] - started if times else None,
            GapSummary.between(times, gathered) if len(times) > 1 else None,
            output,
            stats,
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
        for at in self.text_ends:
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


_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]*(?:\\.[^"\\]*)*)"')
_STREAM = re.compile(rb'"stream"\s*:\s*(true|false)')
_BACKSLASH, _T, _F = b"\\tf"
_STATISTIC = re.compile(b'"(' + "|".join(STATISTICS).encode() + rb')"\s*:\s*(\d+)')


# Ollama's order, as it writes them (the common case: one match, no search)
_OLLAMA_STATISTICS = re.compile(
    rb'"total_duration":(\d+)(?:,"load_duration":(\d+))?,"prompt_eval_count":(\d+),'
    rb'"prompt_eval_duration":(\d+),"eval_count":(\d+),"eval_duration":(\d+)[,}]'
)


def _line_times(parts: list[bytes], times: list[float], lines: int) -> Iterable[float]:
    """The first ``lines`` lines' times: each line came with the chunk that holds it."""
    if len(parts) == 1:
        return itertools.repeat(times[0], lines)
    each = map(itertools.repeat, times, newlines_each(parts))
    return itertools.islice(itertools.chain.from_iterable(each), lines)


def _field(pattern: re.Pattern[bytes], key: bytes, content: bytes) -> re.Match[bytes] | None:
    """``pattern`` (which starts with ``key``) where ``key`` first is, else anywhere."""
    at = content.find(key)
    if at < 0:
        return None
    return pattern.match(content, at) or pattern.search(content, at + 1)


def _fields(content: bytes) -> tuple[str, bool | None]:
    """The request's ``model``, and its ``stream`` flag (``None`` where it has none): in
    compact JSON, as clients send it, found with a few finds; else with a search."""
    at = content.find(b'"model":"') + 9
    end = content.find(b'"', at) if at > 8 else -1
    if end > 0 and content[end - 1] != _BACKSLASH:  # the quote that ends it, not an escaped one
        model = content[at:end].decode("utf-8", "replace")
    else:
        found = _field(_MODEL, b'"model"', content)
        model = found.group(1).decode("utf-8", "replace") if found else ""
    at = content.find(b'"stream":') + 9
    if 8 < at < len(content):  # in JSON text, a value that starts with t or f is true or false
        first = content[at]
        if first == _T:
            return model, True
        if first == _F:
            return model, False
    flag = _field(_STREAM, b'"stream"', content)
    return model, None if flag is None else flag.group(1) == b"true"


def _statistics(data: bytes) -> ServerStats:
    """The ``done`` chunk's statistics, read off its text (its token ``context`` can be a long
    list of numbers, which a parse would turn into objects for nothing)."""
    return _in_order(data) or _searched(data)


def _searched(data: bytes) -> ServerStats:
    """The statistics not in Ollama's order: each where it is, after the ``done`` key (they
    follow it in Ollama's order and in sorted order)."""
    start = data.rfind(b'"done"')
    pairs = _STATISTIC.findall(data, max(start, 0))
    return ServerStats.of({key.decode(): int(value) for key, value in pairs})


def _in_order(data: bytes) -> ServerStats | None:
    """The statistics as Ollama writes them, the last fields of an answer (found from its
    end), or ``None`` where they are not there in that order."""
    at = data.rfind(b'"total_duration":')
    found = _OLLAMA_STATISTICS.match(data, at) if at >= 0 else None
    if found is None:
        return None
    total, load, prompt_count, prompt, count, generation = found.groups()
    return ServerStats(  # ServerStats.of, without a dict between (float() reads digits faster)
        float(total) / 1e9,
        None if load is None else float(load) / 1e9,
        int(prompt_count),
        float(prompt) / 1e9,
        int(count),
        float(generation) / 1e9,
    )


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
