"""pytest-html's results table, with each test's LLM calls and budget verdict."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

pytest.importorskip("pytest_html", reason="pytest-html is not installed")

FAST = ["--llm-emulator-time-scale", "0.02", "-p", "no:cacheprovider"]

SUITE = """
import pytest

def test_two_calls(ollama_client):
    ollama_client.generate(tier="fast", prompt="one")
    ollama_client.generate(tier="balanced", prompt="two")

@pytest.mark.llm_budget(total=1e-6)
def test_over_budget(ollama_client):
    ollama_client.generate(tier="fast", prompt="slow")

def test_no_llm():
    pass
"""


def rows(page: Path) -> dict[str, list[str]]:
    """Each test's cells in pytest-html's table (its data, as the page's script reads it)."""
    blob = re.search(r'data-jsonblob="(.*?)"', page.read_text(encoding="utf-8"))
    assert blob is not None
    data = json.loads(html.unescape(blob.group(1)))
    return {nodeid: runs[-1]["resultsTableRow"] for nodeid, runs in data["tests"].items()}


def header(page: Path) -> list[str]:
    return re.findall(r"<th[^>]*>([^<]*)</th>", page.read_text(encoding="utf-8"))


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_each_row_gets_its_calls_and_verdict(pytester: pytest.Pytester, workers: list[str]) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--html", "page.html", *FAST, *workers)
    result.assert_outcomes(passed=2, failed=1)
    page = pytester.path / "page.html"
    assert header(page)[:6] == ["Result", "Test", "Duration", "LLM calls", "LLM budget", "Links"]
    found = rows(page)
    two = found["test_suite.py::test_two_calls"]
    assert re.fullmatch(
        r'<td class="col-llm-calls">2 calls, \d+\.\d{3} s<br>llama3\.2:1b, llama3\.2:3b</td>',
        two[3],
    )
    assert two[4] == '<td class="col-llm-budget">no budget exceeded</td>'
    over = found["test_suite.py::test_over_budget"]
    assert over[3].startswith('<td class="col-llm-calls">1 call, ')
    assert re.fullmatch(
        r'<td class="col-llm-budget" style="color:#c00"><b>over budget \(1\)</b><br>'
        r"call 1 of 1 \(/api/generate, llama3\.2:1b, tier fast\): total \S+ s &gt; budget 1e-06 s</td>",
        over[4],
    )
    quiet = found["test_suite.py::test_no_llm"]
    assert quiet[3:5] == ['<td class="col-llm-calls"></td>', '<td class="col-llm-budget"></td>']
    assert all(len(cells) == 6 for cells in found.values())


def test_without_html_output_our_columns_stay_out(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
def pytest_sessionfinish(session):
    assert not session.config.pluginmanager.hasplugin("llmperf-html")
"""
    )
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest(*FAST).assert_outcomes(passed=2, failed=1)
