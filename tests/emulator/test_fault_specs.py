"""The fault injection grammar: header values and profile tables."""

from __future__ import annotations

import pytest

from pytest_llmperf.emulator.faults import (
    ERROR_LINE_MESSAGE,
    FaultKind,
    FaultSpec,
    active_faults,
    parse_fault_header,
    parse_fault_table,
)
from pytest_llmperf.errors import FaultSpecError


def test_status_shorthand() -> None:
    (fault,) = parse_fault_header("status=503")
    assert fault == FaultSpec(FaultKind.STATUS, status=503)
    assert fault.error_message.startswith("server busy, please try again.")


def test_several_faults_with_parameters() -> None:
    stall, drop = parse_fault_header("stall; after=2; seconds=1.5, drop; after=6")
    assert stall == FaultSpec(FaultKind.STALL, after=2, seconds=1.5)
    assert drop == FaultSpec(FaultKind.DROP, after=6)


def test_error_line_message_defaults_to_ollamas_runner_error() -> None:
    (fault,) = parse_fault_header("error-line; after=3")
    assert fault.error_message == ERROR_LINE_MESSAGE
    (custom,) = parse_fault_header("error-line; message=CUDA error: out of memory")
    assert custom.error_message == "CUDA error: out of memory"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("explode", r"unknown fault kind 'explode'.*kinds: \['status', 'error-line'"),
        ("stall; after", r"fault parameter 'after' in 'stall; after' needs key=value"),
        ("drop; seconds=2", r"fault 'drop' takes \['after'\], not \['seconds'\]"),
    ],
)
def test_bad_headers_name_the_problem(header: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        parse_fault_header(header)


IN_HEADER = "in header x-llmperf-fault"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "stall; after=x",
            f"fault 'stall': after must be a whole number of chunks >= 0, got 'x' ({IN_HEADER}: 'stall; after=x')",
        ),
        (
            "stall; after=1.5",
            f"fault 'stall': after must be a whole number of chunks >= 0, got '1.5' ({IN_HEADER}: 'stall; after=1.5')",
        ),
        (
            "drop; after=-1",
            f"fault 'drop': after must be a whole number of chunks >= 0, got '-1' ({IN_HEADER}: 'drop; after=-1')",
        ),
        (
            "stall; seconds=x",
            f"fault 'stall': seconds must be a number of seconds >= 0, got 'x' ({IN_HEADER}: 'stall; seconds=x')",
        ),
        (
            "slow-first-token; seconds=nan",
            f"fault 'slow-first-token': seconds must be a number of seconds >= 0, got 'nan' ({IN_HEADER}: 'slow-first-token; seconds=nan')",
        ),
        (
            "status=abc",
            f"fault 'status': status must be an HTTP error status 400-599, got 'abc' ({IN_HEADER}: 'status=abc')",
        ),
        (
            "status=200",
            f"fault 'status': status must be an HTTP error status 400-599, got '200' ({IN_HEADER}: 'status=200')",
        ),
    ],
)
def test_a_bad_header_parameter_names_the_field_and_what_it_takes(
    header: str, message: str
) -> None:
    with pytest.raises(FaultSpecError) as caught:
        parse_fault_header(header)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"kind": "stall", "seconds": True},
            "fault 'stall': seconds must be a number of seconds >= 0, got True (in fault {'kind': 'stall', 'seconds': True})",
        ),
        (
            {"kind": "stall", "after": 1.5},
            "fault 'stall': after must be a whole number of chunks >= 0, got 1.5 (in fault {'kind': 'stall', 'after': 1.5})",
        ),
        (
            {"kind": "status", "status": [503]},
            "fault 'status': status must be an HTTP error status 400-599, got [503] (in fault {'kind': 'status', 'status': [503]})",
        ),
        (
            {"kind": "error-line", "message": 3},
            "fault 'error-line': message must be a string, got 3 (in fault {'kind': 'error-line', 'message': 3})",
        ),
        (
            {"kind": "drop", "every": 0},
            "fault 'drop': every must be a whole number >= 1 (1: every request), got 0 (in fault {'kind': 'drop', 'every': 0})",
        ),
    ],
)
def test_a_bad_profile_fault_names_the_field_and_what_it_takes(
    table: dict[str, object], message: str
) -> None:
    with pytest.raises(FaultSpecError) as caught:
        parse_fault_table(table)
    assert str(caught.value) == message


def test_profile_table_with_every() -> None:
    fault = parse_fault_table({"kind": "error-line", "after": 1, "every": 3})
    assert fault.every == 3
    hits = [n for n in range(1, 10) if active_faults([fault], n)]
    assert hits == [3, 6, 9]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"after": 1}, "a fault needs kind"),
        ({"kind": "drop", "every": 0}, "every must be a whole number >= 1"),
    ],
)
def test_bad_profile_tables(table: dict[str, object], message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        parse_fault_table(table)
