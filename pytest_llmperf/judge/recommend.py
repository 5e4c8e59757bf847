"""Recommendations: what the run's evidence says to do, each with the evidence behind it.

Every rule reads the run's :class:`Evidence` (the report's tests and calls as JSON-able
dicts, its ``run`` section with the settings, and the optional ``server`` section) and
gives ``{"id", "severity", "message", "evidence"}`` dicts; a rule without its evidence
gives none. Severities are ``error`` (calls failed), ``warning`` (time or budgets lost to
something that has a known fix) and ``info`` (a change likely to pay, that the run cannot
prove). The rules are listed in :data:`RULES`, and in the README's table.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from pytest_llmperf.client.protocol import ServerStats
from pytest_llmperf.client.tiers import ORDER, TierPolicy
from pytest_llmperf.client.timeouts import FLOOR
from pytest_llmperf.judge.budget import split
from pytest_llmperf.observe.records import CallDict
from pytest_llmperf.observe.server import billions, bits
from pytest_llmperf.stats import quantile

Call = CallDict
Test = Mapping[str, Any]


class Recommendation(TypedDict):
    """One finding: the rule's ``id``, a ``severity`` (see :data:`SEVERITIES`), the advice in
    ``message``, and the ``evidence`` it stands on (figures, tests, models)."""

    id: str
    severity: str
    message: str
    evidence: dict[str, Any]


SEVERITIES = ("error", "warning", "info")
LOAD_SHARE = 0.5  # a test whose calls to a model spent more than this loading it
NEAR_LIMIT = 0.8  # an observed p99 above this share of the limit that applied
FAR_LIMIT = 10.0  # a limit above this many times the observed p99
NAMED = 5  # tests named in a message
SEVERAL = 3  # calls that make a pattern, for the rules on shares of time
COLD_SHARE = 0.25  # a call that spent this share loading its model loaded it cold
WAIT_SHARE = 0.25  # a call that spent this share of its time queued (and...)
WAIT_S = 0.1  # ...at least this long: time in a queue, not the network's overhead
PROMPT_SHARE = 0.5  # calls that spent more than this share reading the prompt
MANY_CALLS = 20  # live calls that make a run worth a baseline
SLOW_TOKENS_PER_S = 10.0  # below reading speed
LARGE_BILLIONS = 7.0  # parameters of a large model
_SERVER_FIELDS = tuple(f.name for f in dataclasses.fields(ServerStats))


@dataclass(frozen=True)
class Evidence:
    """What the rules read: the report's tests, its run section, its server section."""

    tests: Sequence[Test]
    run: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    server: Mapping[str, Any] | None = None

    @property
    def settings(self) -> Mapping[str, Any]:
        return self.run.get("settings") or {}

    def worked(self) -> Iterable[tuple[str, Call]]:
        """Calls the server worked on in this run: live, not answered by the cache."""
        for nodeid, call in _calls(self.tests):
            if call.get("timing", "live") == "live" and not call.get("cache_hit"):
                yield nodeid, call

    def loaded(self) -> list[Mapping[str, Any]]:
        """The server section's models; none without the section."""
        return [m for m in (self.server or {}).get("models") or () if isinstance(m, Mapping)]


def _calls(tests: Iterable[Test]) -> Iterable[tuple[str, Call]]:
    for test in tests:
        for call in test.get("calls") or ():
            if call.get("purpose", "call") == "call":
                yield str(test["nodeid"]), call


def _names(tests: Sequence[str]) -> str:
    shown = ", ".join(tests[:NAMED])
    return shown + (f" and {len(tests) - NAMED} more" if len(tests) > NAMED else "")


def _by_model(pairs: Iterable[tuple[str, Call]]) -> dict[str, list[tuple[str, Call]]]:
    out: dict[str, list[tuple[str, Call]]] = {}
    for nodeid, call in pairs:
        out.setdefault(str(call["model"]), []).append((nodeid, call))
    return dict(sorted(out.items()))


def _tests_of(pairs: Iterable[tuple[str, Call]]) -> list[str]:
    return sorted({nodeid for nodeid, _ in pairs})


def _server(call: Call) -> ServerStats:
    stats = call.get("server") or {}
    return ServerStats(*(stats.get(name) for name in _SERVER_FIELDS))


def _found(rule: str, severity: str, message: str, **evidence: Any) -> Recommendation:
    return {"id": rule, "severity": severity, "message": message, "evidence": evidence}


def cold_loads(ev: Evidence) -> list[Recommendation]:
    """Tests whose calls to a model spent most of their time loading it."""
    per: dict[tuple[str, str], list[float]] = {}  # (model, test) -> [load, total]
    for nodeid, call in _calls(ev.tests):
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
    out: list[Recommendation] = []
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


def over_budget(ev: Evidence) -> list[Recommendation]:
    """Models whose calls went past per-call budgets in several calls."""
    judged: dict[str, int] = {}
    for _, call in _calls(ev.tests):
        judged[str(call["model"])] = judged.get(str(call["model"]), 0) + 1
    over: dict[str, dict[str, Any]] = {}
    for test in ev.tests:
        for violation in test.get("violations") or ():
            model = violation.get("model")
            if model is None:
                continue
            seen = over.setdefault(model, {"calls": set(), "tests": [], "budgets": set()})
            seen["calls"].add((test["nodeid"], violation.get("call")))
            seen["budgets"].add(violation["budget"])
            if test["nodeid"] not in seen["tests"]:
                seen["tests"].append(test["nodeid"])
    out: list[Recommendation] = []
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


def uncached_repeats(ev: Evidence) -> list[Recommendation]:
    """The same request sent more than once while the cache could not answer it.

    A test that runs its body again by design (``runs=N``, pytest-benchmark's rounds) repeats
    its requests on purpose: those repeats don't count, only repeats across tests do.
    """
    by_design = {str(test["nodeid"]) for test in ev.tests if test.get("repeated")}
    groups: dict[tuple[str, str], list[tuple[str, Call]]] = {}
    for nodeid, call in _calls(ev.tests):
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


def near_limits(ev: Evidence) -> list[Recommendation]:
    """Models whose observed p99 comes close to the time limit their calls had."""
    per: dict[str, list[Call]] = {}
    for _, call in _calls(ev.tests):
        if call.get("outcome") == "ok" and call.get("limits") and not call.get("cache_hit"):
            per.setdefault(str(call["model"]), []).append(call)
    out: list[Recommendation] = []
    for model, calls in sorted(per.items()):
        if len(calls) < 5:
            continue
        for phase, field in (("total", "total_s"), ("first_token", "ttft_s")):
            # the first-token limit applies to streams only: a whole answer's first token
            # comes with its last
            judged = [c for c in calls if phase == "total" or c.get("stream")]
            taken = (c["total_s"] if phase == "total" else c["ttft_s"] for c in judged)
            values = [float(v) for v in taken if v is not None]
            limits = [
                float(c["limits"][phase]) for c in judged if c["limits"] and c["limits"].get(phase)
            ]
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


def failures(ev: Evidence) -> list[Recommendation]:
    """Calls that timed out or failed, per model."""
    per: dict[str, dict[str, Any]] = {}
    for nodeid, call in _calls(ev.tests):
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
    out: list[Recommendation] = []
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


def fallbacks(ev: Evidence) -> list[Recommendation]:
    """Calls that were answered by a faster tier after a timeout."""
    moved: dict[tuple[str, str], list[str]] = {}
    for nodeid, call in _calls(ev.tests):
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


def far_limits(ev: Evidence) -> list[Recommendation]:
    """Models whose calls had a total limit far above what they take, under fixed limits.

    With adaptive timeouts on, the limits follow the calls by themselves: nothing to say.
    """
    if ev.settings.get("adaptive_timeouts", False):
        return []
    out = []
    for model, pairs in _by_model(ev.worked()).items():
        calls = sorted(
            (
                c
                for _, c in pairs
                if c.get("outcome") == "ok" and (c.get("limits") or {}).get("total")
            ),
            key=lambda c: float(c.get("started_at") or 0.0),
        )
        if len(calls) < 5:
            continue
        p99 = quantile([float(c["total_s"]) for c in calls], 0.99)
        limit = float((calls[-1]["limits"] or {})["total"])  # the one in force at the end
        if p99 <= 0 or limit <= FAR_LIMIT * p99 or limit <= FLOOR.total:
            continue
        fit, tier = max(3 * p99, FLOOR.total), calls[-1].get("tier") or "TIER"
        out.append(
            _found(
                "timeout-far-above-p99",
                "info",
                f"{model}'s calls take {p99:.3g} s (p99 of {len(calls)}) and may take "
                f"{limit:g} s ({limit / p99:.0f}x) before their total limit stops them: a "
                f"stuck call wastes that long; lower the limit to about {fit:.2g} s "
                f"(--llm-timeout '{tier}: total={fit:.2g}') or turn adaptive timeouts on "
                "(--llm-adaptive-timeouts on)",
                model=model,
                p99_s=p99,
                limit_s=limit,
                calls=len(calls),
                tests=_tests_of(pairs),
            )
        )
    return out


def _tier_needed(call: Call) -> str | None:
    """The tier the auto policy gives a call of this size; None without the token counts."""
    prompt, output = _server(call).prompt_eval_count, call.get("output_tokens")
    if prompt is None or output is None:
        return None
    return TierPolicy().choose(int(prompt) * 4, int(output))


def _large_models(ev: Evidence) -> set[str]:
    sized = ((m.get("name"), billions(m.get("parameter_size"))) for m in ev.loaded())
    return {str(name) for name, size in sized if size is not None and size >= LARGE_BILLIONS}


def smaller_models(ev: Evidence) -> list[Recommendation]:
    """A slower tier's (or a large) model used for short prompts with short answers."""
    large = _large_models(ev)
    groups: dict[tuple[str, str], list[tuple[str, Call]]] = {}
    for nodeid, call in _calls(ev.tests):
        model = str(call["model"])
        tier = str(call.get("tier") or ("complex" if model in large else ""))
        if tier in ORDER[1:] and not call.get("cache_hit"):
            groups.setdefault((model, tier), []).append((nodeid, call))
    out = []
    for (model, tier), pairs in sorted(groups.items()):
        simple = [(n, c) for n, c in pairs if _tier_needed(c) in ORDER[: ORDER.index(tier)]]
        if len(simple) < SEVERAL:
            continue
        wanted = max((str(_tier_needed(c)) for _, c in simple), key=ORDER.index)
        prompts = max(int(_server(c).prompt_eval_count or 0) for _, c in simple)
        answers = max(int(c["output_tokens"] or 0) for _, c in simple)
        out.append(
            _found(
                "smaller-model",
                "info",
                f"{len(simple)} of {len(pairs)} calls to {model} (tier {tier}) were small "
                f"enough for the {wanted} tier (prompts up to {prompts} tokens, answers up to "
                f"{answers}), in {_names(_tests_of(simple))}: tier='{wanted}' (or "
                f"tier='auto') would likely serve them faster; keep {model} for the tasks "
                "that need it",
                model=model,
                tier=tier,
                calls=len(pairs),
                simple_calls=len(simple),
                seconds=sum(float(c["total_s"]) for _, c in simple),
                suggested_tier=wanted,
                max_prompt_tokens=prompts,
                max_output_tokens=answers,
                tests=_tests_of(simple),
            )
        )
    return out


def _on_the_emulator(ev: Evidence, call: Call) -> bool:
    hosts = tuple(ev.settings.get("hosts") or ())
    return hosts == ("emulator",) and call.get("source", "llmperf") == "llmperf"


def live_in_ci(ev: Evidence) -> list[Recommendation]:
    """Live calls to a real server in CI, in a run that does not measure on purpose.

    Calls our client sent to the embedded emulator cost no server and are left out; a run
    gated on a baseline measures live latency on purpose and is left alone.
    """
    if not ev.run.get("ci") or ev.settings.get("baseline") is not None:
        return []
    live = [(n, c) for n, c in ev.worked() if not _on_the_emulator(ev, c)]
    if not live:
        return []
    seconds = sum(float(c["total_s"]) for _, c in live)
    hosts = sorted({str(c.get("host")) for _, c in live})
    return [
        _found(
            "live-calls-in-ci",
            "warning",
            f"{len(live)} calls went to a live server in CI ({seconds:.3g} s, {', '.join(hosts)})"
            f", in {_names(_tests_of(live))}: record them once with cassettes "
            "(@pytest.mark.llm_cassette, --llm-record-mode once) and replay them in CI, "
            "where they cost no server and give the same answers every time",
            calls=len(live),
            seconds=seconds,
            hosts=hosts,
            tests=_tests_of(live),
        )
    ]


def _unloads(call: Call) -> bool:
    """An unload call; at the transport (which cannot read the request's ``keep_alive``), a
    call that neither loaded nor generated anything may be one and is taken for one."""
    if call.get("purpose") == "unload":
        return True
    stats = _server(call)
    idle = not call.get("output_tokens") and not stats.eval_count and not stats.load_s
    return call.get("source", "llmperf") != "llmperf" and call.get("outcome") == "ok" and idle


def _cold_calls(ev: Evidence) -> dict[tuple[str, str], list[tuple[str, Call]]]:
    """Per model and host, in time order, its cold loads and its unload calls."""
    every = [
        (str(t["nodeid"]), c)
        for t in ev.tests
        for c in t.get("calls") or ()
        if c.get("timing", "live") == "live" and not c.get("cache_hit")
    ]
    every.sort(key=lambda pair: float(pair[1].get("started_at") or 0.0))
    most: dict[tuple[str, str], float] = {}
    for _, call in every:
        key = (str(call["model"]), str(call.get("host")))
        most[key] = max(most.get(key, 0.0), _server(call).load_s or 0.0)
    out: dict[tuple[str, str], list[tuple[str, Call]]] = {}
    for nodeid, call in every:
        key, load = (str(call["model"]), str(call.get("host"))), _server(call).load_s or 0.0
        cold = load > 0 and load >= 0.5 * most[key] and load >= COLD_SHARE * float(call["total_s"])
        if cold or _unloads(call):
            out.setdefault(key, []).append((nodeid, call))
    return out


def _reloads(events: Sequence[tuple[str, Call]]) -> list[tuple[str, Call]]:
    """The cold loads after the first that no unload call asked for."""
    reloads: list[tuple[str, Call]] = []
    ended: float | None = None  # when the call of the last load ended
    asked = False
    for nodeid, call in events:
        if _unloads(call):
            asked = True
            continue
        start = float(call.get("started_at") or 0.0)
        if ended is not None and start < ended:
            continue  # it overlaps the last load: it waited for that one
        if ended is not None and not asked:
            reloads.append((nodeid, call))
        ended, asked = start + float(call["total_s"]), False
    return reloads


def keep_alive(ev: Evidence) -> list[Recommendation]:
    """A model loaded cold more than once in a run, on one host: it was unloaded in between."""
    out = []
    for (model, host), events in sorted(_cold_calls(ev).items()):
        reloads = _reloads(events)
        if not reloads:
            continue
        seconds = sum(_server(c).load_s or 0.0 for _, c in reloads)
        setting = ev.settings.get("keep_alive")
        now = f", now {setting}" if setting else ""
        out.append(
            _found(
                "keep-alive",
                "warning",
                f"{model} had to be loaded again {len(reloads)} times in this run, with no "
                f"unload call before ({seconds:.3g} s loading), in {_names(_tests_of(reloads))}"
                f": the server unloaded it in between; keep it loaded longer "
                f"(--llm-keep-alive{now}, or OLLAMA_KEEP_ALIVE on the server), or if several "
                "models take turns, let the server hold more of them (OLLAMA_MAX_LOADED_MODELS)",
                model=model,
                host=host,
                reloads=len(reloads),
                reload_s=seconds,
                keep_alive=setting,
                tests=_tests_of(reloads),
            )
        )
    return out


def _use(ev: Evidence, model: str) -> dict[str, Any]:
    pairs = [(n, c) for n, c in ev.worked() if c["model"] == model]
    return {"calls": len(pairs), "seconds": sum(float(c["total_s"]) for _, c in pairs)}


def gpu_offload(ev: Evidence) -> list[Recommendation]:
    """Models the server holds partly or wholly outside GPU memory (/api/ps)."""
    out = []
    for entry in ev.loaded():
        size, vram = entry.get("size"), entry.get("size_vram")
        if not size or vram is None or vram >= size:
            continue
        name, share = str(entry["name"]), vram / size
        where = (
            "runs entirely on the CPU"
            if vram == 0
            else f"has only {share:.0%} of itself in GPU memory; the rest runs on the CPU"
        )
        out.append(
            _found(
                "gpu-offload",
                "warning",
                f"{name} {where} (/api/ps: size_vram {vram} of {size} bytes), which slows "
                "every token: run it where a GPU can hold it, free GPU memory (fewer models "
                "loaded at once, a smaller num_ctx), or use a smaller or more quantized model "
                "that fits",
                model=name,
                size=size,
                size_vram=vram,
                gpu_share=round(share, 4),
                **_use(ev, name),
            )
        )
    return out


def queueing(ev: Evidence) -> list[Recommendation]:
    """Calls that spent a large share of their time waiting for the server."""
    out = []
    for model, pairs in _by_model(ev.worked()).items():
        waits = [(n, c, split(float(c["total_s"]), _server(c)).waiting_s) for n, c in pairs]
        measured = [(n, c, w) for n, c, w in waits if _server(c).total_s is not None]
        queued = [
            (n, c, w)
            for n, c, w in measured
            if w >= WAIT_S and w >= WAIT_SHARE * float(c["total_s"])
        ]
        if len(queued) < SEVERAL or len(queued) < WAIT_SHARE * len(measured):
            continue
        waited = sum(w for _, _, w in queued)
        tests = _tests_of((n, c) for n, c, _ in queued)
        out.append(
            _found(
                "server-queueing",
                "warning",
                f"{len(queued)} of {len(measured)} calls to {model} spent over "
                f"{WAIT_SHARE:.0%} of their time waiting for the server ({waited:.3g} s in "
                f"all), in {_names(tests)}: spread them over several servers (--llm-host, "
                "once per server), let the server run more at once (OLLAMA_NUM_PARALLEL), or "
                "send fewer at a time (--llm-concurrency)",
                model=model,
                calls=len(measured),
                queued_calls=len(queued),
                waiting_s=waited,
                total_s=sum(float(c["total_s"]) for _, c, _ in measured),
                tests=tests,
            )
        )
    return out


def no_baseline(ev: Evidence) -> list[Recommendation]:
    """A run with many live calls that nothing compares with an earlier run."""
    if "baseline" not in ev.settings or ev.settings["baseline"] is not None:
        return []
    live = sum(1 for _ in ev.worked())
    if live < MANY_CALLS:
        return []
    return [
        _found(
            "no-baseline",
            "info",
            f"{live} live LLM calls were measured and compared with nothing: keep a report "
            "of a good run (--llm-report baseline.json) and gate later runs on it "
            "(--llm-baseline baseline.json), so a slowdown fails CI instead of going "
            "unnoticed",
            calls=live,
        )
    ]


def long_prompts(ev: Evidence) -> list[Recommendation]:
    """Models whose calls spent most of their time reading the prompt."""
    out = []
    for model, pairs in _by_model(ev.worked()).items():
        read = [(n, c) for n, c in pairs if _server(c).prompt_eval_s is not None]
        prompt = sum(float(_server(c).prompt_eval_s or 0.0) for _, c in read)
        total = sum(float(c["total_s"]) for _, c in read)
        if len(read) < SEVERAL or total <= 0 or prompt / total <= PROMPT_SHARE:
            continue
        tokens = sum(int(_server(c).prompt_eval_count or 0) for _, c in read) / len(read)
        heavy = [
            (n, c)
            for n, c in read
            if float(_server(c).prompt_eval_s or 0.0) > PROMPT_SHARE * float(c["total_s"])
        ]
        out.append(
            _found(
                "long-prompts",
                "warning",
                f"calls to {model} spent {prompt / total:.0%} of their time reading prompts "
                f"(mean {tokens:.0f} tokens), in {_names(_tests_of(heavy))}: shorten them "
                "(trim the instructions, examples and context sent), keep a shared beginning "
                "the same from call to call so the server can reuse it, or send long inputs "
                "to a faster tier",
                model=model,
                calls=len(read),
                prompt_s=prompt,
                total_s=total,
                prompt_share=round(prompt / total, 4),
                mean_prompt_tokens=tokens,
                tests=_tests_of(heavy),
            )
        )
    return out


def _sequential(calls: Sequence[Call]) -> bool:
    """Each call started after the one before it ended."""
    spans = sorted((float(c["started_at"]), float(c["total_s"])) for c in calls)
    pairs = itertools.pairwise(spans)
    return all(start >= prev + took - 1e-3 for (prev, took), (start, _) in pairs)


def sequential_calls(ev: Evidence) -> list[Recommendation]:
    """Tests that made several calls one after another where the server could run them at once.

    The server could when the server section says ``num_parallel`` > 1, or when the run
    spread calls over several hosts; without that evidence the rule stays silent. Tests that
    repeat their body by design are left out. Whether the calls needed each other's answers
    the records cannot tell: the advice is conditional.
    """
    parallel = int((ev.server or {}).get("num_parallel") or 1)
    hosts = len(tuple(ev.settings.get("hosts") or ()))
    capacity = parallel * max(hosts, 1)
    if capacity < 2:
        return []
    by_design = {str(test["nodeid"]) for test in ev.tests if test.get("repeated")}
    per_test: dict[str, list[Call]] = {}
    for nodeid, call in ev.worked():
        if nodeid not in by_design:
            per_test.setdefault(nodeid, []).append(call)
    found: list[dict[str, Any]] = []
    for nodeid, calls in sorted(per_test.items()):
        if len(calls) >= SEVERAL and _sequential(calls):
            seconds = sum(float(c["total_s"]) for c in calls)
            found.append({"nodeid": nodeid, "calls": len(calls), "seconds": seconds})
    if not found:
        return []
    return [
        _found(
            "sequential-calls",
            "info",
            f"{len(found)} tests made their calls one after another "
            f"({sum(f['calls'] for f in found)} calls, {sum(f['seconds'] for f in found):.3g} "
            f"s), while the server could run {capacity} at once, in "
            f"{_names([f['nodeid'] for f in found])}: if they don't need each other's "
            "answers, send them together (client.many([...]), or asyncio.gather with the "
            "async client)",
            num_parallel=parallel,
            hosts=hosts,
            tests=found,
        )
    ]


def _slowness(ev: Evidence, model: str) -> list[str]:
    """What says ``model`` was slow in this run."""
    calls = [c for _, c in ev.worked() if c["model"] == model]
    speeds = [float(c["tokens_per_s"] or 0.0) for c in calls if c.get("tokens_per_s")]
    why = []
    if speeds and sum(speeds) / len(speeds) < SLOW_TOKENS_PER_S:
        why.append(f"{sum(speeds) / len(speeds):.3g} tokens/s")
    if any(c.get("outcome") == "timeout" for c in calls):
        why.append("calls timed out")
    if any(v.get("model") == model for t in ev.tests for v in t.get("violations") or ()):
        why.append("calls went past their budgets")
    return why


def quantization(ev: Evidence) -> list[Recommendation]:
    """Unquantized models, or large ones at 8 bits or more, that were slow in this run."""
    out = []
    for entry in ev.loaded():
        name, level = str(entry["name"]), entry.get("quantization_level")
        width, size = bits(level), billions(entry.get("parameter_size"))
        heavy = width is not None and (
            width >= 16 or (width >= 8 and size is not None and size >= LARGE_BILLIONS)
        )
        why = _slowness(ev, name) if heavy else []
        if not why:
            continue
        out.append(
            _found(
                "quantization",
                "warning",
                f"{name} runs at {level} ({entry.get('parameter_size') or 'size unknown'}) "
                f"and was slow here ({', '.join(why)}): a 4-bit quantization of the same "
                "model (a q4_K_M tag) needs a fraction of the memory and is usually much "
                "faster, for a small loss of quality; or use a smaller model",
                model=name,
                quantization_level=level,
                parameter_size=entry.get("parameter_size"),
                slow=why,
                **_use(ev, name),
            )
        )
    return out


def adaptive_off(ev: Evidence) -> list[Recommendation]:
    """Calls that timed out under fixed limits, with adaptive timeouts turned off."""
    if ev.settings.get("adaptive_timeouts", True) is not False:
        return []
    timed_out = [(n, c) for n, c in _calls(ev.tests) if c.get("outcome") == "timeout"]
    if not timed_out:
        return []
    waited = sum(float(c["total_s"]) for _, c in timed_out)
    return [
        _found(
            "adaptive-timeouts-off",
            "warning",
            f"{len(timed_out)} calls timed out under fixed limits ({waited:.3g} s waiting), "
            f"in {_names(_tests_of(timed_out))}: turn adaptive timeouts on "
            "(--llm-adaptive-timeouts on) so a stuck call fails after about 3x its model's "
            "usual time rather than the tier's whole limit; if the calls are simply slower "
            "than the tier allows, raise its limit (--llm-timeout)",
            timeouts=len(timed_out),
            waited_s=waited,
            tests=_tests_of(timed_out),
        )
    ]


Rule = Callable[[Evidence], list[Recommendation]]

# Every rule, in the order they are reported within a severity.
RULES: tuple[Rule, ...] = (
    failures,
    cold_loads,
    keep_alive,
    over_budget,
    near_limits,
    far_limits,
    adaptive_off,
    uncached_repeats,
    live_in_ci,
    gpu_offload,
    quantization,
    queueing,
    long_prompts,
    smaller_models,
    sequential_calls,
    fallbacks,
    no_baseline,
)

# The rules whose evidence one test's calls can hold, in the order a budget's hint tries them.
FOR_ONE_TEST: tuple[Rule, ...] = (cold_loads, uncached_repeats, queueing, long_prompts)


def for_one_test(nodeid: str, calls: Sequence[Call]) -> list[Recommendation]:
    """What the rules that can judge one test's calls find in them (a budget's hint)."""
    evidence = Evidence([{"nodeid": nodeid, "calls": list(calls)}])
    return [item for rule in FOR_ONE_TEST for item in rule(evidence)]


def recommend(
    tests: Sequence[Test],
    *,
    run: Mapping[str, Any] | None = None,
    server: Mapping[str, Any] | None = None,
) -> list[Recommendation]:
    """Every rule's recommendations, errors first.

    ``run`` is the report's run section (its ``settings`` and ``ci``); ``server`` its
    optional server section. The rules that need them stay silent without them.
    """
    evidence = Evidence(tests, run or {}, server)
    found = [item for rule in RULES for item in rule(evidence)]
    return sorted(found, key=lambda item: SEVERITIES.index(item["severity"]))
