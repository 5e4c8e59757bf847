"""Inner pytester runs: keep pytest-asyncio out (its unset-loop-scope warning is not ours)."""

from __future__ import annotations

# pytester's in-process runs drop the modules first imported inside them. Two of ours break
# when imported again: httpx keeps a map of httpcore's exception classes from its first use,
# and PyYAML's C extension cannot be loaded twice. Import them out here, once.
import httpcore  # noqa: F401
import pytest
import vcr.serializers.yamlserializer  # noqa: F401


@pytest.fixture(autouse=True)
def _no_asyncio_in_inner_runs(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # after pytester has cleared PYTEST_ADDOPTS for its own runs
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:asyncio")
