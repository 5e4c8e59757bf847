"""Hooks that a conftest (or another plugin) can implement to take part in pytest-llmperf."""

from __future__ import annotations

from typing import Any

import pytest


def pytest_llmperf_report(report: dict[str, Any], config: pytest.Config) -> None:
    """Change the validation report in place before it is written (on the controller only).

    ``report`` is the JSON-able dict the file will hold: ``tests``, ``models``,
    ``recommendations`` and the rest (see ``report-schema-v1.json``). Put your own data
    under ``report["extra"]`` and append to ``report["recommendations"]`` (each an ``id``,
    a ``severity`` of ``info``, ``warning`` or ``error``, a ``message`` and an ``evidence``
    dict); the file stays valid against the schema. For example, in ``conftest.py``::

        def pytest_llmperf_report(report, config):
            report.setdefault("extra", {})["branch"] = os.environ.get("GITHUB_REF_NAME")
            slow = [t["nodeid"] for t in report["tests"] if t["duration_s"] > 30]
            if slow:
                report["recommendations"].append({
                    "id": "slow-tests", "severity": "info",
                    "message": f"{len(slow)} tests took over 30 s",
                    "evidence": {"tests": slow},
                })
    """
