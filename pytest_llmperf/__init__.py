"""pytest-llmperf: test applications that call a local LLM server, offline and on a budget.

The public names load on first use, so that the pytest plugin, which imports this package,
costs a suite that makes no LLM calls almost nothing (httpx, uvicorn, vcrpy and redis load
only when a test needs them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_WHERE = {
    "AdaptiveTimeouts": "client.timeouts",
    "Answer": "client.faces",
    "AsyncOllamaClient": "client.faces",
    "Budget": "judge.budget",
    "CacheStats": "client.cache",
    "CallRecord": "observe.records",
    "CassetteCutShortError": "observe.cassettes",
    "CassetteError": "observe.cassettes",
    "CassetteMismatchError": "observe.cassettes",
    "CassetteSession": "observe.cassettes",
    "ConfigurationError": "errors",
    "EmulatorApp": "emulator",
    "EmulatorServer": "emulator",
    "FaultSpecError": "errors",
    "GapSummary": "observe.records",
    "HostPool": "client.hosts",
    "LLMBudgetWarning": "errors",
    "LLMConnectError": "errors",
    "LLMError": "errors",
    "LLMPerfError": "errors",
    "LLMServerError": "errors",
    "LLMStreamError": "errors",
    "LLMTimeoutError": "errors",
    "Limits": "client.timeouts",
    "ModelNotFoundError": "errors",
    "NetworkBlockedError": "errors",
    "OllamaClient": "client.faces",
    "Outcome": "client.faces",
    "ProfileError": "errors",
    "Recorder": "observe.records",
    "ResponseCache": "client.cache",
    "Settings": "plugin.settings",
    "TierPolicy": "client.tiers",
    "Tiers": "client.tiers",
    "load_catalogue": "emulator",
    "not_measured": "observe",
}

__all__ = [
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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_llmperf' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pytest_llmperf.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from pytest_llmperf.client.cache import CacheStats, ResponseCache
    from pytest_llmperf.client.faces import Answer, AsyncOllamaClient, OllamaClient, Outcome
    from pytest_llmperf.client.hosts import HostPool
    from pytest_llmperf.client.tiers import TierPolicy, Tiers
    from pytest_llmperf.client.timeouts import AdaptiveTimeouts, Limits
    from pytest_llmperf.emulator import EmulatorApp, EmulatorServer, load_catalogue
    from pytest_llmperf.errors import (
        ConfigurationError,
        FaultSpecError,
        LLMBudgetWarning,
        LLMConnectError,
        LLMError,
        LLMPerfError,
        LLMServerError,
        LLMStreamError,
        LLMTimeoutError,
        ModelNotFoundError,
        NetworkBlockedError,
        ProfileError,
    )
    from pytest_llmperf.judge.budget import Budget
    from pytest_llmperf.observe import not_measured
    from pytest_llmperf.observe.cassettes import (
        CassetteCutShortError,
        CassetteError,
        CassetteMismatchError,
        CassetteSession,
    )
    from pytest_llmperf.observe.records import CallRecord, GapSummary, Recorder
    from pytest_llmperf.plugin.settings import Settings
