"""keep_alive values as Ollama reads them."""

from __future__ import annotations

import math

import pytest

from pytest_llmperf.emulator.keepalive import parse_go_duration, parse_keep_alive


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("10m", 600.0),
        ("24h", 86400.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("300ms", 0.3),
        ("0", 0.0),
        ("0s", 0.0),
        (0, 0.0),
        (3600, 3600.0),
        (2.5, 2.5),
    ],
)
def test_durations_and_numbers(value: object, seconds: float) -> None:
    assert parse_keep_alive(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [-1, "-1m", "-5s", -0.5])
def test_negative_means_forever(value: object) -> None:
    assert parse_keep_alive(value) == math.inf


def test_unitless_string_is_refused_like_ollama() -> None:
    with pytest.raises(ValueError, match=r'^time: missing unit in duration "3600"$'):
        parse_keep_alive("3600")


@pytest.mark.parametrize("value", ["ten minutes", "5x", "", "m"])
def test_garbage_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_go_duration(value)


@pytest.mark.parametrize("value", [None, True, [1]])
def test_wrong_types_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="keep_alive must be a duration string or a number"):
        parse_keep_alive(value)
