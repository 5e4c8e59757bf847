"""pytest-llmperf's pytest hooks and fixtures. Thin: the work lives in the modules they call."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_llmperf import settings as _settings
from pytest_llmperf.emulator.runner import start_emulator
from pytest_llmperf.emulator.server import EmulatorServer
from pytest_llmperf.errors import ConfigurationError

SETTINGS_KEY = pytest.StashKey[_settings.Settings]()


def pytest_addoption(parser: pytest.Parser) -> None:
    _settings.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SETTINGS_KEY] = _settings.resolve(config)


@pytest.fixture(scope="session")
def llm_settings(pytestconfig: pytest.Config) -> _settings.Settings:
    """The resolved pytest-llmperf settings; override it in a conftest to change them."""
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture(scope="session")
def ollama_emulator(llm_settings: _settings.Settings) -> Iterator[EmulatorServer]:
    """An Ollama-compatible emulator on a free loopback port; ``.url`` is its base URL."""
    try:
        server = start_emulator(llm_settings)
    except ConfigurationError as exc:
        pytest.fail(f"cannot start the ollama_emulator fixture: {exc}", pytrace=False)
    with server:
        yield server
