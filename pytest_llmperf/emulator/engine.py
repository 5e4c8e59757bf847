"""The emulator's core, below HTTP: pick the model, apply faults, schedule, time, count.

The HTTP layer (:mod:`.app`) turns a request into a :class:`~.backends.Job`, asks the engine
for events and writes them in Ollama's or OpenAI's shape. Every duration reported in
:class:`Stats` is measured here on the clock, so it agrees with the time actually spent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, fields

from pytest_llmperf.emulator import backends, text
from pytest_llmperf.emulator.backends import Backend, Finished, PromptEvaluated, Token, ToolCall
from pytest_llmperf.emulator.faults import FaultKind, FaultSpec, active_faults
from pytest_llmperf.emulator.profiles import Catalogue, normalize_model_name
from pytest_llmperf.emulator.scheduler import QueueFull, Scheduler
from pytest_llmperf.emulator.stops import StopFilter
from pytest_llmperf.emulator.synthetic import SyntheticBackend

__all__ = [
    "Done",
    "DropConnection",
    "Engine",
    "ErrorLine",
    "InjectedStatus",
    "ModelNotFound",
    "QueueFull",
    "Stats",
]


class ModelNotFound(Exception):
    """The model is not known (or not pulled yet)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class InjectedStatus(Exception):
    """A ``status`` fault: answer with an HTTP error before any output."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class DropConnection(Exception):
    """A ``drop`` fault: the server cuts the connection in the middle of the answer."""


def _statistic(ollama_name: str) -> int:
    """A field of :class:`Stats` (0 until measured), called ``ollama_name`` on the wire."""
    return field(default=0, metadata={"ollama": ollama_name})


@dataclass
class Stats:
    """The statistics of Ollama's final object, in nanoseconds."""

    total_ns: int = _statistic("total_duration")
    load_ns: int = _statistic("load_duration")
    prompt_eval_count: int = _statistic("prompt_eval_count")
    prompt_eval_ns: int = _statistic("prompt_eval_duration")
    eval_count: int = _statistic("eval_count")
    eval_ns: int = _statistic("eval_duration")
    context: list[int] = field(default_factory=list)


# Each statistic's name in Ollama's final object, and the field of Stats that holds it.
_STATISTICS = tuple((f.metadata["ollama"], f.name) for f in fields(Stats) if "ollama" in f.metadata)


@dataclass(frozen=True)
class Done:
    """The answer is complete."""

    reason: str
    stats: Stats


@dataclass(frozen=True)
class ErrorLine:
    """An ``error-line`` fault: the stream carries ``{"error": ...}`` and ends."""

    message: str


EngineEvent = Token | ToolCall | Done | ErrorLine


class Engine:
    """The emulated server's state: its models, their scheduler and their request counts."""

    def __init__(self, catalogue: Catalogue, extra: Iterable[Backend] = ()) -> None:
        self.catalogue = catalogue
        self.scheduler = Scheduler(catalogue.server)
        scale = catalogue.server.time_scale
        self.backends: dict[str, Backend] = {
            name: SyntheticBackend(profile, scale) for name, profile in catalogue.models.items()
        }
        for backend in extra:
            self.backends[backend.profile.name] = backend
        self._pulled: set[str] = set()
        self._request_numbers: dict[str, int] = {}
        self.requests_served = 0  # requests that reached a model (503s and injected faults too)

    # --- models -------------------------------------------------------------------------

    def is_available(self, name: str) -> bool:
        backend = self.backends.get(name)
        return backend is not None and (backend.profile.available or name in self._pulled)

    def available(self) -> list[Backend]:
        return [b for n, b in sorted(self.backends.items()) if self.is_available(n)]

    def backend(self, model: str, faults: Sequence[FaultSpec] = ()) -> Backend:
        """The backend serving ``model``, or :class:`ModelNotFound`."""
        name = normalize_model_name(model)
        if any(f.kind is FaultKind.UNKNOWN_MODEL for f in faults) or not self.is_available(name):
            raise ModelNotFound(model)
        return self.backends[name]

    def requests_by_model(self) -> dict[str, int]:
        """How many requests each model has had (the count its profile's ``every`` faults use)."""
        return dict(sorted(self._request_numbers.items()))

    def mark_pulled(self, name: str) -> None:
        self._pulled.add(name)

    def request_faults(self, backend: Backend, extra: Sequence[FaultSpec]) -> tuple[FaultSpec, ...]:
        """The faults of this request: the header's, then the profile's that are due now."""
        name = backend.profile.name
        self._request_numbers[name] = number = self._request_numbers.get(name, 0) + 1
        self.requests_served += 1
        faults = (*extra, *active_faults(backend.profile.faults, number))
        for fault in faults:
            if fault.kind is FaultKind.STATUS:
                raise InjectedStatus(fault.status, fault.error_message)
        return faults

    # --- work ---------------------------------------------------------------------------

    async def load_only(self, backend: Backend, keep_alive_s: float, started_ns: int) -> Stats:
        """An empty prompt: load the model (or unload it with ``keep_alive: 0``)."""
        if keep_alive_s == 0:
            self.scheduler.unload(backend.profile.name)
            return Stats(total_ns=time.perf_counter_ns() - started_ns)
        async with self.scheduler.lease(backend, keep_alive_s) as lease:
            return Stats(total_ns=time.perf_counter_ns() - started_ns, load_ns=lease.load_ns)

    async def embed(
        self,
        backend: Backend,
        texts: Sequence[str],
        keep_alive_s: float,
        normalize: bool,
        started_ns: int,
    ) -> tuple[list[list[float]], Stats]:
        async with self.scheduler.lease(backend, keep_alive_s) as lease:
            vectors = await backend.embed(texts, normalize)
            stats = Stats(
                total_ns=time.perf_counter_ns() - started_ns,
                load_ns=lease.load_ns,
                prompt_eval_count=sum(backend.count_tokens(t) for t in texts),
            )
        return vectors, stats

    async def generate(
        self,
        backend: Backend,
        job: backends.Job,
        keep_alive_s: float,
        faults: Sequence[FaultSpec],
        started_ns: int,
    ) -> AsyncIterator[EngineEvent]:
        """Run ``job``: tokens (or a tool call), then :class:`Done` with measured statistics.

        Raises :class:`QueueFull` before any event when the server's queue is full, and
        :class:`DropConnection` mid-answer for a ``drop`` fault.
        """
        async with self.scheduler.lease(backend, keep_alive_s) as lease:
            run = _Run(Stats(load_ns=lease.load_ns))
            emitted, answer = 0, []
            pending = sorted(faults, key=lambda f: f.after)
            pacing = backends.Pacing()
            async with aclosing(_chunks(backend.generate(job, pacing), job, run)) as chunks:
                async for chunk in chunks:
                    pending, error = await _strike(pending, emitted, pacing, final=False)
                    if error is not None:
                        yield error
                        return
                    emitted += 1
                    if isinstance(chunk, Token):
                        answer.append(chunk.text)
                    yield chunk
            _pending, error = await _strike(pending, emitted, pacing, final=True)
            if error is not None:
                yield error
                return
            end = time.perf_counter_ns()
            run.stats.eval_ns = end - run.eval_start
            run.stats.total_ns = end - started_ns
            run.stats.context = text.token_ids(job.prompt) + text.token_ids("".join(answer))
        yield Done(run.reason, run.stats)


class _Run:
    """What one generation has measured so far."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.reason = "stop"
        self.started = self.eval_start = time.perf_counter_ns()


async def _chunks(
    events: AsyncIterator[backends.BackendEvent], job: backends.Job, run: _Run
) -> AsyncGenerator[Token | ToolCall, None]:
    """The backend's events as output chunks: timed, counted and cut at stop sequences."""
    stops = StopFilter(job.stop)
    async with aclosing(events):  # type: ignore[type-var]
        async for event in events:
            if isinstance(event, PromptEvaluated):
                run.eval_start = time.perf_counter_ns()
                run.stats.prompt_eval_count = event.count
                run.stats.prompt_eval_ns = run.eval_start - run.started
            elif isinstance(event, Finished):
                run.reason = event.reason
                if tail := stops.flush():
                    yield Token(tail)
                return
            elif isinstance(event, ToolCall):
                run.stats.eval_count += text.count_tokens(json.dumps(event.arguments))
                yield event
            else:
                run.stats.eval_count += 1
                sendable, stopped = stops.feed(event.text)
                if sendable:
                    yield Token(sendable)
                if stopped:
                    run.reason = "stop"
                    return


async def _strike(
    pending: list[FaultSpec], emitted: int, pacing: backends.Pacing, *, final: bool
) -> tuple[list[FaultSpec], ErrorLine | None]:
    """Apply the mid-stream faults due before chunk number ``emitted`` (all of them if final)."""
    remaining = []
    for fault in pending:
        due = fault.after <= emitted or final
        if fault.kind is FaultKind.SLOW_FIRST_TOKEN:
            due = emitted == 0 or final
        if not due:
            remaining.append(fault)
            continue
        if fault.kind in (FaultKind.STALL, FaultKind.SLOW_FIRST_TOKEN):
            paused = time.perf_counter()
            pacing.running.clear()
            try:
                await asyncio.sleep(fault.seconds)
            finally:
                pacing.running.set()
            pacing.paused_s += time.perf_counter() - paused
        elif fault.kind is FaultKind.ERROR_LINE:
            return remaining, ErrorLine(fault.error_message)
        elif fault.kind is FaultKind.DROP:
            raise DropConnection(f"connection dropped after {emitted} chunks (injected fault)")
    return remaining, None


def describe(stats: Stats) -> Mapping[str, int]:
    """Ollama's statistics fields, leaving out the empty ones as Ollama does."""
    values = ((name, getattr(stats, held)) for name, held in _STATISTICS)
    return {name: value for name, value in values if value}
