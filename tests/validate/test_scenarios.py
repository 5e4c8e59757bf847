"""The scenarios section, the optimization table and the summary, from what the tests gave."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_llmperf.report import html as html_report
from pytest_llmperf.validate import scenarios as sc


def scenario(nodeid: str, outcome: str, **more: object) -> sc.Scenario:
    return sc.Scenario(nodeid, sc.group_of(nodeid), nodeid.split("::")[-1], outcome, **more)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("when", "passed", "skipped", "failed", "xfail", "expected"),
    [
        ("call", True, False, False, False, "passed"),
        ("call", False, False, True, False, "failed"),
        ("call", False, True, False, False, "skipped"),
        ("call", False, True, False, True, "xfailed"),
        ("call", True, False, False, True, "xpassed"),
        ("setup", False, True, False, False, "skipped"),
        ("setup", False, False, True, False, "error"),
        ("teardown", False, False, True, False, "error"),
        ("teardown", True, False, False, False, None),
    ],
)
def test_a_report_s_word_on_its_scenario(
    when: str, passed: bool, skipped: bool, failed: bool, xfail: bool, expected: str | None
) -> None:
    assert sc.outcome(when, passed, skipped, failed, xfail) == expected


def test_an_error_wins_and_a_skipped_setup_stays() -> None:
    assert sc.merge("passed", "error") == "error"
    assert sc.merge("error", "passed") == "error"
    assert sc.merge("skipped", "passed") == "skipped"
    assert sc.merge("passed", "xfailed") == "xfailed"


def test_groups_count_what_ran_and_an_expected_failure_is_no_failure() -> None:
    items = [
        scenario("test_architecture.py::a", "passed"),
        scenario("test_performance.py::b", "passed"),
        scenario("test_performance.py::c", "xfailed"),
        scenario("test_performance.py::d", "skipped"),
    ]
    architecture, performance = sc.groups(items)
    assert architecture["success"] == "100% (1/1)" and architecture["ok"]
    assert performance["success"] == "50% (1/2)" and performance["ok"]
    assert (performance["expected_failures"], performance["skipped"]) == (1, 1)
    assert sc.section({"kind": "url", "hosts": []}, items)["ok"] is True
    assert [s.required for s in items] == [True, True, False, False]


@pytest.mark.parametrize("bad", ["failed", "error", "xpassed"])
def test_a_failed_scenario_fails_its_group(bad: str) -> None:
    [group] = sc.groups([scenario("test_functionality.py::a", bad)])
    assert group["ok"] is False and group["failed"] == 1
    assert sc.section({}, [scenario("test_functionality.py::a", bad)])["ok"] is False


def test_the_optimization_table_takes_the_passed_scenarios_rows() -> None:
    row = {"optimization": "cache", "before_s": 0.5, "after_s": 0.01}
    items = [
        scenario("test_performance.py::ok", "passed", optimizations=[row]),
        scenario("test_performance.py::broken", "failed", optimizations=[row]),
    ]
    [only] = sc.optimizations(items)
    assert only["improvement"] == pytest.approx(50.0)
    assert only["saved_s"] == pytest.approx(0.49)
    assert only["scenario"] == "test_performance.py::ok"


def test_recommendations_name_the_scenarios_their_evidence_names() -> None:
    items = [
        scenario("test_performance.py::a", "passed"),
        scenario("test_performance.py::b", "passed"),
    ]
    found = sc.with_scenarios(
        [
            {"id": "x", "evidence": {"tests": ["test_performance.py::a", "elsewhere.py::c"]}},
            {"id": "y", "evidence": {"tests": [{"nodeid": "test_performance.py::b"}]}},
            {"id": "z", "evidence": {"calls": 20}},
        ],
        items,
    )
    assert [r["scenarios"] for r in found] == [
        ["test_performance.py::a"],
        ["test_performance.py::b"],
        [],
    ]


def test_the_summary_says_the_groups_the_failures_and_the_files() -> None:
    items = [
        scenario("test_architecture.py::a", "failed", message="pull it with `ollama pull x`\nmore"),
        scenario("test_performance.py::b", "xfailed"),
    ]
    report = {
        "scenarios": sc.section({}, items),
        "optimizations": [],
        "recommendations": [{"id": "r", "severity": "info", "message": "m"}],
    }
    lines = sc.summary_lines(report, {"report": Path("r.json")})
    assert lines[0] == (
        "architecture 0% (0/1)  performance 0% (0/1) (1 expected to fail)  1 recommendations"
    )
    assert "  FAILED architecture: a: pull it with `ollama pull x`" in lines
    assert lines[-1] == "report: r.json"


def test_the_page_shows_the_scenarios_only_when_the_report_has_them() -> None:
    assert html_report._scenarios(None) == ""
    items = [scenario("test_performance.py::b", "xfailed", message="expected to fail: <slow>")]
    part = html_report._scenarios(sc.section({"kind": "emulator", "hosts": ["h"]}, items))
    assert '<span class="outcome xfailed">xfailed</span>' in part
    assert "&lt;slow&gt;" in part and "1 expected to fail" in part
