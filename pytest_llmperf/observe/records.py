"""The measured record of every call, and the recorder that collects a test's records.

Definitions follow the common LLM benchmarks (the README's "What is measured"): time to first
token is from the start of the call to the first chunk that carries text; inter-token gaps are
between successive text chunks, excluding the first; time per output token is
``(total - ttft) / (output tokens - 1)``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict, cast

from pytest_llmperf.client.protocol import ServerStats
from pytest_llmperf.client.timeouts import Limits


@dataclass(slots=True)
class GapSummary:
    """Inter-token gaps of one streamed call, in seconds."""

    count: int
    mean: float
    p50: float
    p95: float
    max: float

    @classmethod
    def of(cls, gaps: Sequence[float]) -> GapSummary | None:
        if not gaps:
            return None
        return cls._summary(len(gaps), sum(gaps) / len(gaps), sorted(gaps))

    @classmethod
    def between(cls, times: Sequence[float], gathered: bool = False) -> GapSummary | None:
        """The gaps between successive ``times``: :meth:`of` without the list of gaps in
        between, and the mean as the span over the count (the sum of the gaps, up to
        rounding). ``gathered``: the times are live and in order, and several text chunks may
        have come in one read (equal times, so gaps of 0); then all of them in one read give
        all zeros without a subtraction."""
        count = len(times) - 1
        if count < 1:
            return None
        first, last = times[0], times[-1]
        if gathered and first == last:  # all in one read
            return cls(count, 0.0, 0.0, 0.0, 0.0)
        # (a slice, not islice: C's loop over a list is the cheaper one for a few dozen)
        ordered = sorted(map(operator.sub, times[1:], times))
        return cls._summary(count, (last - first) / count, ordered)

    @classmethod
    def _summary(cls, count: int, mean: float, ordered: Sequence[float]) -> GapSummary:
        """The summary of ``count`` gaps already in order: both quantiles as
        :func:`~pytest_llmperf.stats.sorted_quantile` interpolates them, spelt out here (this
        runs for every streamed call a test makes)."""
        top = len(ordered) - 1
        if not top:
            only = ordered[0]
            return cls(count, mean, only, only, only)
        position = 0.5 * top
        low = int(position)  # (floor: the position is not negative)
        below = ordered[low]
        p50 = below + (ordered[low + 1] - below) * (position - low)  # below the top: low < top
        position = 0.95 * top
        low = int(position)
        below = ordered[low]
        p95 = below if low == top else below + (ordered[low + 1] - below) * (position - low)
        return cls(count, mean, p50, p95, ordered[top])


class CallDict(TypedDict):
    """A :class:`CallRecord` as the report holds it (:meth:`CallRecord.to_dict`)."""

    route: str
    model: str
    tier: str | None
    host: str | None
    stream: bool
    purpose: str
    cache: str
    started_at: float
    total_s: float
    ttft_s: float | None
    gaps: dict[str, float] | None
    output_tokens: int | None
    server: dict[str, Any]  # ServerStats: counts and seconds
    limits: dict[str, float] | None
    retries: int
    fallback_from: list[str]
    outcome: str
    error: str | None
    timeout_phase: str | None
    timing: str
    request_digest: str | None
    source: str
    tokens_per_s: float | None
    time_per_output_token_s: float | None
    cache_hit: bool


@dataclass(slots=True)
class CallRecord:
    """One call, cached or not, as it was measured (read it; the plugin does not change it).

    ``cache`` is one of ``hit-memory``, ``hit-redis``, ``miss``, ``bypass`` (not cached: not
    repeatable, or asked not to) and ``off``; ``outcome`` is ``ok``, ``timeout``, ``error``
    or ``cancelled``. Times are seconds from the start of the call, measured on the client's
    clock (``timing == "live"``), or, for an answer replayed from a cassette, the times the
    cassette recorded (``timing == "recorded"``), however fast the replay ran.
    """

    route: str
    model: str
    tier: str | None
    host: str | None
    stream: bool
    purpose: str
    cache: str
    started_at: float
    total_s: float
    ttft_s: float | None
    gaps: GapSummary | None
    output_tokens: int | None
    server: ServerStats
    limits: Limits | None
    retries: int
    fallback_from: tuple[str, ...]
    outcome: str
    error: str | None = None
    timeout_phase: str | None = None
    timing: str = "live"
    request_digest: str | None = None  # a hash of the request sent; None for cache hits
    source: str = "llmperf"  # who measured it: our client, or the transport of another

    @property
    def tokens_per_s(self) -> float | None:
        """The decode rate: the server's ``eval_count / eval_duration``, or else (OpenAI's
        ``/v1`` gives no durations) one token per mean gap between the stream's text chunks;
        ``None`` for a whole answer without the server's figures."""
        speed = self.server.tokens_per_s
        if speed is None and self.gaps is not None and self.gaps.mean > 0:
            speed = 1.0 / self.gaps.mean
        return speed

    @property
    def time_per_output_token_s(self) -> float | None:
        if self.ttft_s is None or not self.output_tokens or self.output_tokens < 2:
            return None
        return (self.total_s - self.ttft_s) / (self.output_tokens - 1)

    @property
    def cache_hit(self) -> bool:
        return self.cache.startswith("hit")

    def to_dict(self) -> CallDict:
        """A JSON-able dict of every field and the derived figures."""
        out = cast(CallDict, asdict(self))
        out["fallback_from"] = list(self.fallback_from)
        out["tokens_per_s"] = self.tokens_per_s
        out["time_per_output_token_s"] = self.time_per_output_token_s
        out["cache_hit"] = self.cache_hit
        return out


@dataclass
class Recorder:
    """The records of one scope (a test, or the session); a list you can read and iterate.

    ``listeners`` are called with each record as it arrives.
    """

    name: str = ""
    records: list[CallRecord] = field(default_factory=list)
    listeners: list[Callable[[CallRecord], None]] = field(default_factory=list)

    def __call__(self, record: CallRecord) -> None:
        self.records.append(record)
        for listener in self.listeners:
            listener(record)

    def __iter__(self) -> Iterator[CallRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> CallRecord:
        return self.records[index]

    def by_model(self, model: str) -> list[CallRecord]:
        return [record for record in self.records if record.model == model]

    @property
    def cache_hits(self) -> int:
        return sum(record.cache_hit for record in self.records)

    def clear(self) -> None:
        self.records.clear()


class Discard(Recorder):
    """The recorder of a test whose calls are not measured (``llm_unmeasured``)."""

    def __call__(self, record: CallRecord) -> None:
        pass


class RecordRouter:
    """Sends each record to the recorder of the test running now (else the session's)."""

    def __init__(self) -> None:
        self.session = Recorder("session")
        self.current = self.session

    def __call__(self, record: CallRecord) -> None:
        self.current(record)
