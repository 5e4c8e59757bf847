"""Settings values: how each is read, and what a bad one says."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pytest_llmperf.observe.records import RecordRouter
from pytest_llmperf.plugin.runtime import Runtime
from pytest_llmperf.plugin.settings import INI_KEYS, OPTIONS, Settings, resolve, with_marker


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


class Config:
    """What ``resolve`` reads of a pytest config: ini values and command-line options."""

    def __init__(self, ini: dict[str, str], cli: dict[str, str]) -> None:
        self.ini = ini
        self.option = SimpleNamespace(**{option.dest: cli.get(option.field) for option in OPTIONS})

    def getini(self, name: str) -> Any:
        return self.ini.get(name, [] if INI_KEYS[name].multiple else "")


def refused(
    ini: dict[str, str] | None = None, env: dict[str, str] | None = None, **cli: str
) -> str:
    with pytest.raises(pytest.UsageError) as caught:
        resolve(Config(ini or {}, cli), env or {})  # type: ignore[arg-type]
    return str(caught.value)


def test_a_time_scale_that_is_not_a_number() -> None:
    assert refused({"llm_emulator_time_scale": "fast"}) == (
        "invalid value 'fast' for ini option llm_emulator_time_scale: must be a number >= 0 "
        "(1: the profiles' delays, 0.1: ten times faster)"
    )


def test_a_time_scale_that_is_not_finite() -> None:
    assert refused(env={"LLMPERF_EMULATOR_TIME_SCALE": "nan"}) == (
        "invalid value 'nan' for environment variable LLMPERF_EMULATOR_TIME_SCALE: must be a "
        "number >= 0 (1: the profiles' delays, 0.1: ten times faster)"
    )


def test_a_cache_ttl_that_is_not_a_number() -> None:
    assert refused(cache_ttl="1h") == (
        "invalid value '1h' for command-line option --llm-cache-ttl: must be a number of "
        "seconds >= 0 (0: entries never expire)"
    )


def test_a_count_that_is_not_a_whole_number() -> None:
    assert refused({"llm_retries": "two"}) == (
        "invalid value 'two' for ini option llm_retries: must be a whole number >= 0"
    )


def test_a_concurrency_below_one() -> None:
    assert refused(env={"LLMPERF_CONCURRENCY": "0"}) == (
        "invalid value '0' for environment variable LLMPERF_CONCURRENCY: must be a whole "
        "number >= 1"
    )


def test_a_replay_timing_that_is_neither_a_word_nor_a_factor() -> None:
    assert refused(replay_timing="fast") == (
        "invalid value 'fast' for command-line option --llm-replay-timing: choose instant, "
        "recorded, or a factor >= 0 of the recorded waits (0.5: half)"
    )


def test_a_timeout_that_is_not_a_number() -> None:
    assert refused({"llm_timeouts": ["fast: total=soon"]}) == (  # type: ignore[dict-item]
        "invalid value 'fast: total=soon' for ini option llm_timeouts: timeout 'total=soon': "
        "'soon' is not a number of seconds above 0"
    )


def test_a_timeout_that_is_not_finite() -> None:
    assert refused({"llm_timeouts": ["fast: stall=nan"]}) == (  # type: ignore[dict-item]
        "invalid value 'fast: stall=nan' for ini option llm_timeouts: timeout limit "
        "stall=nan must be a number of seconds above 0"
    )


def test_a_baseline_threshold_that_is_not_a_number() -> None:
    assert refused(baseline_threshold="big") == (
        "invalid value 'big' for command-line option --llm-baseline-threshold: 'big' is not a "
        "relative change; write 10% or 0.1"
    )
