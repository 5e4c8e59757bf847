"""The public names: a change to them is a deliberate change to this test."""

from __future__ import annotations

import pytest_llmperf


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
