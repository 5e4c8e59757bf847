"""Balancing calls across several servers.

Each call goes to the host with the fewest calls in flight, ties broken by the lower recent
latency (an exponential moving average of successful calls' total time). A host that fails
to connect or answers 503 is cooled down for ``cooldown_s``: it is picked again only when
no other host is available. A pool of one host has nothing to choose and keeps no counts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from pytest_llmperf.errors import ConfigurationError


@dataclass
class HostState:
    """One host's load and health, as the pool sees it."""

    url: str
    in_flight: int = 0
    latency_s: float = 0.0
    calls: int = 0
    failures: int = 0
    cooled_until: float = 0.0


class HostPool:
    """The hosts a client calls, and which one gets the next call."""

    def __init__(
        self, urls: Sequence[str], *, cooldown_s: float = 5.0, smoothing: float = 0.2
    ) -> None:
        if not urls:
            raise ConfigurationError("a host pool needs at least one host URL")
        self.hosts = [HostState(url) for url in dict.fromkeys(urls)]
        self._by_url = {host.url: host for host in self.hosts}
        self._single = self.hosts[0] if len(self.hosts) == 1 else None
        self.cooldown_s = cooldown_s
        self.smoothing = smoothing
        self._lock = threading.Lock()

    @property
    def urls(self) -> list[str]:
        return [host.url for host in self.hosts]

    def acquire(self, avoid: Collection[str] = ()) -> str:
        """Pick a host for one call and count it in flight; release it with :meth:`release`."""
        if self._single is not None:  # one host: nothing to choose, nobody to count for
            return self._single.url
        now = time.monotonic()
        with self._lock:
            fresh = [h for h in self.hosts if h.url not in avoid] or self.hosts
            ready = [h for h in fresh if h.cooled_until <= now]
            if ready:
                chosen = min(ready, key=lambda h: (h.in_flight, h.latency_s))
            else:
                chosen = min(fresh, key=lambda h: h.cooled_until)
            chosen.in_flight += 1
            return chosen.url

    def release(self, url: str, *, latency_s: float | None = None, failed: bool = False) -> None:
        if self._single is not None:
            return
        with self._lock:
            host = self._by_url[url]
            host.in_flight -= 1
            host.calls += 1
            if failed:
                host.failures += 1
                host.cooled_until = time.monotonic() + self.cooldown_s
            elif latency_s is not None:
                if host.latency_s == 0.0:
                    host.latency_s = latency_s
                else:
                    host.latency_s += self.smoothing * (latency_s - host.latency_s)


def backoff_s(attempt: int, base: float = 0.05, cap: float = 1.0) -> float:
    """The wait before retry number ``attempt`` (1, 2, ...): doubling from ``base``, capped."""
    return float(min(cap, base * 2 ** (attempt - 1)))
