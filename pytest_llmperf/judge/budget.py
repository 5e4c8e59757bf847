"""Latency budgets: what a test's LLM calls may cost, and the verdict on what they did cost.

A :class:`Budget` comes from the ``llm_budget`` marker (keyword arguments only) or from the
suite's per-tier budgets (``llm_budgets`` ini lines such as ``fast: total=2 ttft=0.5``).
Per call: ``total`` and ``ttft`` (seconds, at most) and ``tokens_per_s`` (at least). Per
test: ``calls`` and ``tokens`` (output tokens, at most), ``wall`` (seconds of LLM time
summed over the calls), and ``p50`` / ``p95`` / ``p99`` (seconds, of the calls' total
time). ``mode`` is ``enforce`` (a violation fails the test) or ``warn``. Warm-up and
unload calls are not judged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from pytest_llmperf.client.protocol import ServerStats
from pytest_llmperf.observe.records import CallRecord
from pytest_llmperf.stats import quantile

MODES = ("enforce", "warn", "off")


def _limit(unit: str, *, per_call: bool = False) -> Any:
    """A field of :class:`Budget`: a limit in ``unit`` (``seconds``, ``count`` or ``rate``),
    on each call (``per_call``) or on the whole test; ``None`` means no limit."""
    return field(default=None, metadata={"unit": unit, "per_call": per_call})


@dataclass(frozen=True)
class Budget:
    """Limits on a test's LLM calls; ``None`` means no limit."""

    total: float | None = _limit("seconds", per_call=True)
    ttft: float | None = _limit("seconds", per_call=True)
    tokens_per_s: float | None = _limit("rate", per_call=True)
    calls: int | None = _limit("count")
    tokens: int | None = _limit("count")
    wall: float | None = _limit("seconds")
    p50: float | None = _limit("seconds")
    p95: float | None = _limit("seconds")
    p99: float | None = _limit("seconds")
    runs: int | None = _limit("count")  # not a limit: how many times the test body runs
    mode: str | None = None

    @classmethod
    def from_marker(cls, args: Sequence[Any], kwargs: Mapping[str, Any], where: str) -> Budget:
        """The marker's budget; a wrong name, type or value raises ValueError naming it."""
        if args:
            raise ValueError(f"{where}: give budgets as keywords, e.g. llm_budget(total=2.0)")
        known = [f.name for f in fields(cls)]
        values: dict[str, Any] = {}
        for name, value in kwargs.items():
            if name not in known:
                raise ValueError(
                    f"{where}: unknown budget {name!r}; the budgets are {', '.join(known)}"
                )
            values[name] = _checked(name, value, where)
        return cls(**values)

    @classmethod
    def parse(cls, text: str, where: str) -> Budget:
        """A budget from ``total=2 ttft=0.5`` (ini lines)."""
        values: dict[str, Any] = {}
        for part in text.replace(",", " ").split():
            name, sep, raw = part.partition("=")
            if not sep:
                raise ValueError(f"{where}: cannot read {part!r}: write NAME=VALUE")
            value: Any = raw
            if name != "mode":
                try:
                    value = float(raw) if name not in COUNTS else int(raw)
                except ValueError:
                    raise ValueError(f"{where}: {name}={raw!r} is not a number") from None
            values[name] = value
        return cls.from_marker((), values, where)

    def over(self, base: Budget) -> Budget:
        """This budget with ``base``'s limits where this one sets none."""
        return replace(
            base,
            **{
                f.name: getattr(self, f.name)
                for f in fields(self)
                if getattr(self, f.name) is not None
            },
        )


# Each limit's unit, as its field gives it.
_UNITS = {f.name: f.metadata["unit"] for f in fields(Budget) if "unit" in f.metadata}
# The budgets given in seconds, and those that are whole numbers (the rest are rates).
SECONDS = frozenset(name for name, unit in _UNITS.items() if unit == "seconds")
COUNTS = frozenset(name for name, unit in _UNITS.items() if unit == "count")
_WANTED = {
    "seconds": "a number of seconds",
    "count": "a whole number",
    "rate": "a number of tokens per second",
}
# The budgets that judge each call on its own: all that a tier's suite budget may set.
PER_CALL = frozenset(f.name for f in fields(Budget) if f.metadata.get("per_call"))


def _checked(name: str, value: Any, where: str) -> Any:
    if name == "mode":
        if value not in MODES:
            raise ValueError(f"{where}: mode={value!r}: choose one of {', '.join(MODES)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: {name}={value!r} must be {_WANTED[_UNITS[name]]}")
    if name in COUNTS and not isinstance(value, int):
        raise ValueError(f"{where}: {name}={value!r} must be a whole number")
    if not math.isfinite(value):  # nan passed every comparison, so no call was ever over it
        raise ValueError(f"{where}: {name}={value!r} must be a finite number above 0")
    if value <= 0 and not (name in COUNTS and value == 0 and name != "runs"):
        raise ValueError(f"{where}: {name}={value!r} must be above 0")
    return value


def cannot_repeat(runs: int, fixtures: Sequence[str], cassette: bool) -> str | None:
    """Why a test cannot run its body ``runs`` times, or None."""
    if "benchmark" in fixtures:
        return (
            f"runs={runs} repeats the test body, and pytest-benchmark's fixture can be used "
            "once per test: let benchmark's rounds do the repeating (its extra_info gets the "
            "LLM figures), or drop runs"
        )
    if cassette or "llm_cassette" in fixtures:
        return (
            f"runs={runs} repeats the test body, and a cassette replays each recorded answer "
            "once: drop runs (a replayed call is judged on its recorded timing), or record "
            "without the cassette"
        )
    return None


@dataclass(frozen=True)
class Violation:
    """One limit a test's calls went past."""

    budget: str
    measured: float
    limit: float
    call: int | None  # the call's position (1-based) among the judged calls, if per call
    line: str


def judged(records: Iterable[CallRecord]) -> list[CallRecord]:
    """The calls a budget judges: real calls, not warm-ups or unloads."""
    return [record for record in records if record.purpose == "call"]


def judge(
    budget: Budget,
    records: Sequence[CallRecord],
    tiers: Mapping[str, Budget] | None = None,
    runs: Sequence[int] = (),
) -> list[Violation]:
    """Every limit ``records`` went past; per-call limits come from ``budget`` over the tier's.

    ``runs``: where each run of the test ended (indexes into ``records``) when it ran more
    than once; ``calls``, ``tokens`` and ``wall`` are then judged per run.
    """
    calls = judged(records)
    found: list[Violation] = []
    for number, record in enumerate(calls, 1):
        suite = (tiers.get(record.tier or "") or tiers.get("*")) if tiers else None
        limits = budget.over(suite) if suite else budget
        found.extend(_per_call(limits, record, number, len(calls)))
    if len(runs) > 1:
        start = 0
        for number, end in enumerate(runs, 1):
            found.extend(_per_run(budget, judged(records[start:end]), f"run {number}: "))
            start = end
    else:
        found.extend(_per_run(budget, calls, ""))
    found.extend(_percentiles(budget, calls, len(runs)))
    return found


def _past(
    name: str, measured: float | None, limit: float | None, call: int | None, line: str
) -> list[Violation]:
    """A violation when ``measured`` went past ``limit`` (below it, for a rate); ``line``
    is formatted with ``measured`` and ``limit`` only then."""
    if limit is None or measured is None:
        return []
    past = measured < limit if name == "tokens_per_s" else measured > limit
    if not past:
        return []
    return [Violation(name, measured, limit, call, line.format(measured=measured, limit=limit))]


def _per_call(budget: Budget, record: CallRecord, number: int, count: int) -> list[Violation]:
    where = f"call {number} of {count} ({record.route}, {record.model}"
    where += f", tier {record.tier})" if record.tier else ")"
    where = _literal(where)
    return [
        *_past(
            "total",
            record.total_s,
            budget.total,
            number,
            where + ": total {measured:.3g} s > budget {limit:g} s",
        ),
        *_past(
            "ttft",
            record.ttft_s,
            budget.ttft,
            number,
            where + ": time to first token {measured:.3g} s > budget {limit:g} s",
        ),
        *_past(
            "tokens_per_s",
            record.tokens_per_s,
            budget.tokens_per_s,
            number,
            where + ": {measured:.3g} tokens/s < budget {limit:g} tokens/s",
        ),
    ]


def _literal(text: str) -> str:
    """``text`` as part of a :meth:`str.format` template: its braces kept as they are."""
    return text.replace("{", "{{").replace("}", "}}")


def _per_run(budget: Budget, calls: Sequence[CallRecord], where: str) -> list[Violation]:
    where = _literal(where)
    tokens = sum(record.output_tokens or 0 for record in calls)
    wall = sum(record.total_s for record in calls)
    return [
        *_past(
            "calls",
            len(calls),
            budget.calls,
            None,
            where + "{measured} calls > budget {limit} calls",
        ),
        *_past(
            "tokens",
            tokens,
            budget.tokens,
            None,
            where + "{measured} output tokens > budget {limit} tokens",
        ),
        *_past(
            "wall",
            wall,
            budget.wall,
            None,
            where + "LLM time {measured:.3g} s > budget {limit:g} s",
        ),
    ]


def _percentiles(budget: Budget, calls: Sequence[CallRecord], runs: int) -> list[Violation]:
    totals = [record.total_s for record in calls]
    if not totals:
        return []
    over = f" over {runs} runs" if runs > 1 else ""
    found = []
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        line = f"{name} of {len(totals)} calls{over} " + "{measured:.3g} s > budget {limit:g} s"
        found += _past(name, quantile(totals, q), getattr(budget, name), None, line)
    return found


@dataclass(frozen=True)
class TimeSplit:
    """Where a call's time went, in seconds; a part the server did not report is ``None``.

    ``other_server_s`` is the server's total beyond its load, prompt and generation (time
    it held the request without working on it: its queue, scheduling); ``outside_s`` is the
    call's total beyond the server's (queueing before it, and the network). Without the
    server's total, ``outside_s`` is what the reported parts leave of the call's total.
    """

    load_s: float | None
    prompt_s: float | None
    generation_s: float | None
    other_server_s: float | None
    outside_s: float | None

    @property
    def waiting_s(self) -> float:
        """Time the call spent neither loading nor computing: queues and the network."""
        return max(self.other_server_s or 0.0, 0.0) + (self.outside_s or 0.0)


def split(total_s: float, server: ServerStats) -> TimeSplit:
    """The parts of a call of ``total_s`` seconds, from the server's statistics."""
    spent = sum(s for s in (server.load_s, server.prompt_eval_s, server.eval_s) if s is not None)
    reported = any(s is not None for s in (server.load_s, server.prompt_eval_s, server.eval_s))
    if server.total_s is not None:
        other: float | None = server.total_s - spent
        outside: float | None = max(total_s - server.total_s, 0.0)
    else:
        other, outside = None, max(total_s - spent, 0.0) if reported else None
    return TimeSplit(server.load_s, server.prompt_eval_s, server.eval_s, other, outside)


def breakdown(record: CallRecord) -> str:
    """Where a call's time went; the parts add up to its total.

    The server's parts (load, prompt, generation, the rest of its own total), then the time
    outside the server (queueing before it and the network); a cache hit is all cache.
    """
    if record.cache_hit:  # the statistics are the original answer's, not this call's
        return f"{record.cache} {record.total_s:.3g} s (the server was not called)"
    parts = split(record.total_s, record.server)
    shown = [
        f"{label} {seconds:.3g} s"
        for label, seconds in (
            ("load", parts.load_s),
            ("prompt", parts.prompt_s),
            ("generation", parts.generation_s),
        )
        if seconds is not None
    ]
    if parts.other_server_s is not None:
        if parts.other_server_s >= 0.0005:
            shown.append(f"other server time {parts.other_server_s:.3g} s")
        shown.append(f"queue+network {parts.outside_s:.3g} s")
    elif parts.outside_s is not None:
        shown.append(f"outside them {parts.outside_s:.3g} s")
    else:
        shown.append(f"no server statistics; {record.total_s:.3g} s in all")
    if record.source == "llmperf":
        shown.append(f"cache {record.cache}")
    return ", ".join(shown)


def hint(test: str, violations: Sequence[Violation], records: Sequence[CallRecord]) -> str:
    """The advice that fits the evidence of the calls that went past their budget: the first
    recommendation rule that fires on them (the report's rules, so the two never disagree)."""
    from pytest_llmperf.judge.recommend import for_one_test

    calls = judged(records)
    if any(v.budget == "calls" for v in violations):
        return "the test makes more calls than budgeted: cache repeated calls or batch them"
    culprits = [calls[v.call - 1] for v in violations if v.call is not None] or calls
    found = for_one_test(test, [r.to_dict() for r in culprits])
    if found:
        return str(found[0]["message"])
    if any(r.tier not in (None, "fast") for r in culprits):
        return "use a faster tier (tier='fast'), ask for fewer tokens, or raise the budget"
    return "ask for fewer tokens (num_predict), or raise the budget if this is expected"


def verdict(test: str, violations: Sequence[Violation], records: Sequence[CallRecord]) -> str:
    """The failure message: every violation, each call's breakdown, and a hint."""
    calls = judged(records)
    lines = [
        f"LLM budget exceeded in {test} ({len(violations)} violation"
        f"{'s' if len(violations) != 1 else ''}):"
    ]
    for violation in violations:
        lines.append(f"  {violation.line}")
        if violation.call is not None:
            lines.append(f"    {breakdown(calls[violation.call - 1])}")
    lines.append(f"hint: {hint(test, violations, records)}")
    return "\n".join(lines)


def suite_budgets(lines: Iterable[str]) -> dict[str, Budget]:
    """Per-tier budgets from ``TIER: total=2 ttft=0.5`` lines (``*`` for every tier)."""
    out = {}
    for line in lines:
        tier, sep, text = line.partition(":")
        if not sep or not tier.strip():
            raise ValueError(f"cannot read budget {line!r}: write TIER: total=2 ttft=0.5")
        where = f"budget for tier {tier.strip()}"
        budget = Budget.parse(text, where)
        extra = [
            f.name
            for f in fields(budget)
            if f.name not in PER_CALL and getattr(budget, f.name) is not None
        ]
        if extra:
            raise ValueError(
                f"{where}: {extra[0]} is a limit on a whole test; a tier's budget takes the "
                "per-call limits total, ttft and tokens_per_s (put the others on the marker)"
            )
        out[tier.strip()] = budget
    return out
