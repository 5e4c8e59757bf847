"""Recording and replaying at httpx's transport, for every httpx client in the process.

While a :class:`CassetteSession` is active, every request that reaches the interception
point (:mod:`pytest_llmperf.observe.point`: httpx's transports, httpx2's, and our own
:class:`~pytest_llmperf.client.transport.AsyncLoopTransport`) goes through it, so the official
``ollama`` client, the ``openai`` client, LangChain's and ours are all covered, sync and
async.

- **Recording** passes every chunk to the client as it arrives and copies it, with its
  arrival time, into the cassette: what the client sees, and when, is unchanged.
- **Replay** builds the response from the cassette without opening a socket. With
  ``timing="instant"`` the chunks come at once; with ``"recorded"`` each comes at its
  recorded offset from the request (a factor such as ``0.5`` halves the waits). A replayed
  wait longer than the request's read timeout raises ``httpx.ReadTimeout`` after that
  timeout, as a silent server would: stalls recorded in a cassette trip timeouts offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

from pytest_llmperf.client.protocol import STATISTICS
from pytest_llmperf.errors import LLMPerfError
from pytest_llmperf.observe.cassettes.matching import differences, normal_body, target
from pytest_llmperf.observe.cassettes.scrub import SCRUBBED, Scrubber
from pytest_llmperf.observe.cassettes.store import (
    CUT_SHORT,
    Cassette,
    CassetteError,
    Interaction,
)
from pytest_llmperf.observe.point import playing

MODES = ("none", "once", "new_episodes", "all", "rewrite")
perf_counter = time.perf_counter
_NO_ANSWER = "replayed: no answer within the read timeout"


class CassetteMismatchError(LLMPerfError):
    """A request the cassette has no answer for, in a mode that may not record it."""


class CassetteCutShortError(CassetteError):
    """A replay read past the end of an interaction whose recording the client cut short."""


# httpx and its fork httpx2 (which openai>=2 uses): the interception point covers both, so
# vcrpy is told to leave them alone.
HTTPX_MODULES = ("httpx", "httpx2")


@contextmanager
def patched(session: CassetteSession) -> Iterator[CassetteSession]:
    """Route every httpx (and httpx2) transport in the process through ``session``.

    The interception point (:mod:`pytest_llmperf.observe.point`) sends each request to the
    session, after measuring it. Clients on other HTTP libraries (``requests``, ``urllib``,
    ``aiohttp``, ...) go through vcrpy's own patches at the same time, to a vcrpy cassette
    beside ours (see :meth:`CassetteSession.foreign`); vcrpy leaves httpx to us.
    """
    with playing(session), session.foreign():
        yield session


def foreign_supported() -> bool:
    """Whether vcrpy can leave httpx alone (``skip_patchers``, vcrpy 9.4.2 and later)."""
    import vcr.patch

    return hasattr(vcr.patch, "validate_skip_patchers")


def parse_timing(value: str) -> float:
    """``instant`` → 0, ``recorded`` → 1, or a speed factor (0.5: half the recorded waits)."""
    if value == "instant":
        return 0.0
    if value == "recorded":
        return 1.0
    factor = float(value)
    if factor < 0:
        raise ValueError("a factor must be >= 0 (or instant, or recorded)")
    return factor


class CassetteSession:
    """One cassette in use: what it replays, what it records, and how."""

    def __init__(
        self,
        path: Path,
        mode: str = "none",
        timing: float = 0.0,
        scrubber: Scrubber | None = None,
        *,
        others: bool = True,
        test: str | None = None,
        own: bool = True,
    ) -> None:
        """``others``: also record and replay the HTTP libraries that are not httpx, through
        vcrpy (:meth:`foreign`); off beside pytest-recording, whose cassette takes them.
        ``test``: the node id of the test recording, written with each interaction; ``own``:
        the cassette is that test's alone (its default path), not one that tests share."""
        if mode not in MODES:
            raise ValueError(f"unknown record mode {mode!r}: choose one of {', '.join(MODES)}")
        self.path = path
        self.existed = path.exists()
        self.mode = "none" if mode == "once" and self.existed else mode
        self.timing = timing
        self.others = others
        self.test = test
        self.own = own
        self.scrub = scrubber or Scrubber()
        fresh = self.mode in ("all", "rewrite") or (mode == "once" and not self.existed)
        self.cassette = Cassette(path) if fresh else Cassette.load(path)
        self.replayed: list[Interaction] = []

    # --- what the tests see -------------------------------------------------------------

    @property
    def recorded(self) -> list[Interaction]:
        return self.cassette.new

    @property
    def interactions(self) -> list[Interaction]:
        return self.cassette.interactions

    @property
    def replays(self) -> bool:
        return self.mode in ("none", "new_episodes")

    @property
    def records(self) -> bool:
        return self.mode != "none"

    def save(self, passed: bool | None) -> None:
        """Write what was recorded by a test that ran to its end.

        ``passed``: whether the test passed; ``None`` when it did not run to its end
        (interrupted, or its setup failed), which writes nothing in any mode. A failed test
        is written only where that destroys nothing: a cassette ``once`` creates, episodes
        ``new_episodes`` adds (so a budget failure recorded live fails again offline);
        ``all`` and ``rewrite``, which replace what a cassette had, write only after a pass.
        The new interactions are merged with what the file holds when it is written (see
        :meth:`Cassette.save_recording`), so no other test's interactions are lost.
        """
        fresh = self.mode in ("all", "rewrite")
        keep = passed is True or (passed is False and not fresh)
        self._settle_foreign(keep)
        if not keep or not self.cassette.new:
            return
        self.cassette.save_recording(self.test, fresh=fresh, own=self.own)

    # --- traffic of other HTTP libraries, through vcrpy --------------------------------

    @property
    def foreign_path(self) -> Path:
        """vcrpy's cassette for clients that are not httpx: ``NAME.other.yaml`` beside ours."""
        return self.path.with_name(f"{self.path.stem}.other{self.path.suffix}")

    def _foreign_target(self) -> Path:
        # a recording goes to a scratch file, moved over the cassette only after a pass
        if not self.records:
            return self.foreign_path
        return self.foreign_path.with_name(f".{self.foreign_path.name}.recording.tmp")

    def foreign(self) -> Any:
        """vcrpy's patches for every HTTP library but httpx, on :attr:`foreign_path`.

        They need vcrpy 9.4.2 or later (``skip_patchers``, Python 3.11+); with an older
        vcrpy only httpx clients are covered.
        """
        import vcr

        if not self.others or not foreign_supported():
            return contextlib.nullcontext()
        target = self._foreign_target()
        if target != self.foreign_path and self.mode not in ("all", "rewrite"):
            # what it has replays, and stays (nothing there: nothing to copy)
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                shutil.copyfile(self.foreign_path, target)

        scrubbed = sorted(self.scrub.request_headers)
        recorder = vcr.VCR(
            serializer="json" if self.path.suffix == ".json" else "yaml",
            record_mode={"rewrite": "all"}.get(self.mode, self.mode),
            match_on=["method", "path", "query", "body"],
            filter_headers=[(name, SCRUBBED) for name in scrubbed],
            before_record_request=self._scrub_foreign_request,
            before_record_response=self._scrub_foreign_response,
            skip_patchers=list(HTTPX_MODULES),
            decode_compressed_response=False,
        )
        return recorder.use_cassette(str(target))

    def _scrub_foreign_request(self, request: Any) -> Any:
        request.uri = self.scrub.uri(request.uri)
        return request

    def _scrub_foreign_response(self, response: dict[str, Any]) -> dict[str, Any]:
        headers = response.get("headers") or {}
        for name in list(headers):
            if name.lower() in self.scrub.response_headers:
                headers[name] = [SCRUBBED]
        return response

    def _settle_foreign(self, keep: bool) -> None:
        scratch = self._foreign_target()
        if scratch == self.foreign_path or not scratch.exists():
            return
        if keep:
            os.replace(scratch, self.foreign_path)
        else:
            scratch.unlink()

    # --- one request ----------------------------------------------------------------------

    def _find(self, request: Any, uri: str) -> Interaction | None:
        if not self.replays:
            return None
        return self.cassette.play(request.method, uri, request.content)

    def _refuse(self, request: Any, uri: str) -> CassetteMismatchError:
        body = request.content
        lines = [
            f"no recorded answer in cassette {self.path} for {request.method} {target(uri)}"
            f" {_short(body)}"
        ]
        closest = self.cassette.closest(request.method, uri, body)
        if not self.existed:
            lines.append("the cassette file does not exist: nothing was recorded for this test")
        elif closest is None:
            lines.append("the cassette has no requests with this method at all")
        else:
            path = target(uri).split("?")[0]
            found = differences(
                normal_body(path, closest.request_body), normal_body(path, body)
            ) or ["the same request, but every recorded answer to it has been replayed"]
            lines.append(
                f"closest recorded request: {closest.method} {target(closest.uri)}, differing in"
            )
            lines.extend(f"  {line}" for line in found[:10])
        lines.append(
            "record it with --llm-record-mode new_episodes (adds to this cassette), once (for a "
            "cassette that does not exist yet) or rewrite (records the test afresh)"
        )
        return CassetteMismatchError("\n".join(lines))

    def handle(self, transport: Any, request: Any, send: Any, hx: ModuleType = httpx) -> Any:
        __tracebackhide__ = True
        uri = self.scrub.uri(str(request.url))
        found = self._find(request, uri)
        if found is not None:
            return self._replay(found, request, hx)
        if not self.records:
            raise self._refuse(request, uri)
        began = perf_counter()
        response = send(transport, request)
        entry = self._entry(request, uri, response, perf_counter() - began)
        stream = _streams(hx).Recording(response.stream, began, entry, self.cassette, hx)
        return _respond(response, stream, request, hx)

    async def handle_async(
        self, transport: Any, request: Any, send: Any, hx: ModuleType = httpx
    ) -> Any:
        __tracebackhide__ = True
        uri = self.scrub.uri(str(request.url))
        found = self._find(request, uri)
        if found is not None:
            return await self._replay_async(found, request, hx)
        if not self.records:
            raise self._refuse(request, uri)
        began = perf_counter()
        response = await send(transport, request)
        entry = self._entry(request, uri, response, perf_counter() - began)
        stream = _streams(hx).AsyncRecording(response.stream, began, entry, self.cassette, hx)
        return _respond(response, stream, request, hx)

    def _entry(self, request: Any, uri: str, response: Any, headers_at: float) -> Interaction:
        body = request.content
        return Interaction(
            method=request.method,
            uri=uri,
            request_headers=self.scrub.headers(request.headers.multi_items()),
            request_body=body.decode("utf-8", errors="replace") if body else None,
            status=response.status_code,
            reason=response.reason_phrase,
            headers=self.scrub.headers(response.headers.multi_items(), response=True),
            body=b"",
            headers_at=headers_at,
            test=self.test,
        )

    # --- replay -------------------------------------------------------------------------

    def _where(self, found: Interaction) -> str:
        """Which interaction of which cassette ``found`` is, for an error message."""
        number = next(n for n, i in enumerate(self.cassette.interactions, 1) if i is found)
        total = len(self.cassette.interactions)
        request = f"{found.method} {target(found.uri)}"
        return f"cassette {self.path}, interaction {number} of {total} ({request})"

    def _begin_replay(self, found: Interaction, request: Any) -> tuple[float, float, float | None]:
        """A replay begins: when, when its headers are due, and the read limit that the
        wait for them trips (None: the wait is within it)."""
        began = perf_counter()
        self.replayed.append(found)
        read = _read_limit(request)
        wait = found.headers_at * self.timing
        return began, began + wait, read if read is not None and wait > read else None

    def _replay(self, found: Interaction, request: Any, hx: ModuleType) -> Any:
        began, due, late = self._begin_replay(found, request)
        if late is not None:
            time.sleep(late)
            raise _transport_error(hx, "ReadTimeout", _NO_ANSWER, request)
        _sleep_until(due)
        stream = _streams(hx).Replay(found, began, self.timing, request, hx, self._where)
        return _build(found, stream, request, hx)

    async def _replay_async(self, found: Interaction, request: Any, hx: ModuleType) -> Any:
        began, due, late = self._begin_replay(found, request)
        if late is not None:
            await asyncio.sleep(late)
            raise _transport_error(hx, "ReadTimeout", _NO_ANSWER, request)
        await asyncio.sleep(max(0.0, due - perf_counter()))
        stream = _streams(hx).AsyncReplay(found, began, self.timing, request, hx, self._where)
        return _build(found, stream, request, hx)


def _short(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    return text if len(text) <= 200 else text[:197] + "..."


def _read_limit(request: Any) -> float | None:
    timeouts = request.extensions.get("timeout") or {}
    value = timeouts.get("read")
    return float(value) if value is not None else None


def _sleep_until(moment: float) -> None:
    wait = moment - perf_counter()
    if wait > 0:
        time.sleep(wait)


def _build(found: Interaction, stream: Any, request: Any, hx: ModuleType) -> Any:
    headers = [(name, value) for name, values in found.headers.items() for value in values]
    return hx.Response(
        found.status,
        headers=headers,
        stream=stream,
        request=request,
        extensions={
            "reason_phrase": found.reason.encode(),
            # what the server's timing was when recorded: budgets judge calls on it
            "llmperf_recorded": (found.headers_at, tuple(found.chunks)),
        },
    )


def _respond(response: Any, stream: Any, request: Any, hx: ModuleType) -> Any:
    return hx.Response(
        response.status_code,
        headers=response.headers,
        stream=stream,
        request=request,
        extensions=response.extensions,
    )


# --- the streams ----------------------------------------------------------------------------


def _finish(entry: Interaction, parts: list[bytes], cassette: Cassette, error: str | None) -> None:
    entry.body = b"".join(parts)
    entry.error = error
    entry.stats = _stats(entry.body)
    cassette.record(entry)


def _stats(body: bytes) -> dict[str, Any] | None:
    """The statistics in the last JSON line of an Ollama answer, if it has them."""
    import json

    for line in reversed(body.splitlines()):
        try:
            last = json.loads(line)
        except ValueError:
            return None
        if isinstance(last, dict) and last.get("done"):
            return {k: last[k] for k in STATISTICS if k in last} or None
        return None
    return None


@dataclass(eq=False)
class _RecordingBase:
    """Passes the server's chunks on as they come, keeping a copy with their arrival time."""

    inner: Any
    began: float
    entry: Interaction
    cassette: Cassette
    hx: ModuleType
    parts: list[bytes] = field(default_factory=list, init=False)
    done: bool = field(default=False, init=False)

    def _keep(self, part: bytes) -> bytes:
        self.entry.chunks.append((perf_counter() - self.began, len(part)))
        self.parts.append(part)
        return part

    def _close(self, error: str | None) -> None:
        if not self.done:
            self.done = True
            _finish(self.entry, self.parts, self.cassette, error)

    def _closing_error(self) -> str | None:
        return None if self.done else CUT_SHORT


class _Recording(_RecordingBase):
    def __iter__(self) -> Iterator[bytes]:
        try:
            for part in self.inner:
                yield self._keep(part)
        except self.hx.TransportError as exc:
            self._close(f"{type(exc).__name__}: {exc}")
            raise
        self._close(None)

    def close(self) -> None:
        self._close(self._closing_error())
        self.inner.close()


class _AsyncRecording(_RecordingBase):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self.inner:
                yield self._keep(part)
        except self.hx.TransportError as exc:
            self._close(f"{type(exc).__name__}: {exc}")
            raise
        self._close(None)

    async def aclose(self) -> None:
        self._close(self._closing_error())
        await self.inner.aclose()


def _transport_error(hx: ModuleType, name: str, message: str, request: Any) -> Exception:
    """``hx``'s exception class ``name`` (a transport error), raised about ``request``."""
    kind: Callable[..., Exception] = getattr(hx, name)
    return kind(message, request=request)


def _error(found: Interaction, request: Any, hx: ModuleType) -> Exception:
    name, _, message = (found.error or "").partition(": ")
    kind = getattr(hx, name, None)
    if isinstance(kind, type) and issubclass(kind, hx.TransportError):
        return _transport_error(hx, name, f"replayed: {message}", request)
    return _transport_error(hx, "RemoteProtocolError", f"replayed: {found.error}", request)


@dataclass(eq=False)
class _ReplayBase:
    """The recorded chunks, at their recorded offsets times ``factor``."""

    found: Interaction
    began: float
    factor: float
    request: Any
    hx: ModuleType
    where: Callable[[Interaction], str]

    def _late(self, due: float, last: float) -> float | None:
        """How long to wait before a timeout, if the next chunk comes after the read limit."""
        read = _read_limit(self.request)
        return read if read is not None and due - last > read else None

    def _steps(self) -> Iterator[float | bytes]:
        """The replay as steps for a sync or an async driver: a moment (on ``perf_counter``)
        to wait until, or the next part. What the replay raises comes out of the steps: a
        read timeout when the driver is back from the wait before it, the recorded error (or
        a cut-short recording's) after the last part."""
        last = perf_counter()
        for offset, part in self.found.pieces():
            if self.factor:
                due = self.began + offset * self.factor
                late = self._late(due, last)
                yield due if late is None else last + late
                if late is not None:
                    raise self._timeout()
                last = perf_counter()
            yield part
        ending = self._ending()
        if ending is not None:
            raise ending

    def _timeout(self) -> Exception:
        return _transport_error(
            self.hx, "ReadTimeout", "replayed: no chunk within the read timeout", self.request
        )

    def _ending(self) -> Exception | None:
        if self.found.cut_short:
            return CassetteCutShortError(
                f"{self.where(self.found)}: the client that recorded it closed the stream after "
                f"{len(self.found.body)} bytes, so the rest of the answer is not in the "
                "cassette, and this replay reads past that point. Record it again with a "
                "client that reads the whole answer (--llm-record-mode rewrite)"
            )
        if self.found.error:
            return _error(self.found, self.request, self.hx)
        return None


class _Replay(_ReplayBase):
    def __iter__(self) -> Iterator[bytes]:
        for step in self._steps():
            if isinstance(step, bytes):
                yield step
            else:
                _sleep_until(step)

    def close(self) -> None:
        pass


class _AsyncReplay(_ReplayBase):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        for step in self._steps():
            if isinstance(step, bytes):
                yield step
            else:
                await asyncio.sleep(max(0.0, step - perf_counter()))

    async def aclose(self) -> None:
        pass


class _Streams:
    """The stream classes for one httpx-like module (its Response checks their base)."""

    def __init__(self, hx: ModuleType) -> None:
        self.Recording = type("Recording", (_Recording, hx.SyncByteStream), {})
        self.AsyncRecording = type("AsyncRecording", (_AsyncRecording, hx.AsyncByteStream), {})
        self.Replay = type("Replay", (_Replay, hx.SyncByteStream), {})
        self.AsyncReplay = type("AsyncReplay", (_AsyncReplay, hx.AsyncByteStream), {})


@functools.cache
def _streams(hx: ModuleType) -> _Streams:
    return _Streams(hx)
