"""A validation report with every part the HTML page draws, built as the plugin builds one."""

from __future__ import annotations

from typing import Any

import jsonschema

from pytest_llmperf.report import document as report

OPTIMIZATIONS = [
    {"optimization": "response cache", "before_s": 0.84, "after_s": 0.002, "improvement": 0.998},
    {"optimization": "warm-up", "before_s": 1.9, "after_s": 0.31, "improvement": "6.1x faster"},
]


def call(
    model: str,
    total: float,
    ttft: float | None = None,
    *,
    load: float | None = None,
    cache: str = "miss",
    outcome: str = "ok",
    purpose: str = "call",
    stream: bool = True,
) -> dict[str, Any]:
    """One call as ``CallRecord.to_dict()`` gives it."""
    return {
        "route": "/api/generate",
        "model": model,
        "tier": None,
        "host": "http://127.0.0.1:11434",
        "stream": stream,
        "purpose": purpose,
        "cache": cache,
        "started_at": 1_700_000_000.0,
        "total_s": total,
        "ttft_s": ttft,
        "gaps": None,
        "output_tokens": 20,
        "server": {"total_s": total, "load_s": load, "eval_count": 20, "eval_s": total / 2},
        "limits": None,
        "retries": 0,
        "fallback_from": [],
        "outcome": outcome,
        "error": None if outcome == "ok" else "boom",
        "timeout_phase": None,
        "timing": "live",
        "tokens_per_s": 40.0,
        "time_per_output_token_s": 0.02,
        "cache_hit": cache.startswith("hit"),
        "request_digest": "abc",
        "source": "llmperf",
    }


def violation(budget: str, measured: float, limit: float, model: str) -> dict[str, Any]:
    return {
        "budget": budget,
        "measured": measured,
        "limit": limit,
        "call": 1,
        "model": model,
        "message": f"call 1 of 1 ({model}): {budget} {measured} s > budget {limit} s",
    }


def sample(
    *, session: bool = True, optimizations: bool = True, nodeid_prefix: str = "tests/app/"
) -> dict[str, Any]:
    """Three tests with calls (cold, warm, cached, a failure, one over budget), a skipped
    one, calls outside any test and, unless told not to, the optimizations table."""
    collector = report.Collector()
    tests: list[tuple[str, str, list[dict[str, Any]], list[dict[str, Any]]]] = [
        (
            "test_story.py::test_cold_then_warm",
            "passed",
            [
                call("llama3.2:1b", 1.25, 1.1, load=1.0),
                call("llama3.2:1b", 0.21, 0.05, load=0.004),
                call("llama3.2:1b", 0.002, 0.002, load=1.0, cache="hit-memory"),
            ],
            [],
        ),
        (
            "test_story.py::test_over_budget",
            "failed",
            [call("llama3:8b", 2.4, 0.9, load=0.002), call("llama3:8b", 0.1, outcome="error")],
            [violation("total", 2.4, 1.5, "llama3:8b"), violation("calls", 2, 1, "llama3:8b")],
        ),
        (
            "test_chat.py::test_answer[<b>bold</b>]",
            "passed",
            [call("llama3.2:3b", 0.6, None, stream=False)],
            [],
        ),
        ("test_chat.py::test_skipped", "skipped", [], []),
    ]
    for nodeid, outcome, calls, violations in tests:
        extra = type("Extra", (), {"llm_calls": calls, "llm_violations": violations})()
        when = "setup" if outcome == "skipped" else "call"
        collector.add(nodeid_prefix + nodeid, when, outcome, 0.5, extra)
    outside = [
        call("llama3.2:1b", 1.1, 1.1, load=1.05, purpose="warm_up", stream=False),
        call("llama3.2:1b", 0.3, 0.1, load=0.001),
    ]
    data = report.build(
        collector, {"emulator_time_scale": 1.0}, 1_700_000_000.0, 1_700_000_012.0, outside
    )
    if not session:
        data["session"] = {"calls": []}
        data["summary"]["session_calls"] = 0
    if optimizations:
        data["optimizations"] = [dict(row) for row in OPTIMIZATIONS]
    jsonschema.validate(data, report.schema())
    return data
