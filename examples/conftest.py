"""Where the example suite finds its Ollama: OLLAMA_HOST if set, else the embedded emulator."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def ollama_host(request: pytest.FixtureRequest) -> str:
    """The base URL of the Ollama server the examples talk to."""
    host = os.environ.get("OLLAMA_HOST")
    if host:
        return host if "://" in host else f"http://{host}"
    return str(request.getfixturevalue("ollama_emulator").url)
