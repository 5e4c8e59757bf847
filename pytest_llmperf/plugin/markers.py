"""The plugin's markers: their names, their help lines, and the check of their arguments.

Kept light (the plugin loads without its heavy parts): the checks import what they need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_llmperf.judge.budget import Budget

SETTINGS = "llm_settings"
BUDGET = "llm_budget"
CASSETTE = "llm_cassette"
UNMEASURED = "llm_unmeasured"
NAMES = frozenset({SETTINGS, BUDGET, CASSETTE, UNMEASURED})

HELP = {
    SETTINGS: "(**fields): override pytest-llmperf settings (cache, tiers, hosts, timeouts, "
    "fallback, ...) for this test",
    BUDGET: "(*, total=None, ttft=None, tokens_per_s=None, calls=None, tokens=None, wall=None, "
    "p50=None, p95=None, p99=None, runs=None, mode=None): fail this test when its LLM calls "
    "go past these limits (seconds, tokens/s, counts); runs=N runs it N times",
    CASSETTE: "(name=None, *, record_mode=None, timing=None): record this test's LLM traffic "
    "to a cassette, or replay it from one",
    UNMEASURED: ": leave this test's LLM calls out of the records, budgets and report",
}


def register(config: pytest.Config) -> None:
    for name, text in HELP.items():
        config.addinivalue_line("markers", name + text)


def on(node: pytest.Item) -> set[str]:
    """The names of our markers on ``node`` or a node above it (usually none: a quick look)."""
    return {
        mark.name
        for parent in node.iter_parents()
        for mark in parent.own_markers
        if mark.name in NAMES
    }


def budget(node: pytest.Item) -> Budget:
    """The test's budget: its ``llm_budget`` markers merged, the closest one winning."""
    from pytest_llmperf.judge.budget import Budget

    merged = Budget()
    for marker in reversed(list(node.iter_markers(BUDGET))):
        merged = Budget.from_marker(marker.args, marker.kwargs, node.nodeid).over(merged)
    return merged


def runs(node: pytest.Item) -> int:
    """How many times ``llm_budget(runs=N)`` runs the test (1 without it)."""
    if node.get_closest_marker(BUDGET) is None:
        return 1
    return budget(node).runs or 1


def _check_settings(marker: pytest.Mark, where: str) -> None:
    from pytest_llmperf.plugin import settings

    if marker.args:
        raise ValueError(f"{where}: give settings as keywords, e.g. cache='off'")
    settings.with_marker(settings.Settings(), marker.kwargs, where)


def _check_budget(marker: pytest.Mark, where: str) -> None:
    from pytest_llmperf.judge.budget import Budget

    Budget.from_marker(marker.args, marker.kwargs, where)


def _check_cassette(marker: pytest.Mark, where: str) -> None:
    from pytest_llmperf.plugin.cassettes import check_marker

    check_marker(marker, where)


_CHECKS: dict[str, Callable[[pytest.Mark, str], None]] = {
    SETTINGS: _check_settings,
    BUDGET: _check_budget,
    CASSETTE: _check_cassette,
}


def problem(item: pytest.Item) -> str | None:
    """What is wrong with our markers on ``item``, if anything: checked at collection, and
    reported as that test's failure (the other tests run)."""
    for marker in item.iter_markers():
        check = _CHECKS.get(marker.name)
        if check is None:
            continue
        try:
            check(marker, f"marker {marker.name} on {item.nodeid}")
        except ValueError as exc:
            return str(exc)
    count = runs(item)
    if count > 1:
        from pytest_llmperf.judge.budget import cannot_repeat

        cassette = item.get_closest_marker(CASSETTE) is not None
        found = cannot_repeat(count, getattr(item, "fixturenames", ()), cassette)
        if found:
            return f"marker {BUDGET} on {item.nodeid}: {found}"
    return None
