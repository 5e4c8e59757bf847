"""Regression gating: a run's report against a baseline's, per model and per test.

A regression needs two things at once:

* **size**: the median, or the p95, of a metric grew by more than ``threshold`` (10% by
  default). The metrics are a call's total time and, for streamed calls, its time to first
  token (a whole answer's first token comes with its last). The p95 counts only when both
  sides have at least :data:`P95_SAMPLES` calls; with fewer it is close to the maximum;
* **evidence**: a one-sided Mann-Whitney U test on the raw samples says the current calls are
  slower, with its p-value, adjusted by Holm's method for the number of comparisons made in
  the same scope (models, or tests), below ``alpha`` (0.01 by default).

A model is compared over the tests that both runs have, so adding, removing or deselecting
tests does not pass for a change of speed; tests found on one side only are listed as new or
gone. A group with too few calls for the test ever to reach ``alpha`` is shown, never gated.
Cache hits, failed calls, warm-ups and unloads are left out of the samples: they measure
something else. Both runs should come from comparable machines: a machine busy enough to
slow every call by more than the threshold looks like a regression, because it is one.
Absolute limits are :mod:`pytest_llmperf.judge.budget`'s business, not this module's.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_llmperf.errors import ConfigurationError
from pytest_llmperf.stats import quantile

# The version of the report schema this code writes (report/) and reads (the gate).
SCHEMA_VERSION = 1
THRESHOLD = 0.10
ALPHA = 0.01
P95_SAMPLES = 20
METRICS = ("total_s", "ttft_s")
_EXACT_LIMIT = 400  # n1 * n2 up to which the U distribution is counted exactly (no ties)
_ENUMERATE_LIMIT = 20_000  # splits enumerated for an exact p-value when there are ties

REGRESSION = "regression"
IMPROVEMENT = "improvement"
UNCHANGED = "unchanged"
TOO_FEW = "too few calls"
NEW = "new"
GONE = "gone"


def parse_threshold(value: str) -> float:
    """A relative change, written ``10%`` (up to 1000%) or ``0.1`` (up to 1)."""
    text = value.strip()
    percent = text.endswith("%")
    try:
        number = float(text[:-1]) / 100 if percent else float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a relative change; write 10% or 0.1") from None
    if not percent and number > 1:
        raise ValueError(
            f"{value} as a fraction is {number * 100:g}%: write {text}% if you mean that "
            "percentage, or a fraction up to 1 (0.1 for 10%)"
        )
    if not 0 < number <= 10:
        raise ValueError(f"must be above 0 and at most 1000% (10% or 0.1), got {value}")
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


# --- reading a report ---------------------------------------------------------------------


def load(path: Path, role: str) -> dict[str, Any]:
    """A report read back from ``path``; anything unreadable is a ConfigurationError."""
    fix = f"make one with `pytest --llm-report {path}`"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"the {role} report {path} does not exist: {fix}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"the {role} report {path} is not text (UTF-8); {fix}") from None
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the {role} report {path}: {exc.strerror or exc}"
        ) from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        where = (
            f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
            if isinstance(exc, json.JSONDecodeError)
            else str(exc)
        )
        raise ConfigurationError(f"the {role} report {path} is not JSON ({where}); {fix}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
        raise ConfigurationError(
            f"the {role} report {path} is not a pytest-llmperf validation report (it has no "
            f"'tests' list); {fix}"
        )
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ConfigurationError(
            f"the {role} report {path} has schema_version {data.get('schema_version')!r}; this "
            f"version of pytest-llmperf reads version {SCHEMA_VERSION}"
        )
    problem = _shape_problem(data["tests"])
    if problem:
        raise ConfigurationError(f"the {role} report {path} is damaged: {problem}; {fix}")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _shape_problem(tests: list[Any]) -> str | None:
    """What is wrong with the fields the comparison reads, or None."""
    for index, test in enumerate(tests):
        if not isinstance(test, dict) or not isinstance(test.get("nodeid"), str):
            return f"tests[{index}] has no 'nodeid' string"
        calls = test.get("calls", [])
        if not isinstance(calls, list):
            return f"tests[{index}] ({test['nodeid']}): 'calls' is not a list"
        for number, call in enumerate(calls):
            where = f"tests[{index}].calls[{number}] ({test['nodeid']})"
            if not isinstance(call, dict) or not isinstance(call.get("model"), str):
                return f"{where} has no 'model' string"
            for metric in METRICS:
                value = call.get(metric)
                finite = isinstance(value, (int, float)) and not isinstance(value, bool)
                if (value is not None or metric == "total_s") and not finite:
                    return f"{where}: {metric} is {value!r}, not a number of seconds"
    return None


# --- the statistics -----------------------------------------------------------------------


def _ranks(current: Sequence[float], base: Sequence[float]) -> tuple[list[float], float]:
    """Mid-ranks of the pooled values, ``current``'s first; and the tie term sum(t^3 - t)."""
    pooled = sorted((value, i) for i, value in enumerate([*current, *base]))
    ranks = [0.0] * len(pooled)
    tie_term = 0.0
    start = 0
    while start < len(pooled):
        end = start
        while end + 1 < len(pooled) and pooled[end + 1][0] == pooled[start][0]:
            end += 1
        for position in range(start, end + 1):
            ranks[pooled[position][1]] = (start + end) / 2 + 1
        size = end - start + 1
        tie_term += size**3 - size
        start = end + 1
    return ranks, tie_term


def mann_whitney_greater(current: Sequence[float], base: Sequence[float]) -> float:
    """One-sided p-value that ``current`` tends to be larger than ``base`` (Mann-Whitney U).

    Exact for small samples: counted over every arrangement when there are no ties, or over
    every split of the tied ranks when there are; otherwise the normal approximation with
    the tie correction and a continuity correction.
    """
    n1, n2 = len(current), len(base)
    if not n1 or not n2:
        raise ValueError("both samples need at least one value")
    ranks, tie_term = _ranks(current, base)
    rank_sum = sum(ranks[:n1])
    u = rank_sum - n1 * (n1 + 1) / 2  # pairs where current > base, ties counting one half
    splits = math.comb(n1 + n2, n1)
    if tie_term == 0 and n1 * n2 <= _EXACT_LIMIT:
        counts = _u_distribution(n1, n2)
        return sum(counts[round(u) :]) / splits
    if splits <= _ENUMERATE_LIMIT:
        at_least = sum(
            1 for chosen in itertools.combinations(ranks, n1) if sum(chosen) >= rank_sum - 1e-9
        )
        return at_least / splits
    n = n1 + n2
    mean = n1 * n2 / 2
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0:  # every value equal: no evidence either way
        return 1.0
    z = (u - mean - 0.5) / math.sqrt(variance)
    return min(1.0, 0.5 * math.erfc(z / math.sqrt(2)))


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


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` for testing them all at once."""
    m = len(p_values)
    order = sorted(range(m), key=p_values.__getitem__)
    adjusted = [1.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


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
    p_value: float | None = None  # Holm-adjusted, in the direction of the status
    p_raw: float | None = None  # before the adjustment
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
            "p_raw": self.p_raw,
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

    @property
    def compared(self) -> int:
        """How many groups had calls on both sides."""
        return sum(1 for f in self.findings if f.base is not None and f.current is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "regressions": len(self.regressions),
            "findings": [f.to_dict() for f in self.findings],
        }


Samples = dict[tuple[str, str, str], list[float]]  # (test, model, metric) -> seconds


def samples(report: Mapping[str, Any]) -> Samples:
    """Each test's calls to each model that measure its speed, per metric."""
    out: Samples = {}
    for test in report["tests"]:
        for call in test.get("calls") or ():
            if (
                call.get("purpose", "call") != "call"
                or call.get("outcome", "ok") != "ok"
                or call.get("cache_hit")
            ):
                continue
            for metric in METRICS:
                value = call.get(metric)
                if value is None or (metric == "ttft_s" and not call.get("stream")):
                    continue
                out.setdefault((test["nodeid"], call["model"], metric), []).append(float(value))
    return out


def _grouped(
    found: Samples, scope: str, tests: set[str] | None
) -> dict[tuple[str, str], list[float]]:
    """(name, metric) -> values, where the name is the model or the test."""
    out: dict[tuple[str, str], list[float]] = {}
    for (test, model, metric), values in found.items():
        if tests is None or test in tests:
            out.setdefault((model if scope == "model" else test, metric), []).extend(values)
    return out


def compare(
    base: Mapping[str, Any],
    current: Mapping[str, Any],
    *,
    threshold: float = THRESHOLD,
    alpha: float = ALPHA,
    baseline: str | None = None,
) -> Comparison:
    """Compare ``current`` with ``base`` per model (over shared tests) and per test."""
    before, after = samples(base), samples(current)
    shared = {key[0] for key in before} & {key[0] for key in after}
    out = Comparison(threshold, alpha, baseline=baseline)
    for scope in ("model", "test"):
        within = shared if scope == "model" else None
        old, new = _grouped(before, scope, within), _grouped(after, scope, within)
        measured = [
            _measure(scope, name, metric, old.get((name, metric)), new.get((name, metric)), alpha)
            for name, metric in sorted(old.keys() | new.keys(), key=lambda k: (k[1], k[0]))
        ]
        findings = _decide(measured, threshold, alpha)
        if scope == "model":
            findings = [
                _with_tests(f, before, after, threshold) if f.status == REGRESSION else f
                for f in findings
            ]
        out.findings.extend(findings)
    return out


@dataclass(frozen=True)
class _Measured:
    finding: Finding
    slower: float | None = None  # raw one-sided p-values
    faster: float | None = None


def _measure(
    scope: str,
    name: str,
    metric: str,
    before: Sequence[float] | None,
    after: Sequence[float] | None,
    alpha: float,
) -> _Measured:
    if not before or not after:
        side = Side.of(after or before or [0.0])
        status = NEW if after else GONE
        return _Measured(
            Finding(scope, name, metric, status, None if after else side, side if after else None)
        )
    b, c = Side.of(before), Side.of(after)
    median_change = _change(b.p50, c.p50)
    p95_change = _change(b.p95, c.p95) if min(b.n, c.n) >= P95_SAMPLES else None
    finding = Finding(scope, name, metric, UNCHANGED, b, c, median_change, p95_change)
    if smallest_p(c.n, b.n) >= alpha:  # no result could ever be significant
        return _Measured(replace(finding, status=TOO_FEW))
    return _Measured(
        finding, mann_whitney_greater(after, before), mann_whitney_greater(before, after)
    )


def _decide(measured: list[_Measured], threshold: float, alpha: float) -> list[Finding]:
    """Statuses from size and Holm-adjusted evidence, over the comparisons of one scope."""
    tested = [m for m in measured if m.slower is not None and m.faster is not None]
    slower = holm([m.slower or 0.0 for m in tested])
    faster = holm([m.faster or 0.0 for m in tested])
    adjusted = {id(m): (s, f) for m, s, f in zip(tested, slower, faster, strict=True)}
    out = []
    for m in measured:
        finding = m.finding
        if id(m) not in adjusted:
            out.append(finding)
            continue
        p_slower, p_faster = adjusted[id(m)]
        grew = [x for x in (finding.median_change, finding.p95_change) if x is not None] or [0.0]
        if max(grew) > threshold and p_slower < alpha:
            finding = replace(finding, status=REGRESSION, p_value=p_slower, p_raw=m.slower)
        elif min(grew) < -threshold and p_faster < alpha:
            finding = replace(finding, status=IMPROVEMENT, p_value=p_faster, p_raw=m.faster)
        else:
            finding = replace(finding, p_value=p_slower, p_raw=m.slower)
        out.append(finding)
    return out


def _change(before: float, after: float) -> float | None:
    """``after / before - 1``; None when ``before`` is not above 0 (no ratio to speak of)."""
    return after / before - 1 if before > 0 else None


def _with_tests(finding: Finding, before: Samples, after: Samples, threshold: float) -> Finding:
    """The regressed model's finding, naming the tests whose calls to it grew the most."""
    grown = []
    for (test, model, metric), values in after.items():
        old = before.get((test, model, metric))
        if model != finding.name or metric != finding.metric or not old:
            continue
        change = _change(quantile(old, 0.5), quantile(values, 0.5))
        if change is not None and change > threshold:
            grown.append((change, test))
    tests = tuple(test for _, test in sorted(grown, key=lambda item: (-item[0], item[1])))
    return replace(finding, tests=tests)


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


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def verdict_line(comparison: Comparison) -> str:
    """One line: whether the run regressed, where, and under which rule."""
    regressions = comparison.regressions
    rule = (
        f"median or p95 beyond {comparison.threshold * 100:g}% and Mann-Whitney "
        f"p < {comparison.alpha:g}, Holm-adjusted"
    )
    if not comparison.compared:
        return "nothing to compare with the baseline: no test made measured LLM calls in both runs"
    if not regressions:
        return f"no LLM latency regression against the baseline ({rule})"
    models = sorted({f.name for f in regressions if f.scope == "model"})
    tests = sorted({f.name for f in regressions if f.scope == "test"})
    affected = {t for f in regressions for t in f.tests} | set(tests)
    parts = []
    if models:
        parts.append(f"model{'s' if len(models) > 1 else ''} {', '.join(models)}")
    if tests:
        parts.append(_plural(len(tests), "test"))
    line = f"LLM latency regression against the baseline in {' and '.join(parts)} ({rule})"
    if affected:
        line += f"; {_plural(len(affected), 'test')} affected"
    return line


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
    append_markdown: bool = False,
) -> None:
    """Write the Markdown and JSON forms where asked; an unwritable path says which and why.

    ``append_markdown`` adds to the Markdown file instead of replacing it, as GitHub's
    ``$GITHUB_STEP_SUMMARY`` expects.
    """
    for path, text, mode in (
        (
            markdown_path,
            markdown(comparison, everything=everything),
            "a" if append_markdown else "w",
        ),
        (json_path, json.dumps(comparison.to_dict(), indent=1, allow_nan=False), "w"),
    ):
        if path is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open(mode, encoding="utf-8") as out:
                out.write(text + "\n")
        except OSError as exc:
            raise ConfigurationError(
                f"cannot write the comparison to {path}: {exc.strerror or exc}; choose a "
                "writable path"
            ) from None
