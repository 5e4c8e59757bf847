"""pytest-html's results table, with two columns of ours: each test's LLM calls and its budget
verdict.

The plugin registers :class:`LLMColumns` on the controller of a run that writes a pytest-html
report (``--html PATH``). pytest-html builds a test's rows when the test's teardown report
comes in; by then this plugin has read every report of the test, since it reads them first:
the calls travel on the teardown report, the verdict on the call report (as the validation
report reads them, and from pytest-xdist's workers alike).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_llmperf.report.document import Collector, TestEntry

NAME = "llmperf-html"
HEADER = ("LLM calls", "LLM budget")
PYTEST_HTML = ("html", "pytest_html.plugin")  # its entry point's name, or as `-p` loads it


def register(config: pytest.Config) -> None:
    """Add our columns to pytest-html's table, in a run that writes one."""
    manager = config.pluginmanager
    loaded = any(manager.hasplugin(name) for name in PYTEST_HTML)
    if loaded and config.getoption("htmlpath", None) and not manager.hasplugin(NAME):
        manager.register(LLMColumns(), NAME)


class LLMColumns:
    """Reads each test's reports, and writes its calls and verdict into its rows."""

    def __init__(self) -> None:
        from pytest_llmperf.report.document import Collector

        self.tests: Collector = Collector()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.tests.add(report.nodeid, report.when, report.outcome, report.duration, report)

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        at = _position(cells)
        cells[at:at] = [f"<th>{name}</th>" for name in HEADER]

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(
        self, report: pytest.TestReport | pytest.CollectReport, cells: list[str]
    ) -> None:
        entry = self.tests.tests.get(report.nodeid)
        at = _position(cells)
        cells[at:at] = [calls_cell(entry), verdict_cell(entry)]


def _position(cells: list[str]) -> int:
    """Before pytest-html's last column (its links), or at the end of a shorter table."""
    return max(len(cells) - 1, 0)


def calls_cell(entry: TestEntry | None) -> str:
    """How many calls, their time, to which models; how many were cache hits or failed."""
    if entry is None or not entry.calls:
        return '<td class="col-llm-calls"></td>'
    calls = entry.calls
    seconds = sum(float(call["total_s"]) for call in calls)
    models: dict[str, int] = {}
    for call in calls:
        models[str(call["model"])] = models.get(str(call["model"]), 0) + 1
    named = ", ".join(f"{m} ({n})" if n > 1 else m for m, n in sorted(models.items()))
    more = [
        f"{count} {what}"
        for count, what in (
            (sum(1 for c in calls if c.get("cache_hit")), "cache hits"),
            (sum(1 for c in calls if c.get("outcome", "ok") != "ok"), "failed"),
        )
        if count
    ]
    text = f"{len(calls)} call{'' if len(calls) == 1 else 's'}, {seconds:.3f} s"
    if more:
        text += f" ({', '.join(more)})"
    return f'<td class="col-llm-calls">{html.escape(text)}<br>{html.escape(named)}</td>'


def verdict_cell(entry: TestEntry | None) -> str:
    """Each budget the test went over, in red; else whether it had calls to judge."""
    if entry is None or not (entry.calls or entry.violations):
        return '<td class="col-llm-budget"></td>'
    if not entry.violations:
        return '<td class="col-llm-budget">no budget exceeded</td>'
    lines = "<br>".join(html.escape(str(v.get("message", v))) for v in entry.violations)
    count = len(entry.violations)
    return (
        '<td class="col-llm-budget" style="color:#c00">'
        f"<b>over budget ({count})</b><br>{lines}</td>"
    )
