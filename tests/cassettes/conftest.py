"""An emulator whose streams take long enough to time, and a cassette path per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from paced_model import MODEL, PACED

from pytest_llmperf import EmulatorServer
from pytest_llmperf.emulator import Catalogue


@pytest.fixture
def paced(serve: Callable[..., EmulatorServer]) -> EmulatorServer:
    return serve(Catalogue(models={MODEL: PACED}))


@pytest.fixture
def cassette_path(tmp_path: Path) -> Path:
    return tmp_path / "cassettes" / "test.yaml"
