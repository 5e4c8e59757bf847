"""pytest-llmperf: test applications that call a local LLM server, offline and on a budget."""

from __future__ import annotations

from pytest_llmperf.emulator import EmulatorApp, EmulatorServer, load_catalogue
from pytest_llmperf.errors import (
    ConfigurationError,
    FaultSpecError,
    LLMPerfError,
    ProfileError,
)
from pytest_llmperf.settings import Settings

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "EmulatorApp",
    "EmulatorServer",
    "FaultSpecError",
    "LLMPerfError",
    "ProfileError",
    "Settings",
    "__version__",
    "load_catalogue",
]
