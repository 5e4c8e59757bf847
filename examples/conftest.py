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


def pytest_llmperf_report(report, config):
    """Add the team's own figures and advice to the validation report."""
    report.setdefault("extra", {})["selected"] = config.getoption("markexpr") or "all"
    slow = [test["nodeid"] for test in report["tests"] if test["duration_s"] > 30]
    if slow:
        report["recommendations"].append(
            {
                "id": "slow-tests",
                "severity": "info",
                "message": f"{len(slow)} tests took over 30 s",
                "evidence": {"tests": slow},
            }
        )
