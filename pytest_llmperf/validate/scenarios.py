"""The report's ``scenarios`` section, its ``optimizations`` table and the one-screen summary.

Each scenario is a test of the bundled suite; its group is its module (``test_performance``
→ ``performance``), its title its docstring's first line. A scenario's outcome is pytest's,
with expected failures told apart: ``xfailed`` (failed, as expected) and ``xpassed``.
A group's rate counts every scenario that ran (not the skipped ones): an expected failure
counts as not passed there, and as no failure in the exit status.

The tests hand what they measured to the report through their ``user_properties``
(:data:`MEASURED` and :data:`OPTIMIZATION` entries), which travel on pytest's reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MEASURED = "llmperf.validate.measured"  # a user property: {name: figure} the test measured
OPTIMIZATION = "llmperf.validate.optimization"  # a user property: one optimization's row
GROUPS = ("architecture", "functionality", "performance")
FAILED = frozenset({"failed", "error", "xpassed"})


@dataclass
class Scenario:
    """One scenario as the run saw it."""

    nodeid: str
    group: str
    title: str
    outcome: str = "passed"
    duration_s: float = 0.0
    message: str | None = None
    budget: dict[str, Any] | None = None
    evidence: bool = True  # its calls count as evidence for the recommendations
    measured: dict[str, Any] = field(default_factory=dict)
    optimizations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def required(self) -> bool:
        """It must pass: it ran, and was not expected to fail."""
        return self.outcome not in ("skipped", "xfailed")

    @property
    def failed(self) -> bool:
        return self.outcome in FAILED

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _REPORTED}


# What the report says of a scenario, in this order (its optimizations have their own table).
_REPORTED = (
    "nodeid",
    "group",
    "title",
    "outcome",
    "required",
    "duration_s",
    "message",
    "budget",
    "evidence",
    "measured",
)


def group_of(module: str) -> str:
    """``test_performance.py`` (or a node id in it) → ``performance``."""
    name = Path(module.split("::")[0]).stem
    return name.removeprefix("test_")


def title_of(doc: str | None, fallback: str) -> str:
    lines = (doc or "").strip().splitlines()
    return lines[0].strip().rstrip(".") if lines else fallback


def outcome(when: str, passed: bool, skipped: bool, failed: bool, xfail: bool) -> str | None:
    """A report's word on its scenario, or None when it adds nothing (a passed teardown)."""
    if when == "call":
        if xfail:
            return "xfailed" if skipped else "xpassed"
        return "passed" if passed else "skipped" if skipped else "failed"
    if skipped:
        return "skipped"
    if failed:
        return "error"
    return None


def merge(current: str, new: str) -> str:
    """A scenario's outcome after another phase's: an error wins, a skipped setup stays."""
    if "error" in (current, new):
        return "error"
    return current if current == "skipped" else new


def groups(items: Sequence[Scenario]) -> list[dict[str, Any]]:
    """Per group, in :data:`GROUPS` order: what passed, failed, was expected to fail, skipped."""
    names = [g for g in GROUPS if any(s.group == g for s in items)]
    names += sorted({s.group for s in items} - set(GROUPS))
    out = []
    for name in names:
        mine = [s for s in items if s.group == name]
        ran = [s for s in mine if s.outcome != "skipped"]
        passed = sum(1 for s in ran if s.outcome == "passed")
        out.append(
            {
                "name": name,
                "scenarios": len(mine),
                "ran": len(ran),
                "passed": passed,
                "failed": sum(1 for s in ran if s.failed),
                "expected_failures": sum(1 for s in ran if s.outcome == "xfailed"),
                "skipped": len(mine) - len(ran),
                "success_rate": passed / len(ran) if ran else None,
                "success": f"{round(100 * passed / len(ran))}% ({passed}/{len(ran)})"
                if ran
                else "none ran",
                "ok": not any(s.failed for s in ran),
            }
        )
    return out


def section(target: Mapping[str, Any], items: Sequence[Scenario]) -> dict[str, Any]:
    """The report's ``scenarios`` section."""
    return {
        "target": dict(target),
        "groups": groups(items),
        "items": [s.to_dict() for s in items],
        "ok": not any(s.failed for s in items),
    }


def optimizations(items: Iterable[Scenario]) -> list[dict[str, Any]]:
    """The optimization table, in the order the scenarios ran: each row's before and after
    (seconds, measured), its improvement (before / after) and the scenario that measured it."""
    rows = []
    for scenario in items:
        if scenario.outcome != "passed":
            continue  # a scenario that failed measured nothing to stand on
        for row in scenario.optimizations:
            before, after = float(row["before_s"]), float(row["after_s"])
            rows.append(
                {
                    **row,
                    "before_s": before,
                    "after_s": after,
                    "improvement": before / after if after > 0 else None,
                    "saved_s": before - after,
                    "scenario": scenario.nodeid,
                }
            )
    return rows


def tests_named(evidence: Any) -> set[str]:
    """Every node id a recommendation's evidence names (``tests``, ``nodeid``), at any depth."""
    found: set[str] = set()
    if isinstance(evidence, Mapping):
        for key, value in evidence.items():
            if key == "nodeid" and isinstance(value, str):
                found.add(value)
            elif key == "tests" and isinstance(value, list):
                found.update(v for v in value if isinstance(v, str))
                found.update(*(tests_named(v) for v in value if not isinstance(v, str)))
            else:
                found |= tests_named(value)
    elif isinstance(evidence, list):
        for value in evidence:
            found |= tests_named(value)
    return found


def with_scenarios(
    recommendations: Iterable[Mapping[str, Any]], items: Sequence[Scenario]
) -> list[dict[str, Any]]:
    """Each recommendation with the scenarios its evidence came from (``scenarios``)."""
    known = {s.nodeid for s in items}
    return [
        {**item, "scenarios": sorted(tests_named(item.get("evidence")) & known)}
        for item in recommendations
    ]


def summary_lines(report: Mapping[str, Any], files: Mapping[str, Path]) -> list[str]:
    """The one-screen summary: the groups, what failed and why, the optimizations, the top
    recommendations, and where the files are."""
    scenarios = report.get("scenarios") or {}
    recommendations = report.get("recommendations") or []
    parts = []
    for group in scenarios.get("groups") or ():
        text = f"{group['name']} {group['success']}"
        if group["expected_failures"]:
            text += f" ({group['expected_failures']} expected to fail)"
        parts.append(text)
    lines = ["  ".join([*parts, f"{len(recommendations)} recommendations"])]
    for item in scenarios.get("items") or ():
        if item["outcome"] in FAILED:
            message = (item.get("message") or "").strip().splitlines()
            lines.append(
                f"  FAILED {item['group']}: {item['title']}"
                + (f": {message[0]}" if message else "")
            )
    for row in report.get("optimizations") or ():
        gain = row.get("improvement")
        lines.append(
            f"  {row['optimization']:<40} {row['before_s']:>8.3f} s -> {row['after_s']:>8.3f} s"
            + (f"  {_times(gain)}" if isinstance(gain, (int, float)) else "")
        )
    for item in recommendations[:3]:
        lines.append(f"  {item['severity']}: {_shorten(item['message'])} [{item['id']}]")
    if len(recommendations) > 3:
        lines.append(f"  ... {len(recommendations) - 3} more in the recommendations file")
    width = max(len(name) for name in files) if files else 0
    for name, path in files.items():
        lines.append(f"{name + ':':<{width + 1}} {path}")
    return lines


def _times(factor: float) -> str:
    return f"{factor:,.0f}x" if factor >= 100 else f"{factor:.3g}x"


def _shorten(text: str, most: int = 150) -> str:
    return text if len(text) <= most else text[: most - 3].rstrip() + "..."
