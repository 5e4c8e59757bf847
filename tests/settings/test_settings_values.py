"""Settings values: how each is read, and what a bad one says."""

from __future__ import annotations

import pytest

from pytest_llmperf.records import RecordRouter
from pytest_llmperf.runtime import Runtime
from pytest_llmperf.settings import Settings, with_marker


@pytest.mark.parametrize(
    ("text", "size"),
    [("1000", 1000), ("64KiB", 65536), ("16MiB", 16 * 1024**2), ("1 GiB", 1024**3)],
)
def test_the_line_limit_reads_bytes_or_binary_units(text: str, size: int) -> None:
    settings = with_marker(Settings(), {"max_line_bytes": text}, "here")
    assert settings.max_line_bytes == size


def test_the_line_limit_reaches_the_clients() -> None:
    settings = with_marker(
        Settings(hosts=("http://127.0.0.1:9",)), {"max_line_bytes": 4096}, "here"
    )
    runtime = Runtime(RecordRouter())
    try:
        assert runtime.client(settings, str).core.max_line == 4096
        assert runtime.async_client(settings, str).core.max_line == 4096
    finally:
        runtime.close()


def test_a_bad_line_limit_names_the_value_and_the_spellings() -> None:
    with pytest.raises(ValueError) as caught:
        with_marker(Settings(), {"max_line_bytes": "16MB"}, "marker llm_settings on t.py::test")
    assert str(caught.value) == (
        "invalid value '16MB' for marker llm_settings on t.py::test, argument max_line_bytes: "
        "give a whole number of bytes >= 1, or one with a unit: 64KiB, 16MiB, 1GiB"
    )
