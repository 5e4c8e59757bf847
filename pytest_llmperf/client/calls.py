"""The logic of a call, written once as a generator of I/O steps.

:meth:`Core.run` decides everything about a call (tier, model, cache, host, timeouts,
retries, fallback, the record) and *yields* the I/O it needs as small step objects: open a
request (:class:`Open`), read a body whole (:class:`ReadBody`), read a stream as it arrives
(:class:`Stream`), sleep (:class:`Sleep`), or hand a cached chunk to the caller
(:class:`Emit`). The
sync and async clients are thin drivers that perform those steps with httpx's sync or async
API and send the results (or the exceptions) back in. No logic is written twice.

How the timeouts map onto httpx: Ollama sends the response headers with the first chunk
(after loading the model and reading the prompt), so the read limit while waiting for the
headers is the ``first_token`` limit (``total`` for an answer that is not streamed). Once
the headers are in, the read limit of the request becomes ``min(stall, time left)``.

A read limit bounds one wait for data, so a server that sends a byte every half second, or
bytes with no newline, never trips it. So the request's timeouts also carry ``due``: the
:func:`time.perf_counter` value at which the running phase ends (first token, then each
next chunk within the stall limit, never past the total). The readers check it at every
part of the body that arrives, and our transports (the async face's
:mod:`~pytest_llmperf.client.transport`, the sync face's
:mod:`~pytest_llmperf.client.sync_transport`) cut every wait at it, so a call ends on time
whatever the server sends. A line of a stream, or a body read whole, longer than
``max_line_bytes`` is an :class:`LLMStreamError`.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

import httpx

from pytest_llmperf.client.cache import ResponseCache
from pytest_llmperf.client.hosts import HostPool, backoff_s
from pytest_llmperf.client.protocol import (
    ROUTES,
    Api,
    Kind,
    OpenAIStream,
    ServerStats,
    chunk_problem,
    chunk_text,
    error_text,
    from_openai,
    merge,
    repeatable,
    to_openai,
)
from pytest_llmperf.client.tiers import Tiers
from pytest_llmperf.client.timeouts import AdaptiveTimeouts, Limits
from pytest_llmperf.client.transport import WHOLE
from pytest_llmperf.errors import (
    ConfigurationError,
    LLMConnectError,
    LLMError,
    LLMServerError,
    LLMStreamError,
    LLMTimeoutError,
    ModelNotFoundError,
)
from pytest_llmperf.observe.point import OWN
from pytest_llmperf.observe.records import CallRecord, GapSummary

perf_counter = time.perf_counter
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
# The longest line of a stream (or body read whole) a client takes: far above any answer of
# Ollama's (an embedding of a few thousand numbers is tens of kB), far below a memory balloon.
MAX_LINE_BYTES = 16 * 1024 * 1024
# Every JSON body says so: FastAPI servers (llama-cpp-python's, vLLM) refuse one without it.
JSON_CONTENT_TYPE = "application/json"
BLOCKED = "Network is disabled"  # how pytest-recording's --block-network refuses a connection
# The way out when an answer is not JSON (an error message's end).
_WHICH_API = "is this an Ollama server? (for an OpenAI-compatible one use api='openai')"

# --- the steps a driver performs --------------------------------------------------------


class Open:
    """Send a request; the driver returns the response once its headers are in.

    ``host`` names the server (as the host pool does): the faces' own httpx clients merge
    their headers with ``headers`` once per host (see :mod:`pytest_llmperf.client.faces`).
    ``whole``: the answer will be read whole (:class:`ReadBody`), which the request tells
    our transport (:data:`~pytest_llmperf.client.transport.WHOLE`).
    """

    __slots__ = ("content", "extensions", "headers", "host", "method", "timeouts", "url")

    def __init__(
        self,
        method: str,
        url: httpx.URL,
        content: bytes | None,
        timeouts: dict[str, float],
        headers: Mapping[str, str] | None,
        host: str = "",
        whole: bool = False,
    ) -> None:
        self.method = method
        self.url = url
        self.host = host or url.netloc.decode("ascii")  # the server it goes to
        self.content = content
        self.timeouts = timeouts
        self.headers = headers
        # the timeouts stay this dict: a limit changed once the headers are in applies
        self.extensions = {"timeout": timeouts, OWN: True}  # we record this call ourselves
        if whole:
            self.extensions[WHOLE] = True


class ReadBody:
    """Read the whole body of ``response`` within the call's limits; the driver returns it.

    The driver hands each part of the body to :meth:`add` as it arrives (or a body it got
    at once to :meth:`at_once`) and returns :meth:`value`. A body past ``most`` bytes is
    an :class:`LLMStreamError`; a part that comes after ``timeouts["due"]`` is a
    ``httpx.ReadTimeout``, as a wait cut at the due is.
    """

    __slots__ = ("most", "parts", "response", "size", "timeouts", "where")

    def __init__(
        self, response: httpx.Response, where: _Where, most: int, timeouts: dict[str, float]
    ) -> None:
        self.response = response
        self.where = where
        self.most = most
        self.timeouts = timeouts
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, part: bytes) -> None:
        __tracebackhide__ = True
        self.size += len(part)
        if self.size > self.most:
            raise self.where.too_long("the answer", self.most)
        self.parts.append(part)
        if perf_counter() > self.timeouts["due"]:
            raise httpx.ReadTimeout("the call's time ran out while its answer was arriving")

    def at_once(self, data: bytes) -> bytes:
        __tracebackhide__ = True
        if len(data) > self.most:
            raise self.where.too_long("the answer", self.most)
        return data

    def value(self) -> bytes:
        parts = self.parts
        return parts[0] if len(parts) == 1 else b"".join(parts)


class Stream:
    """Read the body of ``response`` as it arrives, handing each part to ``take``.

    ``take`` is ``reader.take`` (looked up once). The driver hands every chunk it returns
    to the caller and, at the end of the body, returns ``reader.finish()`` (whose last
    chunk, the final ``done`` one, it hands out last). The logic of lines, limits and
    measures stays here, in the reader; the driver's loop is a few lines with no trip
    through the call's generators per chunk.
    """

    __slots__ = ("reader", "response", "take")

    def __init__(self, response: httpx.Response, reader: StreamReader) -> None:
        self.response = response
        self.reader = reader
        self.take = reader.take


class Sleep:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Emit:
    """Hand one chunk (of a stream served from the cache) to the caller."""

    __slots__ = ("chunk",)

    def __init__(self, chunk: dict[str, Any]) -> None:
        self.chunk = chunk


Step = Open | ReadBody | Stream | Sleep | Emit
Steps = Generator[Step, Any, Any]

# --- what a call asks for ---------------------------------------------------------------


@dataclass(slots=True, eq=False, repr=False)
class Call:
    """One call as the caller asked for it (``request`` is Ollama's body; model optional).

    ``cache``: ``None`` caches when the answer is repeatable, ``True`` always, ``False``
    never. ``timeout``: ``None`` for the tier's (adaptive) limits, a number for the total
    limit of every phase, or :class:`~pytest_llmperf.client.timeouts.Limits`. ``purpose``:
    ``call``, ``warm_up`` or ``unload``.
    """

    kind: Kind
    request: Mapping[str, Any]
    stream: bool = False
    tier: str | None = None
    cache: bool | None = None
    timeout: Limits | float | None = None
    fallback: bool | None = None
    purpose: str = "call"

    def __repr__(self) -> str:
        return f"Call({self.kind!r}, {self.request!r}, stream={self.stream}, tier={self.tier!r})"


class _Trace:
    """What is measured while a call runs; becomes its :class:`CallRecord`."""

    __slots__ = (
        "attempt",
        "cache",
        "call",
        "digest",
        "emitted",
        "fallback_from",
        "final",
        "first_text",
        "gaps",
        "host",
        "last_text",
        "limits",
        "model",
        "recorded",
        "retries",
        "route",
        "start",
        "text_chunks",
        "tier",
        "wall",
    )

    def __init__(self, call: Call, route: str, start: float, wall: float) -> None:
        self.call = call
        self.route = route
        self.start = start
        self.wall = wall
        self.model = ""
        self.tier: str | None = None
        self.host: str | None = None
        self.cache = "off"
        self.digest: str | None = None  # of the request body, to spot repeats the cache missed
        self.limits: Limits | None = None
        self.retries = 0
        self.fallback_from: tuple[str, ...] = ()
        self.first_text: float | None = None
        self.last_text: float | None = None
        self.gaps: list[float] = []
        self.text_chunks = 0
        self.emitted = False
        self.final: Mapping[str, Any] | None = None
        self.recorded: tuple[float, tuple[tuple[float, int], ...]] | None = None
        self.attempt = start  # when the attempt that answered began

    def text_at(self, now: float) -> None:
        last = self.last_text
        if last is None:
            self.first_text = now
        else:
            self.gaps.append(now - last)
        self.last_text = now
        self.text_chunks += 1

    def record(self, outcome: str, error: BaseException | None = None) -> CallRecord:
        end = perf_counter()
        final = self.final or {}
        output = final.get("eval_count")
        if output is None and self.text_chunks:
            output = self.text_chunks
        ttft = None if self.first_text is None else self.first_text - self.start
        total, gaps, timing = end - self.start, self.gaps, "live"
        recorded = self.recorded
        if recorded is not None and not self.cache.startswith("hit"):
            ttft, total, gaps = self._recorded_times(recorded, ttft)
            timing = "recorded"
        call = self.call
        return CallRecord(  # positional: this runs on every call, cache hits included
            self.route,
            self.model,
            self.tier,
            self.host,
            call.stream,
            call.purpose,
            self.cache,
            self.wall,
            total,
            ttft,
            GapSummary.of(gaps) if gaps else None,
            output,
            ServerStats.of(final),
            self.limits,
            self.retries,
            self.fallback_from,
            outcome,
            None if error is None else f"{type(error).__name__}: {error}",
            error.phase if isinstance(error, LLMTimeoutError) else None,
            timing,
            self.digest,
        )

    def _recorded_times(
        self, recorded: tuple[float, tuple[tuple[float, int], ...]], ttft: float | None
    ) -> tuple[float | None, float, list[float]]:
        """TTFT, total and gaps as the cassette recorded them (a chunk is a line there)."""
        headers_at, chunks = recorded
        offsets = [offset for offset, _ in chunks] or [headers_at]
        if not self.call.stream:
            return (offsets[-1] if ttft is not None else None), offsets[-1], []
        texts = offsets[: max(self.text_chunks, 1)]
        gaps = [later - earlier for earlier, later in itertools.pairwise(texts)]
        return (texts[0] if ttft is not None else None), offsets[-1], gaps


# --- the logic ------------------------------------------------------------------------------


class Core:
    """Everything a client knows and decides; the faces only perform its steps."""

    def __init__(
        self,
        pool: HostPool,
        *,
        api: Api = "ollama",
        tiers: Tiers | None = None,
        timeouts: AdaptiveTimeouts | None = None,
        cache: ResponseCache | None = None,
        fallback: bool = False,
        retries: int = 2,
        headers: Mapping[str, str] | None = None,
        on_record: Any = None,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        if api not in ROUTES:
            raise ConfigurationError(f"unknown api {api!r}: use 'ollama' or 'openai'")
        if isinstance(max_line_bytes, bool) or not isinstance(max_line_bytes, int):
            raise ConfigurationError(
                f"max_line_bytes={max_line_bytes!r}: give a whole number of bytes (default "
                f"{MAX_LINE_BYTES})"
            )
        if max_line_bytes < 1:
            raise ConfigurationError(f"max_line_bytes={max_line_bytes}: must be 1 or more")
        self.max_line = max_line_bytes
        self.pool = pool
        self.api: Api = api
        self.tiers = tiers or Tiers()
        self.timeouts = timeouts or AdaptiveTimeouts()
        self.cache = cache
        self.fallback = fallback
        self.retries = retries
        self.headers = dict(headers) if headers else None
        self.json_headers = _with_json_type(headers)  # for requests with a body
        self.on_record = on_record
        self._urls: dict[tuple[str, str], httpx.URL] = {}

    def _url(self, host: str, path: str) -> httpx.URL:
        """The parsed URL of a route on a host, parsed once (httpx parses a str every call)."""
        url = self._urls.get((host, path))
        if url is None:
            url = self._urls[(host, path)] = httpx.URL(host + path)
        return url

    # --- one call -----------------------------------------------------------------------

    def run(self, call: Call) -> Steps:
        """The steps of one call; returns the whole answer (``None`` for a stream)."""
        __tracebackhide__ = True
        route = ROUTES[self.api][call.kind]
        trace = _Trace(call, route, perf_counter(), time.time())
        try:
            answer = yield from self._run(call, trace)
        except LLMTimeoutError as exc:
            self._record(trace, "timeout", exc)
            raise
        except (LLMError, ConfigurationError) as exc:
            self._record(trace, "error", exc)
            raise
        except GeneratorExit:
            self._record(trace, "cancelled")
            raise
        except BaseException as exc:
            self._record(trace, "cancelled" if _cancel(exc) else "error", exc)
            raise
        self._record(trace, "ok")
        return answer

    def _record(self, trace: _Trace, outcome: str, error: BaseException | None = None) -> None:
        if self.on_record is not None:
            self.on_record(trace.record(outcome, error))

    def _run(self, call: Call, trace: _Trace) -> Steps:
        __tracebackhide__ = True
        tier, model = self._choose(call)
        trace.tier, trace.model = tier, model
        request = {**call.request, "model": model}
        identity = None
        if self.cache is not None and self._cacheable(call, request):
            identity = self.cache.identity(trace.route, request)
            hit = self.cache.get(identity)
            if hit is not None:
                trace.cache, chunks = hit
                return (yield from self._serve_cached(call, trace, chunks))
            trace.cache = "miss"
        elif self.cache is not None:
            trace.cache = "bypass"
        chain = [tier] + (self.tiers.faster(tier) if tier and self._falls_back(call) else [])
        for index, step_tier in enumerate(chain):
            if index and step_tier is not None:  # a fallback (a tier, never None)
                trace.fallback_from += (trace.tier or trace.model,)
                trace.tier, trace.model = step_tier, self.tiers.model(step_tier)
                request["model"] = trace.model
            limits = self._limits(call, trace.model, trace.tier)
            trace.limits = limits
            try:
                chunks = yield from self._on_hosts(call, trace, request, limits)
            except LLMTimeoutError:
                if self.timeouts.adapted(trace.model):
                    self.timeouts.forget(trace.model)
                if index + 1 < len(chain) and not trace.emitted:
                    continue
                raise
            break
        if identity is not None and self.cache is not None and not trace.fallback_from:
            self.cache.put(identity, chunks)
        self._observe(trace)
        if call.stream:
            return None
        return chunks[0] if len(chunks) == 1 else merge(chunks)

    def _choose(self, call: Call) -> tuple[str | None, str]:
        model = call.request.get("model")
        if call.tier is not None:
            tier = self.tiers.pick(call.tier, call.request)
            return tier, model or self.tiers.model(tier)
        if not model:
            raise ConfigurationError(
                f"no model for this {call.kind} call: pass model='NAME' or tier='fast' "
                f"(tiers: {', '.join(self.tiers.models)})"
            )
        return self.tiers.tier_of(model), model

    def _cacheable(self, call: Call, request: Mapping[str, Any]) -> bool:
        if call.cache is not None:
            return call.cache
        return call.purpose == "call" and repeatable(call.kind, request)

    def _falls_back(self, call: Call) -> bool:
        return self.fallback if call.fallback is None else call.fallback

    def _limits(self, call: Call, model: str, tier: str | None) -> Limits:
        if isinstance(call.timeout, Limits):
            return call.timeout
        if call.purpose != "call":  # a warm-up loads the model: limits of warm calls don't fit
            return self.timeouts.ceiling(tier)
        if call.timeout is not None:
            if isinstance(call.timeout, bool) or not isinstance(call.timeout, (int, float)):
                raise ConfigurationError(
                    f"timeout={call.timeout!r}: give a number of seconds above 0 (the total "
                    "limit of every phase) or Limits(total=..., first_token=..., stall=...)"
                )
            total = float(call.timeout)
            return Limits(total=total, first_token=total, stall=total, connect=min(5.0, total))
        return self.timeouts.limits(model, tier)

    def _observe(self, trace: _Trace) -> None:
        """Teach the adaptive timeouts what the attempt that answered took."""
        if trace.call.purpose != "call" or trace.recorded is not None:
            return
        began = trace.attempt
        first = None
        if trace.call.stream and trace.first_text is not None:
            first = trace.first_text - began
        gap = max(trace.gaps) if trace.call.stream and trace.gaps else None
        self.timeouts.observe(trace.model, first, gap, perf_counter() - began)

    def _serve_cached(self, call: Call, trace: _Trace, chunks: list[dict[str, Any]]) -> Steps:
        __tracebackhide__ = True
        trace.final = chunks[-1]
        if not call.stream:
            trace.text_at(perf_counter())
            return chunks[0] if len(chunks) == 1 else merge(chunks)
        for chunk in chunks:
            if chunk_text(chunk):
                trace.text_at(perf_counter())
            trace.emitted = True
            yield Emit(chunk)
        return None

    # --- hosts and retries ----------------------------------------------------------------

    def _on_hosts(
        self, call: Call, trace: _Trace, request: dict[str, Any], limits: Limits
    ) -> Generator[Step, Any, list[dict[str, Any]]]:
        __tracebackhide__ = True
        avoid: list[str] = []
        while True:
            host = self.pool.acquire(avoid)
            trace.host = host
            began = trace.attempt = perf_counter()
            try:
                chunks = yield from self._exchange(call, trace, host, request, limits)
            except (LLMConnectError, LLMServerError) as exc:
                retry = isinstance(exc, LLMConnectError) or exc.status_code == 503
                self.pool.release(host, failed=retry)
                if not retry or trace.emitted or trace.retries >= self.retries:
                    raise
                trace.retries += 1
                avoid.append(host)
                yield Sleep(backoff_s(trace.retries))
                continue
            except BaseException:
                self.pool.release(host)
                raise
            self.pool.release(host, latency_s=perf_counter() - began)
            return chunks

    # --- one exchange with one host -------------------------------------------------------

    def _exchange(
        self, call: Call, trace: _Trace, host: str, request: dict[str, Any], limits: Limits
    ) -> Generator[Step, Any, list[dict[str, Any]]]:
        __tracebackhide__ = True
        stream = call.stream
        if self.api == "openai":
            payload = to_openai(call.kind, request, stream)
        else:
            payload = {**request, "stream": stream}
        content = _COMPACT.encode(payload).encode()
        trace.digest = blake2b(content, digest_size=8).hexdigest()
        began = perf_counter()
        waiting, first, timeouts = _first_phase(limits, stream, began)
        where = _Where(host, trace.model, trace.route, trace.tier)
        reader: StreamReader | None = None
        try:
            url = self._url(host, trace.route)
            response = yield Open(
                "POST", url, content, timeouts, self.json_headers, host, whole=not stream
            )
            trace.recorded = response.extensions.get("llmperf_recorded")
        except (httpx.TransportError, RuntimeError) as exc:
            raise _not_opened(exc, where, waiting, timeouts, began) from None
        try:
            if response.status_code != 200:
                data = yield ReadBody(response, where, self.max_line, timeouts)
                raise where.status_error(response.status_code, data)
            if not stream:
                data = yield ReadBody(response, where, self.max_line, timeouts)
                answer = self._whole(call, where, data)
                trace.final = answer
                if chunk_text(answer) or call.kind != "embed":
                    trace.text_at(perf_counter())
                return [answer]
            timeouts["read"] = max(min(limits.stall, began + limits.total - perf_counter()), 0.001)
            openai = OpenAIStream(call.kind, trace.model) if self.api == "openai" else None
            reader = StreamReader(trace, where, limits, began, timeouts, self.max_line, openai)
            chunks: list[dict[str, Any]] = yield Stream(response, reader)
            return chunks
        except httpx.TimeoutException:
            phase, limit = (waiting, first) if reader is None else reader.timed_out()
            raise where.timeout(phase, limit, perf_counter() - began) from None
        except httpx.TransportError as exc:
            if trace.emitted:
                raise where.cut(exc) from None
            raise where.unreachable(exc) from None

    def _whole(self, call: Call, where: _Where, data: bytes) -> dict[str, Any]:
        answer = where.decode(data)
        if "error" in answer:
            raise where.wrong(f"the server answered 200 with an error: {error_text(answer)}")
        if self.api == "openai":
            try:
                answer = from_openai(call.kind, answer)
            except (AttributeError, TypeError, ValueError, KeyError, IndexError):
                raise where.bad_shape("the answer", data, "not an OpenAI answer") from None
        problem = chunk_problem(answer)
        if problem is not None:
            raise where.bad_shape("the answer", data, problem)
        return answer

    # --- calls that are not generations ---------------------------------------------------

    def request_json(
        self, method: str, path: str, payload: Mapping[str, Any] | None, timeout: float = 30.0
    ) -> Steps:
        """A plain JSON request (``list``, ``ps``, ``show``), on the pool's least busy host."""
        __tracebackhide__ = True
        host = self.pool.acquire()
        where = _Where(host, str((payload or {}).get("model", "")), path, None)
        content = None if payload is None else json.dumps(payload).encode()
        headers = self.headers if content is None else self.json_headers
        began = perf_counter()
        timeouts = {"connect": min(5.0, timeout), "read": timeout, "write": timeout}
        timeouts["pool"], timeouts["due"] = timeout, began + timeout
        try:
            try:
                url = self._url(host, path)
                response = yield Open(method, url, content, timeouts, headers, host, whole=True)
                data = yield ReadBody(response, where, self.max_line, timeouts)
            except httpx.TimeoutException as exc:
                phase = "connect" if isinstance(exc, httpx.ConnectTimeout) else "total"
                raise where.timeout(phase, timeout, perf_counter() - began) from None
            except httpx.TransportError as exc:
                raise where.unreachable(exc) from None
            if response.status_code != 200:
                raise where.status_error(response.status_code, data)
            return where.decode(data)
        finally:
            self.pool.release(host)

    def warm_up(
        self, models: Sequence[str], keep_alive: str | float | None
    ) -> Generator[Step, Any, dict[str, float]]:
        """Load each model with an empty generate; returns each model's load time (seconds)."""
        __tracebackhide__ = True
        if self.api == "openai":
            raise ConfigurationError(
                "warm-up uses Ollama's empty generate, which OpenAI-compatible routes lack; "
                "use api='ollama' for an Ollama server"
            )
        loaded: dict[str, float] = {}
        for model in dict.fromkeys(models):
            request: dict[str, Any] = {"model": model}
            if keep_alive is not None:
                request["keep_alive"] = keep_alive
            began = perf_counter()
            yield from self.run(Call("generate", request, cache=False, purpose="warm_up"))
            loaded[model] = perf_counter() - began
        return loaded


def _with_json_type(headers: Mapping[str, str] | None) -> httpx.Headers:
    """The client's headers for a JSON body: ``Content-Type`` added unless the caller set it."""
    merged = httpx.Headers({"Content-Type": JSON_CONTENT_TYPE})
    if headers:
        merged.update(headers)  # case-insensitive: a caller's content-type replaces ours
    return merged


def _not_opened(
    exc: httpx.TransportError | RuntimeError,
    where: _Where,
    waiting: str,
    timeouts: dict[str, float],
    began: float,
) -> Exception:
    """What a request that got no response headers raises: a timeout in its phase, the host
    unreachable, or the network blocked (a RuntimeError that is not that is raised again)."""
    if isinstance(exc, httpx.TimeoutException):
        if isinstance(exc, httpx.PoolTimeout):  # waited for a free connection: the pool limit
            return where.timeout("connect", timeouts["pool"], perf_counter() - began)
        if isinstance(exc, httpx.ConnectTimeout):
            return where.timeout("connect", timeouts["connect"], perf_counter() - began)
        return where.timeout(waiting, timeouts["read"], perf_counter() - began)
    if isinstance(exc, httpx.TransportError):
        return where.unreachable(exc)
    if not str(exc).startswith(BLOCKED):
        raise exc
    return where.blocked(exc)


def _first_phase(limits: Limits, stream: bool, began: float) -> tuple[str, float, dict[str, float]]:
    """The phase a request waits in until its headers come, that phase's limit, and the
    request's httpx timeouts (with ``due``, the end of the phase: see the module's doc)."""
    waiting = "first_token" if stream and limits.first_token < limits.total else "total"
    first = limits.first_token if waiting == "first_token" else limits.total
    timeouts = {
        "connect": min(limits.connect, limits.total),
        "read": first,
        "write": limits.total,
        "pool": limits.total,
        "due": began + first,
    }
    return waiting, first, timeouts


class _Where:
    """Where a call went: builds the errors, each naming the host, model and way out."""

    __slots__ = ("host", "model", "route", "tier")

    def __init__(self, host: str, model: str, route: str, tier: str | None) -> None:
        self.host = host
        self.model = model
        self.route = route
        self.tier = tier

    @property
    def label(self) -> str:
        return (
            f"{self.route} with {self.model} on {self.host}"
            if self.model
            else (f"{self.route} on {self.host}")
        )

    def unreachable(self, exc: Exception) -> LLMConnectError:
        reason = str(exc) or type(exc).__name__
        if not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            # connected, then the connection broke before a complete answer: the server is
            # up but failed (or restarted); the call is retried like a refused connection
            return LLMConnectError(
                f"{self.label}: the connection broke before the answer was complete "
                f"({reason}); nothing had reached the caller, so the call may be retried on "
                "another host. If it keeps happening, check the server's log",
                host=self.host,
                model=self.model,
            )
        return LLMConnectError(
            f"cannot connect to the LLM server at {self.host} ({reason}). Start Ollama there "
            "(`ollama serve`), point the client at the emulator (`llmperf serve`, or "
            "`--llm-host emulator` under pytest), or run the tests from recorded cassettes "
            "instead of a live server",
            host=self.host,
            model=self.model,
        )

    def blocked(self, exc: Exception) -> ConfigurationError:
        host = self.host.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
        return ConfigurationError(
            f"{self.label}: pytest-recording's --block-network refused the connection to "
            f"{host} ({exc}). Allow the LLM server with --allowed-hosts={host} (a regex of "
            "hosts; the embedded emulator is on 127.0.0.1), or replay the calls from a cassette"
        )

    def wrong(self, problem: str) -> LLMStreamError:
        """What the server sent is not a whole answer the client reads: ``problem`` says how."""
        return LLMStreamError(f"{self.label}: {problem}", host=self.host, model=self.model)

    def cut(self, exc: Exception) -> LLMStreamError:
        return self.wrong(
            f"the connection broke in the middle of the stream ({str(exc) or type(exc).__name__})"
            "; the answer is incomplete and was not retried because part of it had already "
            "been handed to the caller"
        )

    def timeout(self, phase: str, limit: float, elapsed: float) -> LLMTimeoutError:
        what = {
            "connect": f"could not connect within the connect limit of {limit:.3g} s",
            "first_token": f"no first token within the first_token limit of {limit:.3g} s",
            "stall": f"the stream stalled: no chunk within the stall limit of {limit:.3g} s",
            "total": f"the call ran past the total limit of {limit:.3g} s",
        }[phase]
        tier = f" (tier {self.tier})" if self.tier else ""
        hint = {
            "connect": "check that the server is up and reachable",
            "first_token": "warm the model up first (warm_up), use a faster tier, or raise "
            "the limit (timeout=Limits(...) or the llm_timeouts ini option)",
            "stall": "the server stopped sending; check its load, or raise the stall limit",
            "total": "use a faster tier, ask for fewer tokens (num_predict), or raise the "
            "limit (timeout=...)",
        }[phase]
        return LLMTimeoutError(
            f"{self.label}{tier}: {what} ({elapsed:.3g} s elapsed); {hint}",
            phase=phase,
            limit=limit,
            elapsed=elapsed,
            host=self.host,
            model=self.model,
        )

    def status_error(self, status: int, data: bytes) -> LLMError:
        try:
            message = error_text(json.loads(data))
        except ValueError:
            message = data.decode(errors="replace").strip() or f"HTTP {status}"
        if status == 404 and self.model and "not found" in message:
            return ModelNotFoundError(
                f"model {self.model!r} is not on the server at {self.host} ({message}): run "
                f"`ollama pull {self.model}` there, or pick a model that `ollama list` shows",
                host=self.host,
                model=self.model,
            )
        hint = (
            "the server's queue is full; retry later or spread calls over more hosts"
            if status == 503
            else "see the server's log for the cause"
        )
        return LLMServerError(
            f"{self.label}: the server answered HTTP {status}: {message}; {hint}",
            status_code=status,
            host=self.host,
            model=self.model,
        )

    def too_long(self, what: str, most: int) -> LLMStreamError:
        return self.wrong(
            f"{what} is longer than the limit of {most} bytes (max_line_bytes); Ollama's "
            "answers are one JSON object a line, far shorter. If this server's lines are meant "
            "to be that long, raise the limit: OllamaClient(max_line_bytes=N), or the "
            "llm_max_line_bytes ini option (--llm-max-line-bytes) under pytest"
        )

    def stream_error(self, chunk: Mapping[str, Any], received: int) -> LLMStreamError:
        return self.wrong(
            f"the server reported an error in the middle of the stream after {received} "
            f"chunks: {error_text(chunk)}"
        )

    def decode(self, data: bytes) -> dict[str, Any]:
        try:
            value = json.loads(data)
        except ValueError:
            raise self.wrong(f"the answer is not JSON ({data[:80]!r}); {_WHICH_API}") from None
        if not isinstance(value, dict):
            raise self.wrong(f"expected a JSON object, got {data[:80]!r}")
        return value

    def bad_shape(self, what: str, data: bytes, problem: str) -> LLMStreamError:
        return self.wrong(
            f"{what} is not of the shape the client reads ({problem}: {data[:80]!r}); is the "
            "host the server you meant, and does api= (ollama or openai) match it?"
        )

    def decode_line(self, line: bytes) -> dict[str, Any]:
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        raise self.wrong(f"a line of the stream is not a JSON object ({line[:80]!r}); {_WHICH_API}")


class StreamReader:
    """The logic of a stream's body: lines, limits, parsing, checks, measures, the chunks.

    ``timeouts`` are the request's: their ``due`` moves with every chunk, to the end of the
    phase now running (``phase``): the first token (within ``first_token`` of the start),
    then each next chunk (within ``stall`` of the last), never past ``total``.
    """

    __slots__ = (
        "chunks",
        "end",
        "limits",
        "most",
        "openai",
        "pending",
        "phase",
        "timeouts",
        "trace",
        "where",
    )

    def __init__(
        self,
        trace: _Trace,
        where: _Where,
        limits: Limits,
        began: float,
        timeouts: dict[str, float],
        most: int,
        openai: OpenAIStream | None,
    ) -> None:
        self.trace = trace
        self.where = where
        self.limits = limits
        self.end = began + limits.total
        self.timeouts = timeouts
        self.phase = "total" if timeouts["due"] >= self.end else "first_token"
        self.most = most
        self.openai = openai
        self.pending = bytearray()  # the start of a line whose newline has not come yet
        self.chunks: list[dict[str, Any]] = []

    def take(self, data: bytes) -> list[dict[str, Any]]:
        """A part of the body as it arrived; the chunks it completes, to hand to the caller.

        The final ``done`` chunk is kept for :meth:`finish`: it is handed out once the call
        is complete.
        """
        __tracebackhide__ = True
        now = perf_counter()
        if now > self.timeouts["due"]:
            raise self.late()
        pending = self.pending
        if data.rfind(b"\n") < 0:
            pending += data
            if len(pending) > self.most:
                raise self.where.too_long("a line of the stream", self.most)
            return []
        if pending:
            pending += data
            data = bytes(pending)
            pending.clear()
        lines = data.split(b"\n")
        tail = lines.pop()
        if len(tail) > self.most:
            raise self.where.too_long("a line of the stream", self.most)
        pending += tail
        out: list[dict[str, Any]] = []
        count = len(self.chunks)
        for line in lines:
            chunk = self.feed(line, now)
            if chunk is not None and not chunk.get("done"):
                out.append(chunk)
        if len(self.chunks) > count:  # the next chunk is due within the stall limit
            due = now + self.limits.stall
            if due < self.end:
                self.timeouts["due"], self.phase = due, "stall"
            else:
                self.timeouts["due"], self.phase = self.end, "total"
        return out

    def feed(self, line: bytes, now: float) -> dict[str, Any] | None:
        """One line of the body; its chunk, if it makes one."""
        __tracebackhide__ = True
        if len(line) > self.most:
            raise self.where.too_long("a line of the stream", self.most)
        if line[-1:] == b"\r":
            line = line[:-1]
        if not line:
            return None
        chunk: dict[str, Any] | None
        if self.openai is None:
            chunk = self.where.decode_line(line)
        else:
            chunk = self.openai.feed(line.decode("utf-8", "replace"))
            if chunk is None:
                return None
        if "error" in chunk:
            raise self.where.stream_error(chunk, len(self.chunks))
        problem = chunk_problem(chunk)
        if problem is not None:
            raise self.where.bad_shape("a line of the stream", line, problem)
        if chunk_text(chunk):
            self.trace.text_at(now)
        self.chunks.append(chunk)
        if chunk.get("done"):
            self.trace.final = chunk
        self.trace.emitted = True
        return chunk

    def late(self) -> LLMTimeoutError:
        phase, limit = self.timed_out()
        return self.where.timeout(phase, limit, perf_counter() - (self.end - self.limits.total))

    def timed_out(self) -> tuple[str, float]:
        """The phase that ran out of time, and its limit (for a wait that timed out)."""
        if perf_counter() < self.timeouts["due"] - 0.001:  # before the due: the read limit
            return "stall", self.limits.stall
        limits = self.limits
        limit = {"first_token": limits.first_token, "stall": limits.stall}.get(self.phase)
        return self.phase, limits.total if limit is None else limit

    def finish(self) -> list[dict[str, Any]]:
        """The stream's chunks, once the body has ended with its final ``done`` chunk."""
        __tracebackhide__ = True
        if self.pending:  # the body's last line, with no newline after it
            line = bytes(self.pending)
            self.pending.clear()
            self.feed(line, perf_counter())
        if not self.chunks or not self.chunks[-1].get("done"):
            raise self.where.wrong(
                f"the stream ended after {len(self.chunks)} chunks without its final 'done' "
                "chunk; the server or the connection cut it short"
            )
        return self.chunks


def _cancel(exc: BaseException) -> bool:
    return type(exc).__name__ in ("CancelledError", "KeyboardInterrupt")
