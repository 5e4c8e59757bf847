"""Inner pytester runs: keep pytest-asyncio out (its unset-loop-scope warning is not ours)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_asyncio_in_inner_runs(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # after pytester has cleared PYTEST_ADDOPTS for its own runs
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:asyncio")
