"""Every setting and every marker argument, with a wrong type and a wrong value.

The cases come from the declarations (``settings.OPTIONS``, the ``Budget`` fields, the cassette
marker's keywords), so a new setting or budget is in this matrix the day it is added: a setting
that refuses none of ``WRONG_VALUES`` must be listed in ``FREE_TEXT`` with the reason.
"""

from __future__ import annotations

import math
from dataclasses import fields
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_llmperf.judge.budget import COUNTS, Budget
from pytest_llmperf.plugin.cassettes import check_marker
from pytest_llmperf.plugin.settings import (
    INI_KEYS,
    OPTIONS,
    SESSION_ONLY,
    Option,
    Settings,
    resolve,
    with_marker,
)

# Values that some setting cannot take; each setting must refuse at least one of them.
WRONG_VALUES = ("fast", "-1", "nan", "0", "ftp://x", "/", "(")
# Settings that take any text: names, folders and paths (checked when used: a report path
# that cannot be written is reported at the end of the run, see test_reports_and_compare.py).
FREE_TEXT = {
    "emulator_profiles": "a file, read (and checked) when the emulator starts",
    "cache_namespace": "any prefix of Redis keys",
    "cassette_dir": "a folder, made when a cassette is written",
    "scrub_headers": "any header name",
    "scrub_query": "any query parameter name",
    "report": "a path, or off",
    "report_dir": "a folder, made when the report is written",
    "baseline": "a file, read (and checked) when the run starts",
    "baseline_markdown": "a path, written at the end of the run",
}
ORIGINS = ("ini", "env", "cli")


def wrong_value(option: Option) -> str | None:
    """The first of ``WRONG_VALUES`` the setting refuses, if any."""
    for value in WRONG_VALUES:
        try:
            option.parse(value)
        except ValueError:
            return value
    return None


CHECKED = [option for option in OPTIONS if option.field not in FREE_TEXT]


def test_every_setting_refuses_a_wrong_value_or_is_known_to_take_any_text() -> None:
    takes_anything = {option.field for option in OPTIONS if wrong_value(option) is None}
    assert takes_anything == set(FREE_TEXT)


class Config:
    """What ``resolve`` reads of a pytest config: ini values and command-line options."""

    def __init__(self, ini: dict[str, Any], cli: dict[str, Any]) -> None:
        self.ini = ini
        self.option = SimpleNamespace(**{o.dest: cli.get(o.dest) for o in OPTIONS})

    def getini(self, name: str) -> Any:
        return self.ini.get(name, [] if INI_KEYS[name].multiple else "")


@pytest.mark.parametrize("origin", ORIGINS)
@pytest.mark.parametrize("option", CHECKED, ids=[o.field for o in CHECKED])
def test_a_wrong_setting_names_the_value_where_it_came_from_and_what_is_allowed(
    option: Option, origin: str
) -> None:
    value = wrong_value(option)
    assert value is not None
    given: Any = [value] if option.multiple else value
    ini = {option.ini: given} if origin == "ini" else {}
    env = {option.env: value} if origin == "env" else {}
    cli = {option.dest: given} if origin == "cli" else {}
    with pytest.raises(pytest.UsageError) as caught:
        resolve(Config(ini, cli), env)  # type: ignore[arg-type]
    where = {
        "ini": f"ini option {option.ini}",
        "env": f"environment variable {option.env}",
        "cli": f"command-line option {option.flag}",
    }[origin]
    with pytest.raises(ValueError) as allowed:
        option.parse(value)
    assert str(caught.value) == f"invalid value {value!r} for {where}: {allowed.value}"
    assert str(allowed.value)  # what is allowed is said, not left blank


MARKER_SETTABLE = [o for o in OPTIONS if o.field not in SESSION_ONLY]
WHERE = "marker llm_settings on t.py::test"


@pytest.mark.parametrize("option", MARKER_SETTABLE, ids=[o.field for o in MARKER_SETTABLE])
def test_a_marker_setting_of_the_wrong_type_is_refused(option: Option) -> None:
    wrong: Any = 5 if option.multiple else object()
    with pytest.raises(ValueError) as caught:
        with_marker(Settings(), {option.field: wrong}, WHERE)
    kind = "a string or a list of strings" if option.multiple else "a string, a number or a bool"
    assert str(caught.value) == (
        f"invalid value {wrong!r} for {WHERE}, argument {option.field}: give {kind} "
        f"(as {option.metavar})"
    )


MARKER_CHECKED = [o for o in MARKER_SETTABLE if o.field not in FREE_TEXT]


@pytest.mark.parametrize("option", MARKER_CHECKED, ids=[o.field for o in MARKER_CHECKED])
def test_a_marker_setting_of_the_wrong_value_is_refused(option: Option) -> None:
    value = wrong_value(option)
    with pytest.raises(ValueError) as caught:
        with_marker(Settings(), {option.field: value}, WHERE)
    assert str(caught.value).startswith(
        f"invalid value {value!r} for {WHERE}, argument {option.field}: "
    )


@pytest.mark.parametrize("name", sorted(SESSION_ONLY))
def test_a_session_setting_in_a_marker_says_where_to_set_it(name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{WHERE}: {name} belongs to the whole session"):
        with_marker(Settings(), {name: "x"}, WHERE)


def test_an_unknown_marker_setting_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=rf"^{WHERE}: unknown setting 'cahce'; a marker can set"):
        with_marker(Settings(), {"cahce": "off"}, WHERE)


BUDGETS = [f.name for f in fields(Budget)]


def budget_wrong_type(name: str) -> Any:
    return 5 if name == "mode" else "fast"


def budget_wrong_value(name: str) -> Any:
    return "strict" if name == "mode" else (-1 if name in COUNTS else math.nan)


@pytest.mark.parametrize("name", BUDGETS)
@pytest.mark.parametrize("kind", ["type", "value"])
def test_a_budget_of_the_wrong_type_or_value_names_the_argument(name: str, kind: str) -> None:
    value = budget_wrong_type(name) if kind == "type" else budget_wrong_value(name)
    with pytest.raises(ValueError) as caught:
        Budget.from_marker((), {name: value}, "marker llm_budget on t.py::test")
    message = str(caught.value)
    assert message.startswith(f"marker llm_budget on t.py::test: {name}={value!r}")
    assert " must be " in message or ": choose one of " in message


def test_a_budget_given_by_position_says_to_use_keywords() -> None:
    with pytest.raises(ValueError, match=r"give budgets as keywords, e\.g\. llm_budget"):
        Budget.from_marker((2.0,), {}, "here")


def test_an_unknown_budget_lists_the_budgets() -> None:
    with pytest.raises(ValueError, match=r"unknown budget 'totl'; the budgets are total, ttft"):
        Budget.from_marker((), {"totl": 2.0}, "here")


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((5,), {}, "give at most one cassette name, a string like 'story.yaml'"),
        (("a.yaml", "b.yaml"), {}, "give at most one cassette name"),
        ((), {"record_mode": "sometimes"}, "record_mode='sometimes': choose one of none"),
        ((), {"record_mode": 1}, "record_mode=1: choose one of none"),
        ((), {"timing": "fast"}, "timing='fast': choose instant, recorded or a factor >= 0"),
        ((), {"timing": -1}, "timing=-1: choose instant, recorded or a factor >= 0"),
        ((), {"recordmode": "all"}, "unknown argument 'recordmode'"),
    ],
)
def test_a_bad_cassette_marker_names_the_argument(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    mark = pytest.mark.llm_cassette(*args, **kwargs).mark
    with pytest.raises(ValueError) as caught:
        check_marker(mark, "marker llm_cassette on t.py::test")
    assert str(caught.value).startswith(f"marker llm_cassette on t.py::test: {message}")
