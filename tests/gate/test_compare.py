"""Comparing two reports: what counts as a regression, and what does not."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_llmperf.judge import gate


def call(model: str, total: float, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "purpose": "call",
        "outcome": "ok",
        "cache_hit": False,
        "stream": True,
        "total_s": total,
        "ttft_s": total / 4,
        **extra,
    }


def report(tests: Mapping[str, Sequence[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "tests": [{"nodeid": nodeid, "calls": list(calls)} for nodeid, calls in tests.items()],
    }


def suite(seed: int, slower: Mapping[str, float] | None = None, tests: int = 30) -> dict[str, Any]:
    """``tests`` tests, each calling two models once, with 5% noise; some models slowed."""
    rng = random.Random(seed)
    slower = slower or {}
    out: dict[str, list[dict[str, Any]]] = {}
    for i in range(tests):
        out[f"test_x.py::test_{i}"] = [
            call(model, base * slower.get(model, 1.0) * rng.uniform(0.95, 1.05))
            for model, base in (("small", 0.2), ("large", 1.0))
        ]
    return report(out)


def statuses(comparison: gate.Comparison, scope: str = "model") -> dict[tuple[str, str], str]:
    return {(f.name, f.metric): f.status for f in comparison.findings if f.scope == scope}


def test_the_same_code_twice_is_no_regression() -> None:
    # the noise (5%) is within the threshold: this is the size rule at work
    comparison = gate.compare(suite(1), suite(2))
    assert comparison.regressions == []
    assert set(statuses(comparison).values()) == {"unchanged"}
    assert gate.verdict_line(comparison).startswith("no LLM latency regression")


def test_noise_beyond_the_threshold_seldom_fails_many_comparisons() -> None:
    """100 tests of 5 calls each with 20% noise: medians often move past 10% by chance, so
    only the evidence rule, adjusted for the number of comparisons, holds the line."""
    failed = 0
    for trial in range(100):
        rng = random.Random(trial)

        def noisy(rng: random.Random = rng) -> dict[str, Any]:
            return report(
                {
                    f"t::test_{i}": [call("m", rng.uniform(0.8, 1.2)) for _ in range(5)]
                    for i in range(100)
                }
            )

        failed += bool(gate.compare(noisy(), noisy()).regressions)
    assert failed <= 3  # the family-wise error rate is at most alpha (1%) per scope


def test_a_significant_shift_within_the_threshold_is_no_regression() -> None:
    base, current = suite(1, tests=200), suite(2, slower={"large": 1.05}, tests=200)
    large = next(f for f in gate.compare(base, current).findings if f.name == "large")
    assert large.p_value is not None and large.p_value < 0.01
    assert large.status == "unchanged"


def test_adding_slower_tests_does_not_make_a_model_slower() -> None:
    base = suite(1)
    current = suite(2)
    current["tests"] += [
        {"nodeid": f"test_new.py::test_{i}", "calls": [call("large", 9.0)]} for i in range(15)
    ]
    comparison = gate.compare(base, current)
    assert comparison.regressions == []
    assert statuses(comparison, "test")[("test_new.py::test_0", "total_s")] == "new"
    removed = gate.compare(current, base)
    assert removed.regressions == []
    assert statuses(removed, "test")[("test_new.py::test_0", "total_s")] == "gone"


def test_a_model_30_percent_slower_is_a_regression_naming_the_model_and_its_tests() -> None:
    comparison = gate.compare(suite(1), suite(2, slower={"large": 1.3}))
    found = statuses(comparison)
    assert found[("large", "total_s")] == found[("large", "ttft_s")] == "regression"
    assert found[("small", "total_s")] == "unchanged"
    regression = next(f for f in comparison.regressions if f.metric == "total_s")
    assert regression.median_change is not None and 0.2 < regression.median_change < 0.4
    assert regression.p_value is not None and regression.p_value < 1e-6
    assert set(regression.tests) == {f"test_x.py::test_{i}" for i in range(30)}
    assert "model large" in gate.verdict_line(comparison)
    # one call per test: a test alone has too few calls to show anything
    assert set(statuses(comparison, "test").values()) == {"too few calls"}


def test_a_lower_threshold_catches_a_smaller_shift() -> None:
    assert gate.compare(
        suite(1, tests=200), suite(2, slower={"large": 1.05}, tests=200), threshold=0.03
    ).regressions


def test_a_few_slow_outliers_are_large_but_not_evidence() -> None:
    base = suite(1)
    current = suite(2)
    for test in current["tests"][:3]:
        test["calls"][1]["total_s"] = 30.0  # three calls of "large" 30x slower
    large = next(
        f
        for f in gate.compare(base, current).findings
        if f.scope == "model" and f.name == "large" and f.metric == "total_s"
    )
    assert large.p95_change is not None and large.p95_change > 10
    assert large.status == "unchanged"


def test_too_few_calls_are_shown_but_never_gate() -> None:
    base = report({"t::a": [call("m", 1.0), call("m", 1.1)]})
    current = report({"t::a": [call("m", 5.0), call("m", 5.5)]})
    comparison = gate.compare(base, current)
    assert comparison.regressions == []
    model = next(f for f in comparison.findings if f.scope == "model" and f.metric == "total_s")
    assert model.status == "too few calls"
    assert model.median_change is not None and model.median_change > 3


def test_per_test_regressions_with_enough_calls() -> None:
    rng = random.Random(3)
    base = report({"t::loop": [call("m", rng.uniform(0.9, 1.1)) for _ in range(12)]})
    current = report({"t::loop": [call("m", rng.uniform(1.3, 1.5)) for _ in range(12)]})
    comparison = gate.compare(base, current)
    assert statuses(comparison, "test")[("t::loop", "total_s")] == "regression"


def test_faster_is_an_improvement_and_never_fails() -> None:
    comparison = gate.compare(suite(1, slower={"large": 1.5}), suite(2))
    assert comparison.regressions == []
    assert statuses(comparison)[("large", "total_s")] == "improvement"


def test_cache_hits_failures_and_warm_ups_are_not_samples() -> None:
    base = suite(1)
    current = suite(2)
    for test in current["tests"]:
        test["calls"] += [
            call("large", 99.0, cache_hit=True),
            call("large", 99.0, outcome="timeout"),
            call("large", 99.0, purpose="warm_up"),
        ]
    assert gate.compare(base, current).regressions == []


def test_models_and_tests_on_one_side_only() -> None:
    base = report({"t::kept": [call("old", 1.0, stream=False)], "t::old": [call("old", 1.0)]})
    current = report(
        {"t::kept": [call("fresh", 1.0, stream=False)], "t::new": [call("fresh", 1.0)]}
    )
    comparison = gate.compare(base, current)
    # models are compared over the tests both runs have: here t::kept
    assert statuses(comparison) == {("old", "total_s"): "gone", ("fresh", "total_s"): "new"}
    tests = statuses(comparison, "test")
    assert tests[("t::kept", "total_s")] == "too few calls"
    assert tests[("t::new", "total_s")] == tests[("t::new", "ttft_s")] == "new"
    assert tests[("t::old", "total_s")] == "gone"


def test_the_table_and_markdown_name_what_moved() -> None:
    comparison = gate.compare(suite(1), suite(2, slower={"large": 1.3}))
    lines = gate.table(comparison)
    assert lines[0].startswith("LLM latency regression against the baseline in model large")
    assert lines[0].endswith("; 30 tests affected")
    assert lines[1].split() == [
        "status", "scope", "name", "metric", "base", "p50", "now", "p50", "median", "p95", "p", "n"
    ]  # fmt: skip
    assert any(line.startswith("regression  model  large  total") for line in lines)
    assert lines[-2].startswith("large (total_s) grew in: test_x.py::test_")
    assert lines[-2].endswith("and 25 more")
    text = gate.markdown(comparison)
    assert text.startswith("### :x: pytest-llmperf: LLM latency regression")
    assert "| regression | model | `large` | total |" in text
    assert "- `test_x.py::test_0`" in text
    everything = gate.table(gate.compare(suite(1), suite(2)), everything=True)
    assert len(everything) == 1 + 1 + 2 * 2 + 30 * 2  # verdict, header, models, tests


def test_nothing_in_common_is_said_plainly() -> None:
    comparison = gate.compare(report({"t::a": [call("m", 1.0)]}), report({}))
    assert gate.verdict_line(comparison).startswith("nothing to compare with the baseline")


def test_ttft_is_compared_on_streamed_calls_only() -> None:
    base = suite(1)
    current = suite(2, slower={"large": 1.3})
    for data in (base, current):
        for test in data["tests"]:
            for c in test["calls"]:
                c["stream"] = False
    metrics = {f.metric for f in gate.compare(base, current).findings}
    assert metrics == {"total_s"}
