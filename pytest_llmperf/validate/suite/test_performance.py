"""Performance: where the time goes, and what each optimization saves, measured side by side.

Every figure comes from the call records (the client's clock, the server's durations) or
from a wall clock around a batch; each optimization is measured before and after in the
same scenario, on the same server, with requests of the same size (``num_predict`` fixes the
answer's length; distinct seeds keep the cache out of what must reach the server).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from pytest_llmperf import OllamaClient, Recorder
from pytest_llmperf.client.tiers import ORDER
from pytest_llmperf.client.timeouts import TIER_LIMITS, AdaptiveTimeouts, Limits
from pytest_llmperf.errors import LLMTimeoutError
from pytest_llmperf.observe.records import CallRecord
from pytest_llmperf.validate.suite.conftest import Measured, Target

PROMPT = "Explain in one sentence why the sky is blue."
LENGTH = 8  # output tokens of every measured call
FAST_BUDGET = {"total": 2.0, "ttft": 1.0}  # the fast tier's, in real seconds
STALL_CALLS = 12  # streamed calls that teach the adaptive timeouts the fast tier's pace
BALANCED_CALLS = 8  # requests sent at once to one host, then to the pool...
BALANCED_LENGTH = 4 * LENGTH  # ...of the balanced tier's pace and up to this length, so
BALANCING_TIER = "balanced"  # that the servers' work outweighs the client's own
# A call sent with many others waits its turn at the server: batches are judged on their
# throughput, so each of their calls may take as long as the most patient tier allows.
QUEUED = TIER_LIMITS["complex"]


def _options(seed: int, length: int = LENGTH) -> dict[str, Any]:
    return {"num_predict": length, "seed": seed, "temperature": 0}


def _ask(
    client: OllamaClient,
    calls: Recorder,
    tier: str,
    seed: int,
    *,
    stream: bool = False,
    timeout: Limits | None = None,
    length: int = LENGTH,
) -> CallRecord:
    """One uncached call; its record."""
    if stream:
        chunks = client.generate(
            tier=tier,
            prompt=PROMPT,
            options=_options(seed, length),
            cache=False,
            stream=True,
            timeout=timeout,
        )
        for _chunk in chunks:
            pass
    else:
        client.generate(
            tier=tier, prompt=PROMPT, options=_options(seed, length), cache=False, timeout=timeout
        )
    return calls.records[-1]


def _client(
    hosts: str | list[str],
    target: Target,
    calls: Recorder,
    *,
    timeouts: AdaptiveTimeouts | None = None,
    headers: dict[str, str] | None = None,
) -> OllamaClient:
    """A client of our own (on the test's records), where the fixture's will not do."""
    return OllamaClient(
        hosts,
        tiers=target.tiers,
        timeouts=timeouts,
        headers=headers,
        on_record=calls,
        concurrency=BALANCED_CALLS,
    )


def _wall(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _load(record: CallRecord) -> float:
    return float(record.server.load_s or 0.0)


@pytest.mark.parametrize("tier", ORDER)
@pytest.mark.scenario_budget(total=TIER_LIMITS["complex"].total)
def test_cold_and_warm(
    tier: str, ollama_client: OllamaClient, llm_calls: Recorder, target: Target, measured: Measured
) -> None:
    """Each tier cold and warm: the load time, and what warming up saves"""
    target.need(tier)
    model = target.model(tier)
    ollama_client.unload(model)
    cold = _ask(ollama_client, llm_calls, tier, seed=1)
    warm = _ask(ollama_client, llm_calls, tier, seed=2)
    measured.record(
        model=model, cold_s=cold.total_s, warm_s=warm.total_s, load_s=_load(cold), tier=tier
    )
    assert cold.outcome == warm.outcome == "ok"
    assert warm.total_s < cold.total_s, (
        f"{model} answered as fast cold ({cold.total_s:.3f} s) as warm ({warm.total_s:.3f} s): "
        "did the unload (keep_alive 0) not take?"
    )
    measured.optimization(f"warm-up ({tier}: {model})", cold.total_s, warm.total_s, tier=tier)


@pytest.mark.scenario_budget(**FAST_BUDGET)
def test_fast_tier_within_budget(
    ollama_client: OllamaClient, llm_calls: Recorder, target: Target, measured: Measured
) -> None:
    """The fast tier answers within its budget, warm"""
    target.need("fast")
    ollama_client.warm_up([target.model("fast")])
    records = [_ask(ollama_client, llm_calls, "fast", seed=10 + i, stream=True) for i in range(3)]
    measured.record(
        total_s=[r.total_s for r in records], ttft_s=[r.ttft_s for r in records], budget=FAST_BUDGET
    )


@pytest.mark.scenario_budget(total=FAST_BUDGET["total"])
def test_cache_answers_a_repeat(
    ollama_client: OllamaClient, llm_calls: Recorder, target: Target, measured: Measured
) -> None:
    """A repeated request comes from the cache"""
    target.need("fast")
    ollama_client.warm_up([target.model("fast")])
    prompt = f"{PROMPT} ({time.time_ns()})"  # a request no earlier run has cached
    for _ in range(2):
        ollama_client.generate(tier="fast", prompt=prompt, options=_options(20))
    first, again = llm_calls.records[-2:]
    assert first.cache == "miss", f"the first call was {first.cache}, not a miss"
    assert again.cache_hit, f"the repeat was {again.cache}, not a cache hit"
    measured.record(miss_s=first.total_s, hit_s=again.total_s, hit=again.cache)
    measured.optimization("response cache (a repeat)", first.total_s, again.total_s)


@pytest.mark.parametrize("count", [5, 50])
def test_concurrent_requests(
    count: int, ollama_client: OllamaClient, llm_calls: Recorder, target: Target, measured: Measured
) -> None:
    """Concurrent requests against one after another"""
    target.need("fast")
    ollama_client.warm_up([target.model("fast")])
    seeds = iter(range(100 * count, 102 * count))

    def one() -> CallRecord:
        return _ask(ollama_client, llm_calls, "fast", next(seeds), timeout=QUEUED)

    sequential = _wall(lambda: [one() for _ in range(count)])
    outcomes: list[Any] = []
    together = _wall(lambda: outcomes.extend(ollama_client.many([one] * count, concurrency=count)))
    failed = [o.error for o in outcomes if not o.ok]
    assert not failed, f"{len(failed)} of {count} concurrent calls failed: {failed[0]!r}"
    measured.record(count=count, sequential_s=sequential, concurrent_s=together)
    measured.optimization(f"concurrency ({count} requests)", sequential, together, requests=count)


@pytest.mark.xfail(
    strict=True,
    raises=pytest.fail.Exception,
    reason="an unoptimized call: the complex tier, cold, held to the fast tier's budget",
)
@pytest.mark.scenario_budget(total=FAST_BUDGET["total"], tight=True, tier="complex")
def test_complex_tier_cold_under_a_tight_budget(
    ollama_client: OllamaClient, llm_calls: Recorder, target: Target, measured: Measured
) -> None:
    """The complex tier cold under the fast tier's budget"""
    target.need("complex")
    model = target.model("complex")
    ollama_client.unload(model)
    record = _ask(ollama_client, llm_calls, "complex", seed=30)
    measured.record(model=model, total_s=record.total_s, load_s=_load(record))


@pytest.mark.scenario_budget(total=TIER_LIMITS["complex"].total, tier="complex")
def test_faster_tier(
    ollama_client: OllamaClient, llm_calls: Recorder, target: Target, measured: Measured
) -> None:
    """The same request on the complex tier and on the fast tier, both warm"""
    target.need("fast", "complex")
    ollama_client.warm_up([target.model("complex"), target.model("fast")])
    slow = _ask(ollama_client, llm_calls, "complex", seed=40)
    fast = _ask(ollama_client, llm_calls, "fast", seed=41)
    measured.record(complex_s=slow.total_s, fast_s=fast.total_s)
    measured.optimization(f"faster tier ({slow.model} -> {fast.model})", slow.total_s, fast.total_s)


@pytest.mark.scenario_injects_faults
def test_stall_caught_by_the_adaptive_timeout(
    llm_calls: Recorder, target: Target, measured: Measured
) -> None:
    """A stalled stream is cut by the adaptive timeout, well within the tier's limit"""
    target.need("fast")
    if not target.fault_injection:
        pytest.skip("needs fault injection (X-Llmperf-Fault), which only the emulator takes")
    ceiling = TIER_LIMITS["fast"]
    fault = {"X-Llmperf-Fault": f"stall; after=2; seconds={2 * ceiling.stall:g}"}
    timeouts = AdaptiveTimeouts()  # learns the fast tier's pace from the calls below
    with (
        _client(target.url, target, llm_calls, timeouts=timeouts) as client,
        _client(target.url, target, llm_calls, timeouts=timeouts, headers=fault) as stalling,
    ):
        client.warm_up([target.model("fast")])
        for seed in range(50, 50 + STALL_CALLS):
            _ask(client, llm_calls, "fast", seed, stream=True)
        limit = timeouts.limits(target.model("fast"), "fast").stall
        started = time.perf_counter()
        with pytest.raises(LLMTimeoutError) as caught:
            _ask(stalling, llm_calls, "fast", seed=70, stream=True)
        waited = time.perf_counter() - started
    measured.record(stall_limit_s=limit, tier_stall_limit_s=ceiling.stall, waited_s=waited)
    assert caught.value.phase == "stall", f"timed out in {caught.value.phase}, not in a stall"
    assert caught.value.limit == limit < ceiling.stall
    assert waited < ceiling.stall, f"the stall took {waited:.3f} s to catch"


@pytest.mark.scenario_injects_faults  # a first-token limit set below a cold load on purpose
def test_timeout_answered_by_a_faster_tier(
    ollama_client: OllamaClient, llm_calls: Recorder, target: Target, measured: Measured
) -> None:
    """A call that times out on the complex tier is answered by a faster tier"""
    target.need("complex", "balanced")
    ollama_client.warm_up([target.model("balanced")])
    ready = _ask(ollama_client, llm_calls, "balanced", seed=80, stream=True)
    first_token = max(target.scaled(1.0), 3 * float(ready.ttft_s or ready.total_s))
    ollama_client.unload(target.model("complex"))
    limits = Limits(total=TIER_LIMITS["complex"].total, first_token=first_token, stall=15.0)
    chunks = list(
        ollama_client.generate(
            tier="complex",
            prompt=PROMPT,
            options=_options(81),
            stream=True,
            cache=False,
            fallback=True,
            timeout=limits,
        )
    )
    record = llm_calls.records[-1]
    measured.record(first_token_limit_s=first_token, answered_by=record.model)
    if not record.fallback_from:
        pytest.skip(
            f"{target.model('complex')} answered cold within {first_token:.3g} s: no timeout "
            "to fall back from"
        )
    assert chunks and chunks[-1].done
    assert record.tier in ("balanced", "fast") and record.outcome == "ok"


def test_balanced_over_hosts(
    ollama_client: OllamaClient, llm_calls: Recorder, target: Target, measured: Measured
) -> None:
    """Requests spread over several hosts against one host"""
    if len(target.hosts) < 2:
        pytest.skip("needs several targets (--target URL, repeated)")
    target.need(BALANCING_TIER)
    model = target.model(BALANCING_TIER)
    for host in target.hosts:
        with _client(host, target, llm_calls) as one:
            one.warm_up([model])
    seeds = iter(range(200, 200 + 4 * BALANCED_CALLS))

    def batch(client: OllamaClient) -> float:
        def one() -> CallRecord:
            return _ask(
                client,
                llm_calls,
                BALANCING_TIER,
                next(seeds),
                timeout=QUEUED,
                length=BALANCED_LENGTH,
            )

        outcomes: list[Any] = []
        took = _wall(lambda: outcomes.extend(client.many([one] * BALANCED_CALLS)))
        failed = [o.error for o in outcomes if not o.ok]
        assert not failed, f"{len(failed)} calls failed: {failed[0]!r}"
        return took

    with _client(target.url, target, llm_calls) as single:
        alone = batch(single)
    with _client(target.hosts, target, llm_calls) as pool:
        spread = batch(pool)
    used = {r.host for r in llm_calls.records[-BALANCED_CALLS:]}
    measured.record(hosts=len(target.hosts), one_host_s=alone, pool_s=spread, used=len(used))
    assert len(used) == len(target.hosts), f"the pool sent its calls to {sorted(map(str, used))}"
    measured.optimization(
        f"balancing ({len(target.hosts)} hosts, {BALANCED_CALLS} requests)", alone, spread
    )
