"""Recommendations: what the run's evidence says to do, each with the evidence behind it.

Every rule reads the report's tests and calls (JSON-able dicts, as written) and gives
``{"id", "severity", "message", "evidence"}`` dicts. Severities are ``error`` (calls failed),
``warning`` (time or budgets lost to something that has a known fix) and ``info``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pytest_llmperf.stats import quantile

Call = Mapping[str, Any]
Test = Mapping[str, Any]
Recommendation = dict[str, Any]

SEVERITIES = ("error", "warning", "info")
LOAD_SHARE = 0.5  # a test whose calls to a model spent more than this loading it
NEAR_LIMIT = 0.8  # an observed p99 above this share of the limit that applied
NAMED = 5  # tests named in a message


def _calls(tests: Iterable[Test]) -> Iterable[tuple[str, Call]]:
    for test in tests:
        for call in test.get("calls") or ():
            if call.get("purpose", "call") == "call":
                yield str(test["nodeid"]), call


def _names(tests: Sequence[str]) -> str:
    shown = ", ".join(tests[:NAMED])
    return shown + (f" and {len(tests) - NAMED} more" if len(tests) > NAMED else "")


def cold_loads(tests: Sequence[Test]) -> list[Recommendation]:
    """Tests whose calls to a model spent most of their time loading it."""
    per: dict[tuple[str, str], list[float]] = {}  # (model, test) -> [load, total]
    for nodeid, call in _calls(tests):
        if call.get("timing") == "recorded" or call.get("cache_hit"):
            continue  # a cache hit keeps its answer's load_duration, but loaded nothing
        load = float((call.get("server") or {}).get("load_s") or 0.0)
        seen = per.setdefault((str(call["model"]), nodeid), [0.0, 0.0])
        seen[0] += load
        seen[1] += float(call["total_s"])
    by_model: dict[str, list[tuple[float, str, float]]] = {}
    for (model, nodeid), (load, total) in per.items():
        if total > 0 and load / total > LOAD_SHARE:
            by_model.setdefault(model, []).append((load / total, nodeid, load))
    out = []
    for model, found in sorted(by_model.items()):
        found.sort(key=lambda item: (-item[0], item[1]))
        share, worst, _ = found[0]
        who = f"test {worst}" if len(found) == 1 else f"{len(found)} tests (worst {worst})"
        out.append(
            {
                "id": "cold-load",
                "severity": "warning",
                "message": (
                    f"{who} spent {share:.0%} of its LLM time loading {model}: warm it up "
                    "once per session (the llm_warm_up fixture or client.warm_up()), keep it "
                    "loaded longer (keep_alive), or use a faster tier"
                ),
                "evidence": {
                    "model": model,
                    "load_s": sum(load for _, _, load in found),
                    "tests": [
                        {"nodeid": nodeid, "load_share": round(s, 4)} for s, nodeid, _ in found
                    ],
                },
            }
        )
    return out


def over_budget(tests: Sequence[Test]) -> list[Recommendation]:
    """Models whose calls went past per-call budgets in several calls."""
    judged: dict[str, int] = {}
    for _, call in _calls(tests):
        judged[str(call["model"])] = judged.get(str(call["model"]), 0) + 1
    over: dict[str, dict[str, Any]] = {}
    for test in tests:
        for violation in test.get("violations") or ():
            model = violation.get("model")
            if model is None:
                continue
            seen = over.setdefault(model, {"calls": set(), "tests": [], "budgets": set()})
            seen["calls"].add((test["nodeid"], violation.get("call")))
            seen["budgets"].add(violation["budget"])
            if test["nodeid"] not in seen["tests"]:
                seen["tests"].append(test["nodeid"])
    out = []
    for model, seen in sorted(over.items()):
        count, total = len(seen["calls"]), judged.get(model, len(seen["calls"]))
        if count < 2 and count < total:
            continue
        out.append(
            {
                "id": "tier-too-slow",
                "severity": "warning",
                "message": (
                    f"{model} went past its budget ({', '.join(sorted(seen['budgets']))}) in "
                    f"{count} of {total} calls, in {_names(seen['tests'])}: use a faster tier "
                    "for these tests, warm the model up, or raise the budgets if this speed "
                    "is expected"
                ),
                "evidence": {
                    "model": model,
                    "calls_over": count,
                    "calls": total,
                    "budgets": sorted(seen["budgets"]),
                    "tests": seen["tests"],
                },
            }
        )
    return out


def uncached_repeats(tests: Sequence[Test]) -> list[Recommendation]:
    """The same request sent more than once while the cache could not answer it.

    A test that runs its body again by design (``runs=N``, pytest-benchmark's rounds) repeats
    its requests on purpose: those repeats don't count, only repeats across tests do.
    """
    by_design = {str(test["nodeid"]) for test in tests if test.get("repeated")}
    groups: dict[tuple[str, str], list[tuple[str, Call]]] = {}
    for nodeid, call in _calls(tests):
        digest = call.get("request_digest")
        if digest and call.get("cache") in ("bypass", "off") and call.get("timing") != "recorded":
            group = groups.setdefault((str(call["model"]), digest), [])
            if not (nodeid in by_design and any(seen == nodeid for seen, _ in group)):
                group.append((nodeid, call))
    repeated = [group for group in groups.values() if len(group) > 1]
    if not repeated:
        return []
    repeats = sum(len(group) - 1 for group in repeated)
    seconds = sum(float(call["total_s"]) for group in repeated for _, call in group[1:])
    states = {call["cache"] for group in repeated for _, call in group}
    tests_hit = sorted({nodeid for group in repeated for nodeid, _ in group})
    fix = (
        "turn the cache on (--llm-cache memory, the default)"
        if states == {"off"}
        else "give them temperature 0 or a seed so the cache may answer repeats, or pass "
        "cache=True to cache them anyway"
    )
    return [
        {
            "id": "uncached-repeats",
            "severity": "warning",
            "message": (
                f"{repeats} calls repeated an earlier identical request without the cache "
                f"({seconds:.3g} s), in {_names(tests_hit)}: {fix}"
            ),
            "evidence": {
                "repeats": repeats,
                "seconds": seconds,
                "cache_states": sorted(states),
                "requests": [
                    {
                        "model": group[0][1]["model"],
                        "count": len(group),
                        "tests": sorted({n for n, _ in group}),
                    }
                    for group in repeated
                ],
            },
        }
    ]


def near_limits(tests: Sequence[Test]) -> list[Recommendation]:
    """Models whose observed p99 comes close to the time limit their calls had."""
    per: dict[str, list[Call]] = {}
    for _, call in _calls(tests):
        if call.get("outcome") == "ok" and call.get("limits") and not call.get("cache_hit"):
            per.setdefault(str(call["model"]), []).append(call)
    out = []
    for model, calls in sorted(per.items()):
        if len(calls) < 5:
            continue
        for phase, field in (("total", "total_s"), ("first_token", "ttft_s")):
            # the first-token limit applies to streams only: a whole answer's first token
            # comes with its last
            judged = [c for c in calls if phase == "total" or c.get("stream")]
            values = [float(c[field]) for c in judged if c.get(field) is not None]
            limits = [float(c["limits"][phase]) for c in judged if c["limits"].get(phase)]
            if not values or not limits:
                continue
            p99, limit = quantile(values, 0.99), min(limits)
            if p99 > NEAR_LIMIT * limit:
                out.append(
                    {
                        "id": "timeout-near-p99",
                        "severity": "warning",
                        "message": (
                            f"{model}'s p99 {field.removesuffix('_s')} ({p99:.3g} s) is "
                            f"{p99 / limit:.0%} of its {phase} limit ({limit:g} s): under load "
                            "its calls will start timing out; raise the limit (--llm-timeout) "
                            "or move these calls to a faster tier"
                        ),
                        "evidence": {
                            "model": model,
                            "phase": phase,
                            "p99_s": p99,
                            "limit_s": limit,
                            "calls": len(values),
                        },
                    }
                )
    return out


_PHASE_FIX = {
    "connect": "is the server up and reachable? (--llm-host)",
    "first_token": "a cold model is the usual cause: warm it up first (llm_warm_up)",
    "stall": "the server stopped mid-answer: is it overloaded? (OLLAMA_NUM_PARALLEL)",
    "total": "raise the tier's total limit (--llm-timeout) or ask for fewer tokens",
}


def failures(tests: Sequence[Test]) -> list[Recommendation]:
    """Calls that timed out or failed, per model."""
    per: dict[str, dict[str, Any]] = {}
    for nodeid, call in _calls(tests):
        outcome = call.get("outcome")
        if outcome not in ("timeout", "error"):
            continue
        seen = per.setdefault(str(call["model"]), {"timeout": {}, "error": 0, "tests": []})
        if outcome == "timeout":
            phase = str(call.get("timeout_phase") or "total")
            seen["timeout"][phase] = seen["timeout"].get(phase, 0) + 1
        else:
            seen["error"] += 1
        if nodeid not in seen["tests"]:
            seen["tests"].append(nodeid)
    out = []
    for model, seen in sorted(per.items()):
        phases: dict[str, int] = seen["timeout"]
        parts = [f"{n} timed out waiting for {phase}" for phase, n in sorted(phases.items())]
        if seen["error"]:
            parts.append(f"{seen['error']} failed")
        advice = "; ".join(_PHASE_FIX[p] for p in sorted(phases) if p in _PHASE_FIX)
        message = f"calls to {model}: {', '.join(parts)}, in {_names(seen['tests'])}"
        out.append(
            {
                "id": "call-failures",
                "severity": "error",
                "message": message + (f": {advice}" if advice else ""),
                "evidence": {
                    "model": model,
                    "timeouts": phases,
                    "errors": seen["error"],
                    "tests": seen["tests"],
                },
            }
        )
    return out


def fallbacks(tests: Sequence[Test]) -> list[Recommendation]:
    """Calls that were answered by a faster tier after a timeout."""
    moved: dict[tuple[str, str], list[str]] = {}
    for nodeid, call in _calls(tests):
        for origin in call.get("fallback_from") or ():
            moved.setdefault((str(origin), str(call["model"])), []).append(nodeid)
    return [
        {
            "id": "fallback",
            "severity": "info",
            "message": (
                f"{len(nodes)} calls to {origin} timed out and were answered by {model} "
                f"instead, in {_names(sorted(set(nodes)))}: if {model}'s answers are good "
                "enough, ask for it directly and save the wait"
            ),
            "evidence": {
                "from": origin,
                "to": model,
                "calls": len(nodes),
                "tests": sorted(set(nodes)),
            },
        }
        for (origin, model), nodes in sorted(moved.items())
    ]


RULES: tuple[Callable[[Sequence[Test]], list[Recommendation]], ...] = (
    failures,
    cold_loads,
    over_budget,
    near_limits,
    uncached_repeats,
    fallbacks,
)


def recommend(tests: Sequence[Test]) -> list[Recommendation]:
    """Every rule's recommendations, errors first."""
    found = [item for rule in RULES for item in rule(tests)]
    return sorted(found, key=lambda item: SEVERITIES.index(item["severity"]))
