"""pytest-llmperf: test applications that call a local LLM server, offline and on a budget."""

from __future__ import annotations

from pytest_llmperf.budget import Budget
from pytest_llmperf.cache import CacheStats, ResponseCache
from pytest_llmperf.cassettes import CassetteError, CassetteMismatchError, CassetteSession
from pytest_llmperf.client import Answer, AsyncOllamaClient, OllamaClient, Outcome
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
    ProfileError,
)
from pytest_llmperf.hosts import HostPool
from pytest_llmperf.records import CallRecord, GapSummary, Recorder
from pytest_llmperf.settings import Settings
from pytest_llmperf.tiers import TierPolicy, Tiers
from pytest_llmperf.timeouts import AdaptiveTimeouts, Limits

__version__ = "0.1.0"

__all__ = [
    "AdaptiveTimeouts",
    "Answer",
    "AsyncOllamaClient",
    "Budget",
    "CacheStats",
    "CallRecord",
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
]
