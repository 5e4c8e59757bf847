"""The validation report: written by the controller, valid against its schema, xdist-safe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_llmperf.report.document import schema

FAST = ["--llm-emulator-time-scale", "0.02", "-p", "no:cacheprovider"]

SUITE = """
import pytest

@pytest.mark.parametrize("n", range({n}))
def test_calls(ollama_client, n):
    ollama_client.generate(tier="fast", prompt=f"question {{n}}")

@pytest.mark.llm_budget(total=1e-6)
def test_over_budget(ollama_client):
    ollama_client.generate(tier="balanced", prompt="slow")

def test_no_llm():
    pass

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass
"""


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(data, schema())
    return data


def test_the_report_holds_every_test_and_call_and_fits_its_schema(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite=SUITE.format(n=3))
    result = pytester.runpytest("--llm-report", "out/report.json", *FAST)
    result.assert_outcomes(passed=4, failed=1, skipped=1)
    data = load(pytester.path / "out" / "report.json")
    summary = data["summary"]
    assert (summary["tests"], summary["passed"], summary["failed"], summary["skipped"]) == (
        6,
        4,
        1,
        1,
    )
    assert summary["success"] == "80% (4/5)"
    assert (summary["calls"], summary["budget_violations"]) == (4, 1)
    by_id = {test["nodeid"]: test for test in data["tests"]}
    over = by_id["test_suite.py::test_over_budget"]
    assert over["outcome"] == "failed"
    assert [v["budget"] for v in over["violations"]] == ["total"]
    assert over["violations"][0]["model"] == "llama3.2:3b"
    assert len(by_id["test_suite.py::test_calls[0]"]["calls"]) == 1
    assert data["models"]["llama3.2:1b"]["calls"] == 3
    assert data["run"]["timing"] == "live"
    result.stdout.fnmatch_lines(
        [
            "=* llmperf =*",
            "model * calls * p50 s * p95 s * TTFT p95 * tok/s * cache * over",
            "llama3.2:1b * 3 *",
            "llama3.2:3b * 1 * 1",
            "tests 80% (4/5), 4 LLM calls, 1 budget violations",
            "report: out/report.json",
        ]
    )


def test_by_default_a_timestamped_report_only_when_llm_calls_were_made(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_quiet(): pass")
    pytester.runpytest(*FAST).assert_outcomes(passed=1)
    assert not list(pytester.path.glob("llm_validation_*.json"))
    pytester.makepyfile(test_suite=SUITE.format(n=1))
    pytester.runpytest("--llm-report-dir", "reports", *FAST)
    [written] = (pytester.path / "reports").glob("llm_validation_*_*.json")
    assert load(written)["summary"]["calls"] == 2


def test_report_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE.format(n=1))
    pytester.runpytest("--llm-report", "off", *FAST)
    assert not list(pytester.path.rglob("llm_validation_*.json"))


def test_an_unwritable_report_path_is_reported_and_changes_no_result(
    pytester: pytest.Pytester,
) -> None:
    blocker = pytester.path / "blocker"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    pytester.makepyfile(
        "def test_one(ollama_client):\n    ollama_client.generate(tier='fast', prompt='x')\n"
    )
    result = pytester.runpytest("--llm-report", "blocker/report.json", *FAST)
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "llmperf: cannot write the LLM validation report to blocker/report.json: *--llm-report PATH*"
        ]
    )


def test_under_xdist_the_report_holds_exactly_the_same_calls(pytester: pytest.Pytester) -> None:
    """A few hundred tests under -n 4: not a record lost, none counted twice."""
    pytester.makepyfile(test_suite=SUITE.format(n=300))
    pytester.runpytest("--llm-report", "one.json", *FAST).assert_outcomes(
        passed=301, failed=1, skipped=1
    )
    result = pytester.runpytest("-n", "4", "--llm-report", "many.json", *FAST)
    result.assert_outcomes(passed=301, failed=1, skipped=1)
    alone, spread = load(pytester.path / "one.json"), load(pytester.path / "many.json")

    def calls(data: dict[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
        return {
            test["nodeid"]: [
                (c["model"], c["route"], c["request_digest"], c["output_tokens"], c["outcome"])
                for c in test["calls"]
            ]
            for test in data["tests"]
        }

    assert len(spread["tests"]) == len(alone["tests"]) == 303
    assert calls(spread) == calls(alone)
    assert spread["summary"] == alone["summary"]
    assert spread["summary"]["calls"] == 301
    assert {m: s["calls"] for m, s in spread["models"].items()} == {
        m: s["calls"] for m, s in alone["models"].items()
    }


def test_recommendations_reach_the_report_and_the_terminal_and_a_hook_adds_to_them(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
        def pytest_llmperf_report(report, config):
            report.setdefault("extra", {})["seen_by_hook"] = len(report["tests"])
            report["recommendations"].append(
                {"id": "team-rule", "severity": "info", "message": "from the conftest",
                 "evidence": {"calls": report["summary"]["calls"]}}
            )
        """
    )
    pytester.makepyfile(
        """
        def test_cold(ollama_client):
            ollama_client.generate(tier="complex", prompt="hi", options={"num_predict": 2})
        """
    )
    result = pytester.runpytest("--llm-report", "r.json", *FAST)
    result.assert_outcomes(passed=1)
    data = load(pytester.path / "r.json")
    assert data["extra"] == {"seen_by_hook": 1}
    assert [item["id"] for item in data["recommendations"]] == ["cold-load", "team-rule"]
    assert data["recommendations"][0]["evidence"]["model"] == "llama3:8b"
    result.stdout.fnmatch_lines(
        [
            "warning: test test_recommendations_reach_the_report_and_the_terminal_and_a_hook*.py"
            "::test_cold spent *% of its LLM time loading llama3:8b: warm it up * ?cold-load?",
            "info: from the conftest ?team-rule?",
        ]
    )


BENCHMARKED = """
def test_benchmarked(benchmark, ollama_client):
    def ask():
        return ollama_client.generate(
            tier="fast", prompt="hi", options={"num_predict": 2, "temperature": 0}
        )

    benchmark.pedantic(ask, rounds=3, iterations=1)
"""


BENCHMARKED_COUNTED = """
def test_benchmarked(benchmark, ollama_client, request):
    ran = []

    def ask():
        ran.append(1)
        return ollama_client.generate(
            tier="fast", prompt="hi", options={"num_predict": 2, "temperature": 0}
        )

    benchmark.pedantic(ask, rounds=3, iterations=1)
    (request.config.rootpath / "ran.txt").write_text(str(len(ran)), encoding="utf-8")
"""


def test_pytest_benchmark_gets_the_llm_statistics_in_extra_info(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bench=BENCHMARKED)
    result = pytester.runpytest("--benchmark-json", "bench.json", "--llm-report", "r.json", *FAST)
    result.assert_outcomes(passed=1)
    [bench] = json.loads((pytester.path / "bench.json").read_text(encoding="utf-8"))["benchmarks"]
    llm = bench["extra_info"]["llm"]
    # the cache is off in a benchmarked test: every round measures the LLM, not the cache
    assert (llm["calls"], llm["cache_hits"]) == (3, 0)
    assert {
        call["cache"] for test in load(pytester.path / "r.json")["tests"] for call in test["calls"]
    } == {"off"}
    assert llm["models"]["llama3.2:1b"]["calls"] == 3
    assert llm["models"]["llama3.2:1b"]["total_s"]["p50"] > 0
    assert load(pytester.path / "r.json")["summary"]["calls"] == 3


def test_under_xdist_pytest_benchmark_is_off_and_the_report_still_counts(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_bench=BENCHMARKED_COUNTED)
    result = pytester.runpytest("-n", "2", "--llm-report", "r.json", *FAST)
    result.assert_outcomes(passed=1)
    data = load(pytester.path / "r.json")
    [test] = data["tests"]
    assert test["outcome"] == "passed"
    # how often a disabled benchmark's body runs is pytest-benchmark's choice (once in 5.x,
    # every round of a pedantic one in 4.0): the report counts each call it made
    ran = int((pytester.path / "ran.txt").read_text(encoding="utf-8"))
    assert ran >= 1
    assert len(test["calls"]) == ran


@pytest.mark.parametrize(("value", "ci"), [("true", True), ("1", True), ("false", False)])
def test_the_run_says_whether_it_ran_in_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, value: str, ci: bool
) -> None:
    monkeypatch.setenv("CI", value)
    pytester.makepyfile(
        """
        def test_one(ollama_client):
            ollama_client.generate(tier="fast", prompt="hi", options={"num_predict": 2})
        """
    )
    pytester.runpytest("--llm-report", "r.json", *FAST).assert_outcomes(passed=1)
    data = load(pytester.path / "r.json")
    assert data["run"]["ci"] is ci
    # the embedded emulator costs no server: no advice to record its calls
    assert "live-calls-in-ci" not in [item["id"] for item in data["recommendations"]]
