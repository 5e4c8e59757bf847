"""The HTML page of a validation report: every part, from the report alone, offline."""

from __future__ import annotations

import re

import pytest
from html_sample import call, sample

from pytest_llmperf.report import html as html_report

pytest.importorskip("plotly", reason="the html extra (plotly) is not installed")

PLOTS = ["plot-latency", "plot-ttft-total", "plot-cold-warm", "plot-budgets"]


def plot_ids(page: str) -> list[str]:
    return re.findall(r'<div id="(plot-[a-z-]+)" class="plotly-graph-div"', page)


def test_the_page_has_every_part_and_needs_no_network() -> None:
    page = html_report.render(sample())
    for section in (
        "summary",
        "models",
        "latency",
        "cold-warm",
        "budgets",
        "recommendations",
        "session",
        "optimizations",
        "tests",
        "run",
    ):
        assert f'<section id="{section}">' in page, section
    assert plot_ids(page) == [*PLOTS, "plot-optimizations"]
    # plotly.js once, inline; nothing fetched from anywhere
    assert page.count("plotly.js v") == 1
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)


def test_without_session_calls_or_optimizations_their_sections_are_left_out() -> None:
    page = html_report.render(sample(session=False, optimizations=False))
    assert '<section id="session">' not in page
    assert '<section id="optimizations">' not in page
    assert plot_ids(page) == PLOTS


def test_a_run_without_calls_says_so_and_carries_no_plotly() -> None:
    data = sample(session=False, optimizations=False)
    for test in data["tests"]:
        test["calls"], test["violations"] = [], []
    data["models"], data["recommendations"] = {}, []
    page = html_report.render(data)
    assert "No LLM call got an answer in this run" in page
    assert "No LLM calls in this run." in page
    assert plot_ids(page) == []
    assert "plotly.js v" not in page


def test_what_the_tables_say() -> None:
    page = html_report.render(sample())
    # the violations, with their figures in their units, on highlighted rows
    assert '<tr class="bad"><td><code>tests/app/test_story.py::test_over_budget</code>' in page
    assert "2.400 s" in page and "1.500 s" in page
    # the recommendations, with their evidence
    assert '<span class="badge">warning</span> <code>cold-load</code>' in page
    assert "<th>load_s</th>" in page
    # the session's calls, and the optimizations as llmperf validate gives them
    assert "2 LLM calls made outside any test" in page
    assert "<td>response cache</td>" in page and "6.1x faster" in page
    assert '<td class="num">0.998</td>' in page


def test_text_from_the_report_is_escaped() -> None:
    page = html_report.render(sample())
    assert "test_answer[&lt;b&gt;bold&lt;/b&gt;]" in page
    assert "<b>bold</b>" not in page


@pytest.mark.parametrize(
    ("load", "cache", "state"),
    [
        (1.0, "miss", "cold"),
        (html_report.COLD_LOAD_S * 1.01, "off", "cold"),
        (html_report.COLD_LOAD_S, "miss", "warm"),
        (None, "bypass", "warm"),
        (1.0, "hit-redis", "cache hit"),  # its stored answer's load time: nothing loaded now
    ],
)
def test_a_call_is_cold_when_the_server_loaded_the_model(
    load: float | None, cache: str, state: str
) -> None:
    data = {"tests": [{"nodeid": "t", "calls": [call("m", 0.5, load=load, cache=cache)]}]}
    (found,) = html_report.calls(data)
    assert found.state == state


def test_the_charts_draw_the_code_under_test_s_calls_inside_and_outside_tests() -> None:
    found = html_report.calls(sample())
    assert len(found) == 7  # the session's warm-up is left out
    assert [c.test for c in found if c.test == html_report.SESSION] == [html_report.SESSION]


def test_the_budget_chart_shows_the_tests_over_budget_first_then_the_slowest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows, with_calls = html_report.budget_rows(sample())
    assert [r.label for r in rows] == [
        "test_story.py::test_over_budget",
        "test_story.py::test_cold_then_warm",
        "test_chat.py::test_answer[<b>bold</b>]",
    ]
    assert rows[0].slowest == 2.4  # the failed call is not drawn
    monkeypatch.setattr(html_report, "MAX_BUDGET_ROWS", 2)
    rows, with_calls = html_report.budget_rows(sample())
    assert (len(rows), with_calls) == (2, 3)
    assert "(2 of 3 tests shown)" in html_report.render(sample())


@pytest.mark.parametrize(
    ("nodeids", "short"),
    [
        (["a/b/t.py::x", "a/b/u.py::y"], ["t.py::x", "u.py::y"]),
        (["a/b/t.py::x", "a/c/t.py::x"], ["b/t.py::x", "c/t.py::x"]),
        (["t.py::x", "a/t.py::x"], ["t.py::x", "a/t.py::x"]),
        (["a/t.py::x[1/2]"], ["t.py::x[1/2]"]),
    ],
)
def test_test_names_lose_the_folders_they_all_share(nodeids: list[str], short: list[str]) -> None:
    assert list(html_report.short_names(nodeids).values()) == short
