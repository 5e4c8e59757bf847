"""Timeouts per phase of a call, per tier, and how they adapt to a model's measured latency.

A call has four limits (seconds): ``connect``; ``first_token``, from the start of the call to
the first chunk (for Ollama that includes loading the model and reading the prompt);
``stall``, the longest wait for the next chunk of a stream; and ``total``.

**The adaptive rule.** Each model keeps a window of its last ``window`` successful calls
(calls only: warm-ups and unloads neither count nor adapt, and a call's time is that of
the attempt that answered). Once a phase has ``min_samples`` observations, its limit
becomes ``factor`` times the ``quantile`` of what was observed for it (time to first token
and the largest gap between chunks, from streamed calls; the total time, from all), clamped
between the floor and the tier's limit (the ceiling). A timeout
under adapted limits forgets the model's window, so its next call gets the tier's limits
again (the model may have been unloaded and must load once more).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from pytest_llmperf.errors import ConfigurationError
from pytest_llmperf.stats import quantile


@dataclass(frozen=True)
class Limits:
    """The time limits of one call, in seconds, per phase."""

    total: float
    first_token: float
    stall: float
    connect: float = 5.0

    def __post_init__(self) -> None:
        for name in ("total", "first_token", "stall", "connect"):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or value <= 0:
                raise ConfigurationError(
                    f"timeout limit {name}={value!r} must be a number of seconds above 0"
                )

    @classmethod
    def parse(cls, text: str, base: Limits) -> Limits:
        """Limits from ``total=10 first_token=5 stall=5 connect=2`` laid over ``base``."""
        changes: dict[str, float] = {}
        for part in text.replace(",", " ").split():
            name, sep, value = part.partition("=")
            if not sep or name not in ("total", "first_token", "stall", "connect"):
                raise ConfigurationError(
                    f"cannot read timeout {part!r}: write PHASE=SECONDS with PHASE one of "
                    "total, first_token, stall, connect"
                )
            try:
                changes[name] = float(value)
            except ValueError:
                raise ConfigurationError(
                    f"timeout {part!r}: {value!r} is not a number of seconds above 0"
                ) from None
        return replace(base, **changes)

    def within(self, ceiling: Limits) -> Limits:
        return Limits(
            total=min(self.total, ceiling.total),
            first_token=min(self.first_token, ceiling.first_token),
            stall=min(self.stall, ceiling.stall),
            connect=min(self.connect, ceiling.connect),
        )


TIER_LIMITS: Mapping[str, Limits] = MappingProxyType(
    {
        "fast": Limits(total=10.0, first_token=5.0, stall=5.0),
        "balanced": Limits(total=30.0, first_token=15.0, stall=10.0),
        "complex": Limits(total=60.0, first_token=30.0, stall=15.0),
    }
)
# A model outside the tier table gets the most patient tier's limits.
UNTIERED = TIER_LIMITS["complex"]
FLOOR = Limits(total=2.0, first_token=1.0, stall=0.5, connect=0.5)


@dataclass
class AdaptiveTimeouts:
    """Per-tier limits that follow each model's measured latency (see the module's rule)."""

    tiers: Mapping[str, Limits] = field(default_factory=lambda: dict(TIER_LIMITS))
    default: Limits = UNTIERED
    floor: Limits = FLOOR
    factor: float = 3.0
    quantile: float = 0.95
    min_samples: int = 10
    window: int = 100
    enabled: bool = True
    refresh: int = 10
    _samples: dict[str, deque[tuple[float | None, float | None, float]]] = field(
        default_factory=dict
    )
    _seen: dict[str, int] = field(default_factory=dict)
    _adapted: dict[tuple[str, str | None], tuple[int, Limits]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ceiling(self, tier: str | None) -> Limits:
        return self.tiers.get(tier, self.default) if tier else self.default

    def limits(self, model: str, tier: str | None) -> Limits:
        """The limits for the next call of ``model`` in ``tier``.

        They are recomputed after every ``refresh`` new observations of the model, not on
        every call: sorting a window of samples costs more than the rest of a call. A phase
        with fewer than ``min_samples`` observations (time to first token and gaps come
        from streamed calls only) keeps the tier's limit.
        """
        ceiling = self.ceiling(tier)
        if not self.enabled:
            return ceiling
        with self._lock:
            samples = self._samples.get(model)
            if samples is None or len(samples) < self.min_samples:
                return ceiling
            seen = self._seen.get(model, 0)
            cached = self._adapted.get((model, tier))
            if cached is not None and seen - cached[0] < self.refresh:
                return cached[1]
            ttft, gap, total = (list(phase) for phase in zip(*samples, strict=True))
        limits = Limits(
            total=self._clamp(total, self.floor.total, ceiling.total),
            first_token=self._clamp(ttft, self.floor.first_token, ceiling.first_token),
            stall=self._clamp(gap, self.floor.stall, ceiling.stall),
            connect=ceiling.connect,
        )
        with self._lock:
            self._adapted[(model, tier)] = (seen, limits)
        return limits

    def _clamp(self, observed: list[float | None], floor: float, ceiling: float) -> float:
        values = [value for value in observed if value is not None]
        if len(values) < self.min_samples:
            return ceiling
        wanted = self.factor * quantile(values, self.quantile)
        return max(min(floor, ceiling), min(wanted, ceiling))

    def adapted(self, model: str) -> bool:
        samples = self._samples.get(model)
        return self.enabled and samples is not None and len(samples) >= self.min_samples

    def observe(self, model: str, ttft: float | None, max_gap: float | None, total: float) -> None:
        """Add one successful call; ``ttft`` and ``max_gap`` are ``None`` when not streamed."""
        with self._lock:
            samples = self._samples.get(model)
            if samples is None:
                samples = self._samples[model] = deque(maxlen=self.window)
            samples.append((ttft, max_gap, total))
            self._seen[model] = self._seen.get(model, 0) + 1

    def forget(self, model: str) -> None:
        with self._lock:
            self._samples.pop(model, None)
            self._seen.pop(model, None)
            for key in [key for key in list(self._adapted) if key[0] == model]:
                del self._adapted[key]
