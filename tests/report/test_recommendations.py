"""Recommendations: each rule fires on its evidence, and stays quiet without it."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_llmperf.recommend import recommend


def call(model: str = "m", total: float = 1.0, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "purpose": "call",
        "outcome": "ok",
        "cache": "miss",
        "cache_hit": False,
        "timing": "live",
        "total_s": total,
        "ttft_s": total / 2,
        "server": {},
        "limits": {"total": 10.0, "first_token": 10.0},
        "fallback_from": [],
        "request_digest": None,
        **extra,
    }


def entry(nodeid: str, *calls: dict[str, Any], violations: Any = ()) -> dict[str, Any]:
    return {"nodeid": nodeid, "calls": list(calls), "violations": list(violations)}


def ids(tests: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in recommend(tests)]


def test_a_healthy_run_has_none() -> None:
    assert recommend([entry("t::a", call(), call(total=1.1)), entry("t::b")]) == []


def test_cold_loads_name_the_test_the_model_and_the_share() -> None:
    [found] = recommend(
        [
            entry("t::cold", call("llama3:8b", 5.0, server={"load_s": 4.0})),
            entry("t::warm", call("llama3:8b", 1.0)),
        ]
    )
    assert found["id"] == "cold-load" and found["severity"] == "warning"
    assert found["message"].startswith(
        "test t::cold spent 80% of its LLM time loading llama3:8b: warm it up"
    )
    assert found["evidence"]["tests"] == [{"nodeid": "t::cold", "load_share": 0.8}]


def test_a_model_over_budget_in_several_calls_is_too_slow_for_its_tier() -> None:
    over = {"budget": "total", "model": "llama3:8b", "call": 1}
    tests = [
        entry("t::a", call("llama3:8b", 9.0), violations=[over]),
        entry("t::b", call("llama3:8b", 9.0), violations=[over]),
        entry("t::c", call("llama3:8b", 1.0)),
    ]
    [found] = recommend(tests)
    assert found["id"] == "tier-too-slow"
    assert found["message"].startswith(
        "llama3:8b went past its budget (total) in 2 of 3 calls, in t::a, t::b: use a faster tier"
    )
    # one violation among many calls is not a pattern
    assert ids([tests[0], tests[2], entry("t::d", call("llama3:8b"))]) == []


@pytest.mark.parametrize(
    ("cache", "advice"),
    [("bypass", "give them temperature 0 or a seed"), ("off", "turn the cache on")],
)
def test_repeated_identical_requests_without_the_cache(cache: str, advice: str) -> None:
    same = {"cache": cache, "request_digest": "abcd1234"}
    [found] = recommend(
        [entry("t::a", call(**same), call(**same)), entry("t::b", call(**same), call(total=2.0))]
    )
    assert found["id"] == "uncached-repeats"
    assert found["message"].startswith(
        "2 calls repeated an earlier identical request without the cache (2 s), in t::a, t::b: "
        + advice
    )
    # replayed calls cost nothing: their repeats are no waste
    replayed = call(timing="recorded", **same)
    assert ids([entry("t::c", replayed, replayed)]) == []


def test_a_p99_close_to_the_limit() -> None:
    calls = [
        call(total=8.5 + i / 10, limits={"total": 10.0, "first_token": 30.0}) for i in range(6)
    ]
    [found] = recommend([entry("t::a", *calls)])
    assert found["id"] == "timeout-near-p99"
    assert found["message"].startswith("m's p99 total (8.99 s) is 90% of its total limit (10 s)")


def test_failures_come_first_with_advice_per_phase() -> None:
    tests = [
        entry(
            "t::a",
            call(outcome="timeout", timeout_phase="first_token"),
            call(outcome="error"),
            call("x", 5.0, server={"load_s": 4.5}),
        )
    ]
    found = recommend(tests)
    assert [item["id"] for item in found] == ["call-failures", "cold-load"]
    assert found[0]["severity"] == "error"
    assert found[0]["message"] == (
        "calls to m: 1 timed out waiting for first_token, 1 failed, in t::a: a cold model is "
        "the usual cause: warm it up first (llm_warm_up)"
    )


def test_fallbacks_are_information() -> None:
    [found] = recommend([entry("t::a", call("llama3.2:3b", fallback_from=["llama3:8b"]))])
    assert (found["id"], found["severity"]) == ("fallback", "info")
    assert found["message"].startswith(
        "1 calls to llama3:8b timed out and were answered by llama3.2:3b instead"
    )


def test_cache_hits_loaded_nothing() -> None:
    # a cache hit keeps its answer's load_duration but took no time: no 160% load share
    hit = call("m", 0.0001, cache="hit-memory", cache_hit=True, server={"load_s": 0.5})
    assert ids([entry("t::a", call("m", 1.0, server={"load_s": 0.1}), hit)]) == []


def test_the_first_token_limit_is_judged_on_streams_only() -> None:
    whole = [
        call(total=4.5, stream=False, limits={"total": 10.0, "first_token": 5.0}) for _ in range(6)
    ]
    assert ids([entry("t::a", *whole)]) == []
    streamed = [
        call(total=4.5, stream=True, limits={"total": 10.0, "first_token": 2.5}) for _ in range(6)
    ]
    [found] = recommend([entry("t::a", *streamed)])
    assert "p99 ttft (2.25 s) is 90% of its first_token limit (2.5 s)" in found["message"]


def test_repeats_by_design_count_only_across_tests() -> None:
    same = {"cache": "bypass", "request_digest": "abcd1234"}
    looped = entry("t::runs", call(**same), call(**same), call(**same))
    looped["repeated"] = True
    assert ids([looped]) == []
    [found] = recommend([looped, entry("t::other", call(**same))])
    assert found["message"].startswith("1 calls repeated an earlier identical request")
