"""Ollama's scheduler, emulated: which models are in memory, for how long, and who waits.

- A model not in memory pays its load time on first use; it stays for its ``keep_alive``
  (negative: forever, 0: unloaded as soon as its last request ends).
- ``num_parallel`` requests run at once per model; others wait in one queue for the whole
  server, and a request that would make the queue longer than ``max_queue`` is refused.
- Past ``max_loaded_models`` the least recently used idle model is evicted.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from pytest_llmperf.emulator.backends import Backend
from pytest_llmperf.emulator.profiles import ServerSettings

# How Ollama shows "forever" in /api/ps: the largest duration Go can hold, ~292 years ahead.
_FOREVER = timedelta(seconds=(2**63 - 1) / 1e9)


class QueueFull(Exception):
    """More requests wait than ``max_queue`` allows (Ollama answers 503)."""


@dataclass
class Resident:
    """A model in memory."""

    backend: Backend
    expires_at: float = math.inf  # on the scheduler's monotonic clock
    active: int = 0
    last_used: float = 0.0


@dataclass(frozen=True)
class LoadedModel:
    """What /api/ps shows of a resident model."""

    backend: Backend
    expires_at: datetime


@dataclass
class Lease:
    """A running request's hold on its model; ``load_ns`` is what it waited for loading."""

    load_ns: int = 0
    cold: bool = False
    keep_alive_s: float = 300.0


class Scheduler:
    """Tracks resident models, per-model slots and the server-wide queue."""

    def __init__(
        self, settings: ServerSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._resident: dict[str, Resident] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._load_locks: dict[str, asyncio.Lock] = {}
        self.waiting = 0

    @asynccontextmanager
    async def lease(self, backend: Backend, keep_alive_s: float) -> AsyncIterator[Lease]:
        """Hold a slot of ``backend``'s model, loading it first if it is not in memory."""
        name = backend.profile.name
        slots = self._slots.setdefault(name, asyncio.Semaphore(self.settings.num_parallel))
        if slots.locked() and self.waiting >= self.settings.max_queue:
            raise QueueFull
        self.waiting += 1
        try:
            await slots.acquire()
        finally:
            self.waiting -= 1
        lease = Lease(keep_alive_s=keep_alive_s)
        try:
            resident = await self._ensure_loaded(backend, lease)
            resident.active += 1
            try:
                yield lease
            finally:
                resident.active -= 1
                self._after_request(name, resident, lease.keep_alive_s)
        finally:
            slots.release()

    def unload(self, name: str) -> None:
        """Unload ``name`` now if it is idle (``keep_alive: 0`` with no prompt)."""
        resident = self._resident.get(name)
        if resident is not None and resident.active == 0:
            del self._resident[name]
            resident.backend.unload()

    def loaded(self) -> list[LoadedModel]:
        """The resident models, most recently used first, with their wall-clock expiry."""
        self._expire()
        now_mono, now_wall = self._clock(), datetime.now(timezone.utc)
        models = sorted(self._resident.values(), key=lambda r: r.last_used, reverse=True)
        return [
            LoadedModel(
                r.backend,
                now_wall
                + (
                    _FOREVER
                    if math.isinf(r.expires_at)
                    else timedelta(seconds=max(0.0, r.expires_at - now_mono))
                ),
            )
            for r in models
        ]

    async def _ensure_loaded(self, backend: Backend, lease: Lease) -> Resident:
        name = backend.profile.name
        started = time.perf_counter_ns()
        lock = self._load_locks.setdefault(name, asyncio.Lock())
        waited_for_load = lock.locked()
        async with lock:
            self._expire()
            resident = self._resident.get(name)
            if resident is None:
                self._make_room()
                await backend.load()
                resident = Resident(backend)
                self._resident[name] = resident
                lease.cold = True
        if lease.cold or waited_for_load:
            lease.load_ns = time.perf_counter_ns() - started
        resident.last_used = self._clock()
        resident.expires_at = math.inf  # a model in use never expires
        return resident

    def _make_room(self) -> None:
        while len(self._resident) >= self.settings.max_loaded_models:
            idle = [(r.last_used, n) for n, r in self._resident.items() if r.active == 0]
            if not idle:
                return  # every resident model is busy: load beyond the limit, as Ollama may
            self.unload(min(idle)[1])

    def _after_request(self, name: str, resident: Resident, keep_alive_s: float) -> None:
        resident.last_used = self._clock()
        if resident.active:
            return
        if keep_alive_s <= 0:
            self.unload(name)
        else:
            resident.expires_at = self._clock() + keep_alive_s

    def _expire(self) -> None:
        now = self._clock()
        for name, r in list(self._resident.items()):
            if r.active == 0 and r.expires_at <= now:
                self.unload(name)
