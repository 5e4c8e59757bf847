"""Fuzzing what a user gives: cassette files, validation reports, marker arguments, settings,
fault specs and latency profiles raise only our documented errors, whatever the input.

Markers and settings raise ValueError (the plugin makes it the test's failure, or a usage
error); files and specs raise a ConfigurationError subclass (CassetteError, ProfileError,
FaultSpecError). Anything else is a bug.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from fuzz_settings import EXAMPLES
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pytest_llmperf.emulator.faults import parse_fault_header, parse_fault_table
from pytest_llmperf.emulator.profiles import parse_catalogue
from pytest_llmperf.errors import ConfigurationError, FaultSpecError, ProfileError
from pytest_llmperf.judge import gate
from pytest_llmperf.judge.budget import Budget, suite_budgets
from pytest_llmperf.observe.cassettes import CassetteError
from pytest_llmperf.observe.cassettes.store import Cassette
from pytest_llmperf.plugin.cassettes import check_marker
from pytest_llmperf.plugin.settings import OPTIONS, SESSION_ONLY, Settings, with_marker

SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**6), max_value=10**6)
    | st.floats()
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
)


def shaped(names: list[str], leaf: Any) -> Any:
    """Mappings whose keys are ``names`` (the fields a loader reads), nested, values any."""
    return st.recursive(
        leaf,
        lambda inner: (
            st.dictionaries(st.sampled_from(names), inner, max_size=5) | st.lists(inner, max_size=3)
        ),
        max_leaves=25,
    )


CASSETTE_FIELDS = [
    "version", "interactions", "request", "response", "method", "uri", "body", "headers",
    "status", "code", "message", "string", "llmperf", "headers_at", "chunks", "stats", "error",
]  # fmt: skip
REPORT_FIELDS = [
    "schema_version", "tests", "nodeid", "calls", "model", "total_s", "ttft_s", "outcome",
    "cache", "purpose", "tokens", "error", "run", "summary",
]  # fmt: skip


def outcome(kind: type[Exception], action: Callable[[], Any]) -> tuple[Any, str | None]:
    """What ``action`` returns, or the message of the ``kind`` of error it raised."""
    try:
        return action(), None
    except kind as exc:
        return None, str(exc)


def as_text(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


# --- cassettes ---------------------------------------------------------------------------

CASSETTE_TEXT = (
    shaped(CASSETTE_FIELDS, JSON).map(as_text)
    | shaped(CASSETTE_FIELDS, JSON).map(lambda v: as_text({"version": 1, "interactions": v}))
    | st.text(max_size=200)
    | st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@given(text=CASSETTE_TEXT)
@example(text='{"version": 1, "interactions": [{"request": {}, "response": {}}]}')
@example(text="interactions:\n- request: [1]\n")
def test_a_cassette_file_loads_or_is_a_cassette_error(
    tmp_path: Path, suffix: str, text: str
) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    cassette, refused = outcome(CassetteError, lambda: Cassette.load(path))
    if refused is not None:
        assert refused.startswith(f"cannot read cassette {path}: ")
        return
    for interaction in cassette.interactions:  # what a replay reads of each
        assert interaction.pieces() is not None
        interaction.to_vcr()


# --- validation reports (llmperf compare, --llm-baseline, llmperf report) ------------------

REPORT_TEXT = (
    shaped(REPORT_FIELDS, JSON).map(as_text)
    | shaped(REPORT_FIELDS, JSON).map(lambda t: as_text({"schema_version": 1, "tests": t}))
    | st.text(max_size=200)
)


@given(text=REPORT_TEXT)
@example(text='{"schema_version": 1, "tests": [{"nodeid": "a", "calls": [{"model": "m"}]}]}')
def test_a_report_loads_and_compares_or_is_a_configuration_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "report.json"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    data, refused = outcome(ConfigurationError, lambda: gate.load(path, "baseline"))
    if refused is not None:
        assert str(path) in refused
        return
    comparison = gate.compare(data, data, threshold=0.1, alpha=0.01)  # what compare reads
    assert comparison.regressions == []  # a report is never slower than itself
    gate.table(comparison)


# --- marker arguments ----------------------------------------------------------------------

ANY = SCALAR | st.lists(SCALAR, max_size=3) | st.dictionaries(st.text(max_size=5), SCALAR)
BUDGETS = [f.name for f in fields(Budget)]
MARKER_SETTINGS = [o.field for o in OPTIONS if o.field not in SESSION_ONLY]


@given(kwargs=st.dictionaries(st.sampled_from([*BUDGETS, "totl"]), ANY, max_size=4))
@example(kwargs={"total": math.nan})
def test_budget_marker_arguments_are_a_budget_or_a_value_error(kwargs: dict[str, Any]) -> None:
    budget, refused = outcome(ValueError, lambda: Budget.from_marker((), kwargs, "here"))
    if refused is not None:
        assert refused.startswith("here: ")
        return
    for name, value in kwargs.items():  # what was taken is a usable limit
        assert value is None or name == "mode" or (math.isfinite(value) and value >= 0)
    assert budget is not None


@given(kwargs=st.dictionaries(st.sampled_from(MARKER_SETTINGS), ANY, max_size=3))
@example(kwargs={"tiers": 5})
def test_settings_marker_arguments_are_settings_or_a_value_error(kwargs: dict[str, Any]) -> None:
    resolved, refused = outcome(ValueError, lambda: with_marker(Settings(), kwargs, "here"))
    assert "here" in refused if refused is not None else isinstance(resolved, Settings)


@given(
    args=st.lists(ANY, max_size=2),
    kwargs=st.dictionaries(st.sampled_from(["record_mode", "timing", "name"]), ANY, max_size=2),
)
def test_cassette_marker_arguments_pass_or_are_a_value_error(
    args: list[Any], kwargs: dict[str, Any]
) -> None:
    mark = pytest.mark.llm_cassette(*args, **kwargs).mark
    _, refused = outcome(ValueError, lambda: check_marker(mark, "here"))
    assert refused is None or refused.startswith("here: ")


# --- settings (ini, environment, command line all arrive as text) --------------------------

NUMBERISH = st.lists(
    st.sampled_from([*"0123456789.-+eE%:=; ", "nan", "inf", "KiB", "MiB", "fast", "total", "s"]),
    max_size=10,
).map("".join)


@pytest.mark.parametrize("option", OPTIONS, ids=[o.field for o in OPTIONS])
@settings(max_examples=max(10, EXAMPLES // 10))  # per setting: 38 of them
@given(text=st.text(max_size=40) | NUMBERISH)
def test_a_setting_parses_or_is_a_value_error(option: Any, text: str) -> None:
    _, refused = outcome(ValueError, lambda: option.parse(text))
    assert refused != ""  # a refusal says what is allowed


@given(lines=st.lists(st.text(max_size=30) | NUMBERISH, max_size=3))
def test_suite_budget_lines_parse_or_are_a_value_error(lines: list[str]) -> None:
    _, refused = outcome(ValueError, lambda: suite_budgets(lines))
    assert refused != ""


# --- the emulator's fault specs and latency profiles ---------------------------------------

FAULTISH = st.lists(
    st.sampled_from(
        ["status", "error-line", "stall", "drop", "slow-first-token", "unknown-model", "=", ";",
         ",", "after", "seconds", "message", "every", "503", "1.5", "-1", "nan", " ", "x"]
    ),
    max_size=12,
).map("".join)  # fmt: skip


@given(header=st.text(max_size=60) | FAULTISH)
def test_a_fault_header_parses_or_is_a_fault_spec_error(header: str) -> None:
    _, refused = outcome(FaultSpecError, lambda: parse_fault_header(header))
    assert refused != ""


@given(table=st.dictionaries(st.sampled_from(["kind", "after", "seconds", "every", "status",
                                             "message", "x"]), ANY, max_size=4))  # fmt: skip
def test_a_fault_table_parses_or_is_a_fault_spec_error(table: dict[str, Any]) -> None:
    _, refused = outcome(FaultSpecError, lambda: parse_fault_table(table))
    assert refused != ""


PROFILE_FIELDS = [
    "server", "models", "m", "load_s", "ttft_s", "tokens_per_s", "jitter", "faults", "kind",
    "size", "vram", "tokens", "capabilities", "available", "num_parallel", "max_queue",
    "time_scale", "max_loaded_models",
]  # fmt: skip


@given(
    raw=st.dictionaries(st.sampled_from(PROFILE_FIELDS), shaped(PROFILE_FIELDS, SCALAR), max_size=3)
)
def test_a_profile_table_parses_or_is_a_profile_error(raw: dict[str, Any]) -> None:
    _, refused = outcome(ProfileError, lambda: parse_catalogue(raw, source="fuzz.toml"))
    assert refused is None or "fuzz.toml" in refused
