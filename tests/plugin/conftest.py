"""Inner pytester runs: keep pytest-asyncio out (its unset-loop-scope warning is not ours)."""

from __future__ import annotations

# httpx imports httpcore on first use and keeps a map of its exception classes; pytester's
# in-process runs drop modules first imported inside them, so an inner run that imports
# httpcore leaves httpx mapping classes of a module that is gone. Import it out here.
import httpcore  # noqa: F401
import pytest


@pytest.fixture(autouse=True)
def _no_asyncio_in_inner_runs(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # after pytester has cleared PYTEST_ADDOPTS for its own runs
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:asyncio")
