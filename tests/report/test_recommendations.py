"""Recommendations: each rule fires on its evidence, and stays quiet without it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pytest_llmperf.judge.recommend import recommend
from pytest_llmperf.plugin.settings import Settings


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


# --- rules that read the run section --------------------------------------------------------

SETTINGS = dataclasses.asdict(Settings())


def run(ci: bool = False, **settings: Any) -> dict[str, Any]:
    return {"ci": ci, "settings": {**SETTINGS, **settings}}


def found(tests: list[dict[str, Any]], rule: str, **options: Any) -> list[dict[str, Any]]:
    return [item for item in recommend(tests, **options) if item["id"] == rule]


def spaced(count: int, total: float = 1.0, gap: float = 0.5, **extra: Any) -> list[dict[str, Any]]:
    """``count`` calls one after another, ``gap`` seconds apart."""
    return [call(total=total, started_at=100.0 + i * (total + gap), **extra) for i in range(count)]


def test_a_limit_far_above_the_calls_under_fixed_limits() -> None:
    tests = [entry("t::a", *spaced(6, total=0.5, limits={"total": 60.0}))]
    [far] = found(tests, "timeout-far-above-p99", run=run(adaptive_timeouts=False))
    assert far["severity"] == "info"
    assert far["message"].startswith(
        "m's calls take 0.5 s (p99 of 6) and may take 60 s (120x) before their total limit"
    )
    assert "lower the limit to about 2 s" in far["message"]  # 3x p99, no less than the floor
    assert far["evidence"] == {
        "model": "m",
        "p99_s": 0.5,
        "limit_s": 60.0,
        "calls": 6,
        "tests": ["t::a"],
    }
    # adaptive timeouts fit the limits to the calls themselves
    assert found(tests, "timeout-far-above-p99", run=run()) == []
    # a limit that fits, or too few calls to judge
    near = [entry("t::a", *spaced(6, total=0.5, limits={"total": 4.0}))]
    assert found(near, "timeout-far-above-p99", run=run(adaptive_timeouts=False)) == []
    few = [entry("t::a", *spaced(4, total=0.5, limits={"total": 60.0}))]
    assert found(few, "timeout-far-above-p99", run=run(adaptive_timeouts=False)) == []


def test_timeouts_with_adaptive_timeouts_off() -> None:
    tests = [entry("t::a", call(total=10.0, outcome="timeout", timeout_phase="total"))]
    [off] = found(tests, "adaptive-timeouts-off", run=run(adaptive_timeouts=False))
    assert off["severity"] == "warning"
    assert off["message"].startswith(
        "1 calls timed out under fixed limits (10 s waiting), in t::a: turn adaptive timeouts on"
    )
    assert off["evidence"] == {"timeouts": 1, "waited_s": 10.0, "tests": ["t::a"]}
    assert found(tests, "adaptive-timeouts-off", run=run()) == []
    assert (
        found([entry("t::a", call())], "adaptive-timeouts-off", run=run(adaptive_timeouts=False))
        == []
    )


def test_live_calls_in_ci_to_a_real_server() -> None:
    remote = {"host": "http://gpu-box:11434"}
    tests = [entry("t::a", call(**remote), call(**remote)), entry("t::b", call(**remote))]
    real = run(ci=True, hosts=("http://gpu-box:11434",))
    [ci] = found(tests, "live-calls-in-ci", run=real)
    assert ci["severity"] == "warning"
    assert ci["message"].startswith(
        "3 calls went to a live server in CI (3 s, http://gpu-box:11434), in t::a, t::b: "
        "record them once with cassettes"
    )
    assert ci["evidence"]["tests"] == ["t::a", "t::b"]
    # not in CI; a run gated on a baseline measures live on purpose; replayed calls
    assert found(tests, "live-calls-in-ci", run={**real, "ci": False}) == []
    gated = run(ci=True, hosts=("http://gpu-box:11434",), baseline="base.json")
    assert found(tests, "live-calls-in-ci", run=gated) == []
    replayed = [entry("t::a", call(timing="recorded", **remote))]
    assert found(replayed, "live-calls-in-ci", run=real) == []


def test_in_ci_our_clients_calls_to_the_embedded_emulator_cost_no_server() -> None:
    emulated = [entry("t::a", call(host="http://127.0.0.1:40123"))]
    assert found(emulated, "live-calls-in-ci", run=run(ci=True)) == []
    # another library's calls go wherever it was pointed
    other = [entry("t::a", call(host="http://127.0.0.1:11434", source="httpx"))]
    [ci] = found(other, "live-calls-in-ci", run=run(ci=True))
    assert ci["evidence"]["hosts"] == ["http://127.0.0.1:11434"]


def test_many_live_calls_and_no_baseline() -> None:
    tests = [entry("t::a", *[call() for _ in range(20)])]
    [gate] = found(tests, "no-baseline", run=run())
    assert gate["severity"] == "info"
    assert gate["message"].startswith(
        "20 live LLM calls were measured and compared with nothing: keep a report"
    )
    assert gate["evidence"] == {"calls": 20}
    assert found(tests, "no-baseline", run=run(baseline="base.json")) == []
    assert found([entry("t::a", *[call() for _ in range(19)])], "no-baseline", run=run()) == []
    replayed = [entry("t::a", *[call(timing="recorded") for _ in range(20)])]
    assert found(replayed, "no-baseline", run=run()) == []
    assert found(tests, "no-baseline") == []  # no run section: nothing known of a baseline


# --- rules that read the calls' time --------------------------------------------------------


def cold(start: float, total: float = 5.0, load: float = 4.0, **extra: Any) -> dict[str, Any]:
    return call(total=total, started_at=start, server={"load_s": load}, **extra)


def test_a_model_loaded_cold_twice_was_unloaded_in_between() -> None:
    tests = [
        entry("t::a", cold(100.0), call(started_at=106.0, server={"load_s": 0.01})),
        entry("t::b", cold(500.0, load=3.9)),
    ]
    [again] = found(tests, "keep-alive", run=run())
    assert again["severity"] == "warning"
    assert again["message"].startswith(
        "m had to be loaded again 1 times in this run, with no unload call before (3.9 s "
        "loading), in t::b: the server unloaded it in between; keep it loaded longer "
        "(--llm-keep-alive, now 30m"
    )
    assert again["evidence"]["reloads"] == 1 and again["evidence"]["reload_s"] == 3.9


def test_loads_that_were_asked_for_or_waited_together_are_not_reloads() -> None:
    unload = call(purpose="unload", total=0.01, started_at=300.0)
    asked = [entry("t::a", cold(100.0), unload, cold(500.0))]
    assert found(asked, "keep-alive") == []
    # two first requests at once: the second waited for the first one's load
    together = [entry("t::a", cold(100.0), cold(100.5))]
    assert found(together, "keep-alive") == []
    # a warm model reports a little load time on every call: no load at all
    warm = [entry("t::a", *spaced(5, server={"load_s": 0.005}))]
    assert found(warm, "keep-alive") == []
    # another library's unload (keep_alive 0): measured at the transport, it answered nothing
    seen = call(source="httpx", total=0.002, started_at=300.0, output_tokens=None)
    assert (
        found([entry("t::a", cold(100.0), seen, cold(500.0, source="httpx"))], "keep-alive") == []
    )
    # one model on two servers loads once on each
    twice = [entry("t::a", cold(100.0, host="http://a"), cold(500.0, host="http://b"))]
    assert found(twice, "keep-alive") == []
    # a warm-up loads the model too
    warmed = [entry("t::a", cold(100.0, purpose="warm_up"), cold(500.0))]
    assert [item["evidence"]["reloads"] for item in found(warmed, "keep-alive")] == [1]


def test_calls_waiting_for_the_server() -> None:
    waiting = {"total_s": 1.0, "load_s": None, "prompt_eval_s": 0.1, "eval_s": 0.5}
    tests = [entry("t::a", *spaced(4, total=2.0, server=waiting))]
    [queue] = found(tests, "server-queueing")
    assert queue["severity"] == "warning"
    assert queue["message"].startswith(
        "4 of 4 calls to m spent over 25% of their time waiting for the server (5.6 s in all)"
    )
    assert queue["evidence"]["waiting_s"] == pytest.approx(5.6)  # 0.4 in it, 1.0 before it
    served = {"total_s": 1.0, "prompt_eval_s": 0.2, "eval_s": 0.79}
    assert found([entry("t::a", *spaced(4, total=1.02, server=served))], "server-queueing") == []
    # a tiny call's overhead is a large share of it, and no queue
    tiny = {"total_s": 0.002, "eval_s": 0.002}
    assert found([entry("t::a", *spaced(4, total=0.004, server=tiny))], "server-queueing") == []


def test_prompts_that_take_most_of_the_time() -> None:
    reading = {"total_s": 1.0, "prompt_eval_count": 3000, "prompt_eval_s": 0.8, "eval_s": 0.2}
    tests = [entry("t::a", *spaced(3, server=reading))]
    [long] = found(tests, "long-prompts")
    assert long["severity"] == "warning"
    assert long["message"].startswith(
        "calls to m spent 80% of their time reading prompts (mean 3000 tokens), in t::a: "
        "shorten them"
    )
    short = {"total_s": 1.0, "prompt_eval_count": 30, "prompt_eval_s": 0.1, "eval_s": 0.9}
    assert found([entry("t::a", *spaced(3, server=short))], "long-prompts") == []
    assert found([entry("t::a", *spaced(2, server=reading))], "long-prompts") == []
    # the tests named are those whose calls the prompt dominated
    mixed = [*tests, entry("t::b", call(server=short))]
    assert [item["evidence"]["tests"] for item in found(mixed, "long-prompts")] == [["t::a"]]


def short_task(
    tier: str | None, prompt: int = 20, output: int = 10, **extra: Any
) -> dict[str, Any]:
    return call(
        "llama3:8b",
        tier=tier,
        output_tokens=output,
        server={"prompt_eval_count": prompt},
        **extra,
    )


def test_a_complex_tier_model_for_short_tasks() -> None:
    tests = [
        entry("t::a", short_task("complex"), short_task("complex")),
        entry("t::b", short_task("complex")),
    ]
    [small] = found(tests, "smaller-model")
    assert small["severity"] == "info"
    assert small["message"].startswith(
        "3 of 3 calls to llama3:8b (tier complex) were small enough for the fast tier "
        "(prompts up to 20 tokens, answers up to 10), in t::a, t::b: tier='fast' (or "
        "tier='auto') would likely serve them faster"
    )
    assert small["evidence"]["suggested_tier"] == "fast"
    # tasks that need the tier, a fast tier already, too few calls, answers from the cache
    assert (
        found(
            [entry("t::a", *[short_task("complex", prompt=3000) for _ in range(3)])],
            "smaller-model",
        )
        == []
    )
    assert found([entry("t::a", *[short_task("fast") for _ in range(3)])], "smaller-model") == []
    assert (
        found([entry("t::a", short_task("complex"), short_task("complex"))], "smaller-model") == []
    )
    hits = [short_task("complex", cache="hit-memory", cache_hit=True) for _ in range(3)]
    assert found([entry("t::a", *hits)], "smaller-model") == []


def test_a_balanced_tier_model_for_short_tasks_is_told_which_tier() -> None:
    medium = [short_task("balanced", prompt=800) for _ in range(3)]  # past fast's 500 tokens
    assert found([entry("t::a", *medium)], "smaller-model") == []
    tests = [entry("t::a", *[short_task("complex", prompt=800) for _ in range(3)])]
    [small] = found(tests, "smaller-model")
    assert small["evidence"]["suggested_tier"] == "balanced"


def test_sequential_calls_where_the_server_could_run_several() -> None:
    tests = [entry("t::a", *spaced(3))]
    parallel = {"num_parallel": 4, "models": []}
    [seq] = found(tests, "sequential-calls", run=run(), server=parallel)
    assert seq["severity"] == "info"
    assert seq["message"].startswith(
        "1 tests made their calls one after another (3 calls, 3 s), while the server could "
        "run 4 at once, in t::a: if they don't need each other's answers, send them together"
    )
    assert seq["evidence"]["tests"] == [{"nodeid": "t::a", "calls": 3, "seconds": 3.0}]
    # several hosts can run them at once too
    two = run(hosts=("http://a:11434", "http://b:11434"))
    assert [s["evidence"]["hosts"] for s in found(tests, "sequential-calls", run=two)] == [2]
    # one at a time is all the server can do; calls that overlap; a test that loops by design
    assert found(tests, "sequential-calls", run=run()) == []
    assert found(tests, "sequential-calls", server={"num_parallel": 1, "models": []}) == []
    overlapping = [entry("t::a", *spaced(3, gap=-0.5))]
    assert found(overlapping, "sequential-calls", server=parallel) == []
    looped = entry("t::a", *spaced(3))
    looped["repeated"] = True
    assert found([looped], "sequential-calls", server=parallel) == []
