"""Regression gating: a run's report against a baseline's, per model and per test.

A regression needs two things at once:

* **size**: the median, or the p95, of a metric (a call's total time, or its time to first
  token) grew by more than ``threshold`` (10% by default); the p95 counts only when both
  sides have at least :data:`P95_SAMPLES` calls, since with fewer it is the maximum;
* **evidence**: a one-sided Mann-Whitney U test on the raw samples says the current calls are
  slower with p below ``alpha`` (0.01 by default).

Noise on a shared machine moves a percentile now and then, but seldom far beyond the
threshold with the whole distribution behind it, so noise alone does not fail a build. A
group with too few calls for the test to ever reach ``alpha`` is shown, never gated. Cache
hits, failed calls, warm-ups and unloads are left out of the samples: they measure something
else. Absolute limits are :mod:`pytest_llmperf.budget`'s business, not this module's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_llmperf.errors import ConfigurationError
from pytest_llmperf.stats import quantile

THRESHOLD = 0.10
ALPHA = 0.01
P95_SAMPLES = 20
METRICS = ("total_s", "ttft_s")
_EXACT_LIMIT = 400  # n1 * n2 up to which the U distribution is counted exactly

REGRESSION = "regression"
IMPROVEMENT = "improvement"
UNCHANGED = "unchanged"
TOO_FEW = "too few calls"
NEW = "new"
GONE = "gone"


def parse_threshold(value: str) -> float:
    """A relative change, written ``10%`` or ``0.1``."""
    text = value.strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a relative change; write 10% or 0.1") from None
    if not 0 < number < 10:
        raise ValueError(f"must be above 0 (10% or 0.1), got {value}")
    return number


def parse_alpha(value: str) -> float:
    """A significance level, above 0 and below 1."""
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number; write e.g. 0.01") from None
    if not 0 < number < 1:
        raise ValueError(f"must be between 0 and 1 (e.g. 0.01), got {value}")
    return number


def load(path: Path, role: str) -> dict[str, Any]:
    """A report read back from ``path``; anything unreadable is a ConfigurationError."""
    fix = f"make one with `pytest --llm-report {path}`"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"the {role} report {path} does not exist: {fix}") from None
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the {role} report {path}: {exc.strerror or exc}"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"the {role} report {path} is not JSON (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg}); {fix}"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
        raise ConfigurationError(
            f"the {role} report {path} is not a pytest-llmperf validation report (it has no "
            f"'tests' list); {fix}"
        )
    if data.get("schema_version") != 1:
        raise ConfigurationError(
            f"the {role} report {path} has schema_version {data.get('schema_version')!r}; this "
            "version of pytest-llmperf reads version 1"
        )
    return data


# --- the statistics -----------------------------------------------------------------------


def mann_whitney_greater(current: Sequence[float], base: Sequence[float]) -> float:
    """One-sided p-value that ``current`` tends to be larger than ``base`` (Mann-Whitney U).

    Counted exactly for small samples without ties, otherwise the normal approximation with
    the tie correction and a continuity correction.
    """
    n1, n2 = len(current), len(base)
    if not n1 or not n2:
        raise ValueError("both samples need at least one value")
    pooled = sorted([(value, 0) for value in current] + [(value, 1) for value in base])
    ranks = [0.0] * len(pooled)
    tie_term = 0.0
    start = 0
    while start < len(pooled):
        end = start
        while end + 1 < len(pooled) and pooled[end + 1][0] == pooled[start][0]:
            end += 1
        for i in range(start, end + 1):
            ranks[i] = (start + end) / 2 + 1
        size = end - start + 1
        tie_term += size**3 - size
        start = end + 1
    rank_sum = sum(rank for rank, (_, side) in zip(ranks, pooled, strict=True) if side == 0)
    u = rank_sum - n1 * (n1 + 1) / 2  # pairs where current > base, ties counting one half
    if tie_term == 0 and n1 * n2 <= _EXACT_LIMIT:
        counts = _u_distribution(n1, n2)
        at_least = sum(counts[round(u) :])
        return at_least / math.comb(n1 + n2, n1)
    n = n1 + n2
    mean = n1 * n2 / 2
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0:  # every value equal: no evidence either way
        return 1.0
    z = (u - mean - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))


def _u_distribution(n1: int, n2: int) -> list[int]:
    """How many arrangements of n1 + n2 distinct values give each U (0 .. n1 * n2)."""
    # ways[j][u]: arrangements of i values of the first sample and j of the second with U = u
    ways = [[1] for _ in range(n2 + 1)]  # i = 0: U is 0 whatever j
    for i in range(1, n1 + 1):
        row = [[1]]  # j = 0: U is 0
        for j in range(1, n2 + 1):
            # the largest value belongs to the first sample (beating all j) or to the second
            top = [0] * j + ways[j]
            rest = row[j - 1]
            size = i * j + 1
            row.append(
                [
                    (top[u] if u < len(top) else 0) + (rest[u] if u < len(rest) else 0)
                    for u in range(size)
                ]
            )
        ways = row
    return ways[n2]


def smallest_p(n1: int, n2: int) -> float:
    """The smallest one-sided p-value samples of these sizes can give (all of one side larger)."""
    return 1 / math.comb(n1 + n2, n1)


# --- the comparison -----------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """One side's samples of a metric, summarised."""

    n: int
    p50: float
    p95: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Side:
        return cls(len(values), quantile(values, 0.5), quantile(values, 0.95))


@dataclass(frozen=True)
class Finding:
    """One group (a model, or a test) and metric, compared."""

    scope: str  # "model" or "test"
    name: str
    metric: str
    status: str
    base: Side | None
    current: Side | None
    median_change: float | None = None  # current / base - 1
    p95_change: float | None = None  # None when either side has too few calls for a p95
    p_value: float | None = None
    tests: tuple[str, ...] = ()  # for a model: the tests whose calls to it grew past the threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "name": self.name,
            "metric": self.metric,
            "status": self.status,
            "base": None if self.base is None else vars(self.base),
            "current": None if self.current is None else vars(self.current),
            "median_change": self.median_change,
            "p95_change": self.p95_change,
            "p_value": self.p_value,
            "tests": list(self.tests),
        }


@dataclass
class Comparison:
    """Every finding of a comparison, and the rule it was made under."""

    threshold: float
    alpha: float
    findings: list[Finding] = field(default_factory=list)
    baseline: str | None = None

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if f.status == REGRESSION]

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "regressions": len(self.regressions),
            "findings": [f.to_dict() for f in self.findings],
        }


def samples(report: Mapping[str, Any]) -> Iterable[tuple[str, str, Mapping[str, Any]]]:
    """(test, model, call) for each call that measures the model's speed."""
    for test in report["tests"]:
        for call in test.get("calls") or ():
            if (
                call.get("purpose", "call") == "call"
                and call.get("outcome", "ok") == "ok"
                and not call.get("cache_hit")
            ):
                yield str(test["nodeid"]), str(call["model"]), call


def _grouped(report: Mapping[str, Any], by: str, metric: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for test, model, call in samples(report):
        value = call.get(metric)
        if value is not None:
            out.setdefault(model if by == "model" else test, []).append(float(value))
    return out


def compare(
    base: Mapping[str, Any],
    current: Mapping[str, Any],
    *,
    threshold: float = THRESHOLD,
    alpha: float = ALPHA,
    baseline: str | None = None,
) -> Comparison:
    """Compare ``current`` with ``base`` per model and per test, on every metric."""
    out = Comparison(threshold, alpha, baseline=baseline)
    for scope in ("model", "test"):
        for metric in METRICS:
            before, after = _grouped(base, scope, metric), _grouped(current, scope, metric)
            for name in sorted(before.keys() | after.keys()):
                finding = _judge(
                    scope, name, metric, before.get(name), after.get(name), threshold, alpha
                )
                if finding.status == REGRESSION and scope == "model":
                    finding = _with_tests(finding, base, current, threshold)
                out.findings.append(finding)
    return out


def _judge(
    scope: str,
    name: str,
    metric: str,
    before: Sequence[float] | None,
    after: Sequence[float] | None,
    threshold: float,
    alpha: float,
) -> Finding:
    if not before or not after:
        status = NEW if after else GONE
        side = Side.of(after or before or [0.0])
        return Finding(
            scope, name, metric, status, None if after else side, side if after else None
        )
    b, c = Side.of(before), Side.of(after)
    median_change = _change(b.p50, c.p50)
    p95_change = _change(b.p95, c.p95) if min(b.n, c.n) >= P95_SAMPLES else None
    if smallest_p(c.n, b.n) >= alpha:
        return Finding(scope, name, metric, TOO_FEW, b, c, median_change, p95_change)
    grew = [x for x in (median_change, p95_change) if x is not None] or [0.0]
    slower = mann_whitney_greater(after, before)
    faster = mann_whitney_greater(before, after)
    status = UNCHANGED
    if max(grew) > threshold and slower < alpha:
        status = REGRESSION
    elif min(grew) < -threshold and faster < alpha:
        status = IMPROVEMENT
    p_value = faster if status == IMPROVEMENT else slower
    return Finding(scope, name, metric, status, b, c, median_change, p95_change, p_value)


def _change(before: float, after: float) -> float | None:
    """``after / before - 1``; None when ``before`` is not above 0 (no ratio to speak of)."""
    return after / before - 1 if before > 0 else None


def _with_tests(
    finding: Finding, base: Mapping[str, Any], current: Mapping[str, Any], threshold: float
) -> Finding:
    """The regressed model's finding, naming the tests whose calls to it grew the most."""

    def per_test(report: Mapping[str, Any]) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for test, model, call in samples(report):
            value = call.get(finding.metric)
            if model == finding.name and value is not None:
                out.setdefault(test, []).append(float(value))
        return out

    before, after = per_test(base), per_test(current)
    grown = []
    for test in before.keys() & after.keys():
        change = _change(quantile(before[test], 0.5), quantile(after[test], 0.5))
        if change is not None and change > threshold:
            grown.append((change, test))
    tests = tuple(test for _, test in sorted(grown, key=lambda item: (-item[0], item[1])))
    return Finding(
        finding.scope,
        finding.name,
        finding.metric,
        finding.status,
        finding.base,
        finding.current,
        finding.median_change,
        finding.p95_change,
        finding.p_value,
        tests,
    )


# --- the output ---------------------------------------------------------------------------

_NAMES = 5  # tests named per regressed model in the table


def _percent(change: float | None) -> str:
    if change is None:
        return "-"
    return f"{change * 100:+.1f}%"


def _row(finding: Finding) -> list[str]:
    b, c = finding.base, finding.current
    return [
        finding.status,
        finding.scope,
        finding.name,
        finding.metric.removesuffix("_s"),
        f"{b.p50:.3f}" if b else "-",
        f"{c.p50:.3f}" if c else "-",
        _percent(finding.median_change),
        _percent(finding.p95_change),
        f"{finding.p_value:.2g}" if finding.p_value is not None else "-",
        f"{b.n if b else 0}/{c.n if c else 0}",
    ]


_HEADER = ["status", "scope", "name", "metric", "base p50", "now p50", "median", "p95", "p", "n"]


def _shown(comparison: Comparison, everything: bool) -> list[Finding]:
    if everything:
        return comparison.findings
    return [f for f in comparison.findings if f.status in (REGRESSION, IMPROVEMENT)]


def verdict_line(comparison: Comparison) -> str:
    regressions = comparison.regressions
    rule = (
        f"median or p95 beyond {comparison.threshold * 100:g}% and Mann-Whitney "
        f"p < {comparison.alpha:g}"
    )
    if not regressions:
        return f"no LLM latency regression against the baseline ({rule})"
    models = sorted({f.name for f in regressions if f.scope == "model"})
    tests = sorted({f.name for f in regressions if f.scope == "test"})
    named = {t for f in regressions for t in f.tests}
    parts = []
    if models:
        parts.append(f"model{'s' if len(models) > 1 else ''} {', '.join(models)}")
    if tests:
        parts.append(f"{len(tests)} test{'s' if len(tests) > 1 else ''}")
    return (
        f"LLM latency regression against the baseline in {' and '.join(parts)} ({rule}); "
        f"{len(named | set(tests))} tests affected"
    )


def table(comparison: Comparison, *, everything: bool = False) -> list[str]:
    """The comparison for a terminal: the verdict, then the findings that moved."""
    rows = [_row(f) for f in _shown(comparison, everything)]
    lines = [verdict_line(comparison)]
    if rows:
        widths = [max(len(r[i]) for r in [_HEADER, *rows]) for i in range(len(_HEADER))]
        for row in [_HEADER, *rows]:
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            lines.append("  ".join(cells).rstrip())
    for finding in comparison.regressions:
        if finding.tests:
            shown = ", ".join(finding.tests[:_NAMES])
            more = len(finding.tests) - _NAMES
            lines.append(
                f"{finding.name} ({finding.metric}) grew in: {shown}"
                + (f" and {more} more" if more > 0 else "")
            )
    return lines


def markdown(comparison: Comparison, *, everything: bool = False) -> str:
    """The comparison as Markdown, for a CI job summary."""
    icon = ":x:" if comparison.regressions else ":white_check_mark:"
    out = [f"### {icon} pytest-llmperf: {verdict_line(comparison)}", ""]
    shown = _shown(comparison, everything)
    if shown:
        out.append("| " + " | ".join(_HEADER) + " |")
        out.append("|" + "---|" * len(_HEADER))
        for finding in shown:
            cells = [cell.replace("|", "\\|") for cell in _row(finding)]
            cells[2] = f"`{cells[2]}`"
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    for finding in comparison.regressions:
        if finding.tests:
            out.append(f"**{finding.name}** ({finding.metric}) grew in:")
            out.extend(f"- `{test}`" for test in finding.tests)
            out.append("")
    return "\n".join(out)


def write_outputs(
    comparison: Comparison,
    *,
    markdown_path: Path | None = None,
    json_path: Path | None = None,
    everything: bool = False,
) -> None:
    """Write the Markdown and JSON forms where asked; an unwritable path says which and why."""
    for path, text in (
        (markdown_path, markdown(comparison, everything=everything)),
        (json_path, json.dumps(comparison.to_dict(), indent=1)),
    ):
        if path is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"cannot write the comparison to {path}: {exc.strerror or exc}; choose a "
                "writable path"
            ) from None
