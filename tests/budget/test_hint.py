"""The budget message's hint comes from the report's recommendation rules, so both agree."""

from __future__ import annotations

from pytest_llmperf.client.protocol import ServerStats
from pytest_llmperf.judge.budget import Violation, hint
from pytest_llmperf.observe.records import CallRecord


def record(cache: str = "bypass", load_s: float = 0.0, total_s: float = 1.0) -> CallRecord:
    return CallRecord(
        route="/api/generate",
        model="llama3:8b",
        tier="complex",
        host="http://127.0.0.1:11434",
        stream=False,
        purpose="call",
        cache=cache,
        started_at=0.0,
        total_s=total_s,
        ttft_s=total_s,
        gaps=None,
        output_tokens=4,
        server=ServerStats(total_s, load_s, 3, 0.01, 4, 0.05),
        limits=None,
        retries=0,
        fallback_from=(),
        outcome="ok",
        request_digest=None if cache.startswith("hit") else "d1",
    )


OVER = [Violation("total", 1.0, 0.5, 1, "total 1.0 s > 0.5 s")]


def test_a_call_that_spent_its_time_loading_gets_the_warm_up_advice() -> None:
    advice = hint("t.py::test", OVER, [record(load_s=0.9)])
    assert advice.startswith("test t.py::test spent 90% of its LLM time loading llama3:8b")
    assert "warm it up" in advice


def test_a_cache_hit_keeps_its_answers_load_time_but_loaded_nothing() -> None:
    # The report's cold-load rule leaves cache hits out; the hint used to count them.
    advice = hint("t.py::test", OVER, [record(cache="hit-memory", load_s=0.9)])
    assert "loading" not in advice
    assert advice == "use a faster tier (tier='fast'), ask for fewer tokens, or raise the budget"


def test_repeats_the_cache_could_not_answer_get_the_cache_advice() -> None:
    violations = [Violation("wall", 2.0, 1.0, None, "wall 2 s > 1 s")]
    advice = hint("t.py::test", violations, [record(), record()])
    assert advice.startswith("1 calls repeated an earlier identical request without the cache")


def test_too_many_calls_get_the_calls_advice() -> None:
    advice = hint(
        "t.py::test", [Violation("calls", 3, 2, None, "calls 3 > 2")], [record(load_s=0.9)]
    )
    assert advice.startswith("the test makes more calls than budgeted")
