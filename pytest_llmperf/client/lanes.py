"""Several HTTP clients side by side, so that no connection pool grows large.

httpcore's pool looks at every connection it holds each time it assigns a request, so with
many connections kept alive its cost grows with the square of their number: measured here,
a second batch of 64 concurrent calls through one ``httpx.AsyncClient`` took 3.4x the time
of one call, against 1.2x through eight clients of at most eight calls each. A call takes
the lane with the fewest calls in flight; a new lane opens only when every lane has
``width`` calls in flight, up to ``most`` lanes (after which the least busy lane is shared).
Sequential calls all go through the first lane and reuse its connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

H = TypeVar("H")


class Lanes(Generic[H]):
    """HTTP clients made by ``make`` on demand; :meth:`take` one per call, then :meth:`give`."""

    def __init__(self, make: Callable[[], H], *, width: int = 8, most: int = 16) -> None:
        self._make = make
        self.width = width
        self.most = most
        self.clients: list[H] = []
        self._busy: list[int] = []
        self._lock = threading.Lock()

    def take(self) -> tuple[int, H]:
        with self._lock:
            busy = self._busy
            if busy:
                lane = min(range(len(busy)), key=busy.__getitem__)
                if busy[lane] < self.width or len(busy) >= self.most:
                    busy[lane] += 1
                    return lane, self.clients[lane]
            self.clients.append(self._make())
            busy.append(1)
            return len(busy) - 1, self.clients[-1]

    def ready(self) -> None:
        """Make the first client now, if there is none yet (before a call's clock starts:
        making one, with its TLS context, can take longer than a fast call)."""
        if not self.clients:
            with self._lock:
                if not self.clients:
                    self.clients.append(self._make())
                    self._busy.append(0)

    def give(self, lane: int) -> None:
        with self._lock:
            self._busy[lane] -= 1

    def in_flight(self) -> list[int]:
        return list(self._busy)
