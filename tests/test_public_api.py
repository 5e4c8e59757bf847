"""The public names: a change to them is a deliberate change to this test."""

from __future__ import annotations

import pytest_llmperf
from pytest_llmperf.plugin.settings import MOVED, OPTIONS


def test_public_names_are_pinned() -> None:
    assert sorted(pytest_llmperf.__all__) == [
        "AdaptiveTimeouts",
        "Answer",
        "AsyncOllamaClient",
        "Budget",
        "CacheStats",
        "CallRecord",
        "CassetteCutShortError",
        "CassetteError",
        "CassetteMismatchError",
        "CassetteSession",
        "ConfigurationError",
        "EmulatorApp",
        "EmulatorServer",
        "FaultSpecError",
        "GapSummary",
        "HostPool",
        "LLMBudgetWarning",
        "LLMConnectError",
        "LLMError",
        "LLMPerfError",
        "LLMServerError",
        "LLMStreamError",
        "LLMTimeoutError",
        "Limits",
        "ModelNotFoundError",
        "NetworkBlockedError",
        "OllamaClient",
        "Outcome",
        "ProfileError",
        "Recorder",
        "ResponseCache",
        "Settings",
        "TierPolicy",
        "Tiers",
        "__version__",
        "load_catalogue",
        "not_measured",
    ]
    for name in pytest_llmperf.__all__:
        assert getattr(pytest_llmperf, name) is not None


def test_option_spellings_are_pinned() -> None:
    """Each option's ini key, environment variable and flag (spelt by the one rule of
    ``plugin.settings``), and the old spellings still read; the README says what moved."""
    assert sorted(f"{o.ini} {o.env} {o.flag}" for o in OPTIONS) == [
        "llm_adaptive_timeouts LLMPERF_ADAPTIVE_TIMEOUTS --llm-adaptive-timeouts",
        "llm_allowed_hosts LLMPERF_ALLOWED_HOSTS --llm-allowed-host",
        "llm_api LLMPERF_API --llm-api",
        "llm_baseline LLMPERF_BASELINE --llm-baseline",
        "llm_baseline_alpha LLMPERF_BASELINE_ALPHA --llm-baseline-alpha",
        "llm_baseline_markdown LLMPERF_BASELINE_MARKDOWN --llm-baseline-markdown",
        "llm_baseline_mode LLMPERF_BASELINE_MODE --llm-baseline-mode",
        "llm_baseline_threshold LLMPERF_BASELINE_THRESHOLD --llm-baseline-threshold",
        "llm_block_network LLMPERF_BLOCK_NETWORK --llm-block-network",
        "llm_budget_mode LLMPERF_BUDGET_MODE --llm-budget-mode",
        "llm_budgets LLMPERF_BUDGETS --llm-budget",
        "llm_cache LLMPERF_CACHE --llm-cache",
        "llm_cache_namespace LLMPERF_CACHE_NAMESPACE --llm-cache-namespace",
        "llm_cache_ttl LLMPERF_CACHE_TTL --llm-cache-ttl",
        "llm_cassette_dir LLMPERF_CASSETTE_DIR --llm-cassette-dir",
        "llm_concurrency LLMPERF_CONCURRENCY --llm-concurrency",
        "llm_emulator_gguf LLMPERF_EMULATOR_GGUF --llm-emulator-gguf",
        "llm_emulator_profiles LLMPERF_EMULATOR_PROFILES --llm-emulator-profiles",
        "llm_emulator_time_scale LLMPERF_EMULATOR_TIME_SCALE --llm-emulator-time-scale",
        "llm_enabled LLMPERF_ENABLED --llm-enabled",
        "llm_fallback LLMPERF_FALLBACK --llm-fallback",
        "llm_hosts LLMPERF_HOSTS --llm-host",
        "llm_keep_alive LLMPERF_KEEP_ALIVE --llm-keep-alive",
        "llm_max_line_bytes LLMPERF_MAX_LINE_BYTES --llm-max-line-bytes",
        "llm_measure LLMPERF_MEASURE --llm-measure",
        "llm_record_mode LLMPERF_RECORD_MODE --llm-record-mode",
        "llm_replay_timing LLMPERF_REPLAY_TIMING --llm-replay-timing",
        "llm_report LLMPERF_REPORT --llm-report",
        "llm_report_dir LLMPERF_REPORT_DIR --llm-report-dir",
        "llm_report_keep LLMPERF_REPORT_KEEP --llm-report-keep",
        "llm_retries LLMPERF_RETRIES --llm-retries",
        "llm_route_prefixes LLMPERF_ROUTE_PREFIXES --llm-route-prefix",
        "llm_scrub_headers LLMPERF_SCRUB_HEADERS --llm-scrub-header",
        "llm_scrub_query LLMPERF_SCRUB_QUERY --llm-scrub-query",
        "llm_tiers LLMPERF_TIERS --llm-tier",
        "llm_timeouts LLMPERF_TIMEOUTS --llm-timeout",
    ]
    assert sorted(f"{m.old} -> {m.new}" for m in MOVED) == [
        "LLMPERF_HOST -> LLMPERF_HOSTS",
        "llm_host -> llm_hosts",
    ]


def test_errors_are_also_the_builtin_kinds() -> None:
    assert issubclass(pytest_llmperf.LLMConnectError, ConnectionError)
    assert issubclass(pytest_llmperf.LLMTimeoutError, TimeoutError)
    for name in (
        "LLMConnectError",
        "ModelNotFoundError",
        "LLMServerError",
        "LLMStreamError",
        "LLMTimeoutError",
    ):
        assert issubclass(getattr(pytest_llmperf, name), pytest_llmperf.LLMError)
