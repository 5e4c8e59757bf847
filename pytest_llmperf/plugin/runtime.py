"""What the client fixtures share over a session: caches, timeouts, host pools, connections.

Clients are cheap and made per test (so a marker can change their settings); the state
that must outlive a test lives here, keyed by the settings that shape it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from pytest_llmperf.client.cache import ResponseCache, open_redis
from pytest_llmperf.client.faces import AsyncOllamaClient, OllamaClient, new_sync_http
from pytest_llmperf.client.hosts import HostPool
from pytest_llmperf.client.lanes import Lanes
from pytest_llmperf.client.protocol import Api
from pytest_llmperf.client.timeouts import AdaptiveTimeouts, Limits
from pytest_llmperf.observe.records import RecordRouter
from pytest_llmperf.plugin.settings import EMULATOR, Settings


class Runtime:
    """The session's shared client state; ``router`` gets every call's record."""

    def __init__(self, router: RecordRouter) -> None:
        self.router = router
        self._caches: dict[tuple[str, float | None, str], ResponseCache | None] = {}
        self._timeouts: dict[tuple[tuple[tuple[str, Limits], ...], bool], AdaptiveTimeouts] = {}
        self._pools: dict[tuple[str, ...], HostPool] = {}
        self.lanes: Lanes[httpx.Client] = Lanes(new_sync_http)

    def cache(self, settings: Settings) -> ResponseCache | None:
        key = (settings.cache, settings.cache_ttl, settings.cache_namespace)
        if key not in self._caches:
            self._caches[key] = make_cache(settings)
        return self._caches[key]

    def timeouts(self, settings: Settings) -> AdaptiveTimeouts:
        key = (tuple(settings.timeouts.items()), settings.adaptive_timeouts)
        if key not in self._timeouts:
            self._timeouts[key] = make_timeouts(settings)
        return self._timeouts[key]

    def pool(self, settings: Settings, emulator: Callable[[], str]) -> HostPool:
        urls = tuple(emulator() if host == EMULATOR else host for host in settings.hosts)
        if urls not in self._pools:
            self._pools[urls] = HostPool(urls)
        return self._pools[urls]

    def client(self, settings: Settings, emulator: Callable[[], str]) -> OllamaClient:
        return OllamaClient(**self._options(settings, emulator), http=self.lanes)

    def async_client(self, settings: Settings, emulator: Callable[[], str]) -> AsyncOllamaClient:
        # an async client's connections belong to its event loop: it makes its own
        return AsyncOllamaClient(**self._options(settings, emulator))

    def _options(self, settings: Settings, emulator: Callable[[], str]) -> dict[str, Any]:
        """What both clients are made with: the shared state and the test's settings."""
        return {
            "host": self.pool(settings, emulator),
            "api": _api(settings),
            "tiers": settings.tiers,
            "cache": self.cache(settings),
            "timeouts": self.timeouts(settings),
            "fallback": settings.fallback,
            "retries": settings.retries,
            "concurrency": settings.concurrency,
            "max_line_bytes": settings.max_line_bytes,
            "on_record": self.router,
        }

    def problems(self) -> list[str]:
        """What went wrong with the shared state, for the end of the run (Redis down)."""
        return [
            f"the response cache could not reach {cache.redis_name} "
            f"({cache.stats.redis_error}); the calls ran with the in-process cache only"
            for cache in self._caches.values()
            if cache is not None and cache.stats.redis_errors
        ]

    def close(self) -> None:
        for http in self.lanes.clients:
            http.close()


def _api(settings: Settings) -> Api:
    return "openai" if settings.api == "openai" else "ollama"


def make_cache(settings: Settings) -> ResponseCache | None:
    """The cache ``settings.cache`` names: ``off``, ``memory`` (+ fakeredis) or a Redis URL."""
    if settings.cache == "off":
        return None
    url = "fakeredis" if settings.cache == "memory" else settings.cache
    return ResponseCache(
        open_redis(url),
        ttl_s=settings.cache_ttl,
        namespace=settings.cache_namespace,
        redis_name=url,
    )


def make_timeouts(settings: Settings) -> AdaptiveTimeouts:
    """The per-tier limits of ``settings.timeouts``, and their adaptation."""
    return AdaptiveTimeouts(tiers=dict(settings.timeouts), enabled=settings.adaptive_timeouts)
