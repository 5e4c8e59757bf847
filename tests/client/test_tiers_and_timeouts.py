"""Tier tables, the auto policy, fallback order, and the adaptive timeout rule."""

from __future__ import annotations

import pytest

from pytest_llmperf import AdaptiveTimeouts, ConfigurationError, Limits, TierPolicy, Tiers
from pytest_llmperf.client.timeouts import FLOOR, TIER_LIMITS


def test_default_tiers_and_overrides() -> None:
    tiers = Tiers.parse(["balanced = qwen2.5:3b", "huge=llama3:70b"])
    assert tiers.models == {
        "fast": "llama3.2:1b",
        "balanced": "qwen2.5:3b",
        "complex": "llama3:8b",
        "huge": "llama3:70b",
    }
    assert tiers.faster("complex") == ["balanced", "fast"]
    assert tiers.faster("fast") == []
    assert tiers.faster("huge") == []  # no known speed: no fallback, and never one
    assert tiers.tier_of("qwen2.5:3b") == "balanced"


@pytest.mark.parametrize("entry", ["fast", "=x", "fast=", "auto=m"])
def test_bad_tier_entries_are_refused(entry: str) -> None:
    with pytest.raises(ConfigurationError):
        Tiers.parse([entry])


def test_an_unknown_tier_lists_the_known_ones() -> None:
    with pytest.raises(
        ConfigurationError, match="unknown tier 'turbo': the tiers are fast, balanced, complex"
    ):
        Tiers().model("turbo")


@pytest.mark.parametrize(
    ("prompt_chars", "output_tokens", "tier"),
    [
        (100, None, "fast"),
        (100, 256, "fast"),
        (100, 257, "balanced"),
        (2000, None, "fast"),
        (2004, None, "balanced"),
        (8000, 10, "balanced"),
        (8004, 10, "complex"),
        (10, 2000, "complex"),
    ],
)
def test_the_auto_policy_sizes_the_task(
    prompt_chars: int, output_tokens: int | None, tier: str
) -> None:
    assert TierPolicy().choose(prompt_chars, output_tokens) == tier


def test_auto_reads_prompt_messages_and_num_predict() -> None:
    tiers = Tiers()
    assert tiers.pick("auto", {"prompt": "x" * 4000}) == "balanced"
    assert tiers.pick("auto", {"messages": [{"role": "user", "content": "x" * 9000}]}) == "complex"
    assert tiers.pick("auto", {"prompt": "hi", "options": {"num_predict": 300}}) == "balanced"


def test_limits_parse_and_refuse_nonsense() -> None:
    base = TIER_LIMITS["fast"]
    assert Limits.parse("total=3 stall=1.5", base) == Limits(total=3, first_token=5, stall=1.5)
    with pytest.raises(ConfigurationError, match="PHASE=SECONDS"):
        Limits.parse("ttft=3", base)
    with pytest.raises(ConfigurationError, match="above 0"):
        Limits(total=0, first_token=1, stall=1)


def feed(adaptive: AdaptiveTimeouts, model: str, series: list[tuple[float, float, float]]) -> None:
    for ttft, gap, total in series:
        adaptive.observe(model, ttft, gap, total)


def test_limits_stay_at_the_tier_until_enough_samples() -> None:
    adaptive = AdaptiveTimeouts(min_samples=10)
    feed(adaptive, "m", [(0.5, 0.1, 2.0)] * 9)
    assert adaptive.limits("m", "balanced") == TIER_LIMITS["balanced"]
    feed(adaptive, "m", [(0.5, 0.1, 2.0)])
    assert adaptive.limits("m", "balanced") == Limits(total=6.0, first_token=1.5, stall=0.5)


def test_limits_follow_a_high_percentile_clamped_between_floor_and_ceiling() -> None:
    adaptive = AdaptiveTimeouts(min_samples=10, factor=3.0, quantile=0.95)
    # 20 calls, ttft 0.1..2.0 s; the 95th percentile is 1.905 s
    series = [(0.1 * i, 0.05, 1.0 + 0.1 * i) for i in range(1, 21)]
    feed(adaptive, "m", series)
    limits = adaptive.limits("m", "complex")
    assert limits.first_token == pytest.approx(3 * 1.905)
    assert limits.total == pytest.approx(3 * 2.905)
    assert limits.stall == FLOOR.stall  # 3 * 0.05 = 0.15 is below the floor
    assert adaptive.limits("m", "fast").first_token == TIER_LIMITS["fast"].first_token


def test_the_ceiling_is_the_tier_limit() -> None:
    adaptive = AdaptiveTimeouts(min_samples=2)
    feed(adaptive, "m", [(9.0, 4.0, 30.0)] * 2)
    assert adaptive.limits("m", "fast") == TIER_LIMITS["fast"]


def test_a_slowing_model_widens_its_limits_within_the_window() -> None:
    adaptive = AdaptiveTimeouts(min_samples=5, window=10)
    feed(adaptive, "m", [(0.4, 0.1, 1.0)] * 10)
    narrow = adaptive.limits("m", "complex")
    feed(adaptive, "m", [(2.0, 0.5, 5.0)] * 10)
    wide = adaptive.limits("m", "complex")
    assert (narrow.first_token, wide.first_token) == (pytest.approx(1.2), pytest.approx(6.0))
    assert (narrow.total, wide.total) == (pytest.approx(3.0), pytest.approx(15.0))


def test_forgetting_a_model_returns_it_to_the_tier_limits() -> None:
    adaptive = AdaptiveTimeouts(min_samples=1)
    feed(adaptive, "m", [(0.1, 0.01, 0.2)])
    assert adaptive.adapted("m")
    adaptive.forget("m")
    assert adaptive.limits("m", "fast") == TIER_LIMITS["fast"]


def test_disabled_adaptation_keeps_the_tier_limits() -> None:
    adaptive = AdaptiveTimeouts(min_samples=1, enabled=False)
    feed(adaptive, "m", [(0.1, 0.01, 0.2)] * 5)
    assert adaptive.limits("m", "fast") == TIER_LIMITS["fast"]


def test_calls_that_were_not_streamed_adapt_only_the_total() -> None:
    adaptive = AdaptiveTimeouts(min_samples=10)
    for _ in range(10):
        adaptive.observe("m", None, None, 1.0)
    limits = adaptive.limits("m", "complex")
    assert limits.total == pytest.approx(3.0)
    assert (limits.first_token, limits.stall) == (30.0, 15.0)  # the tier's, unchanged
