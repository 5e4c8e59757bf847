"""Option names: every spelling from its field by one rule; the old spellings still read, loudly.

The rule: the ini key ``llm_<field>``, the environment variable ``LLMPERF_<FIELD>``, the flag
``--llm-<field>`` with ``-`` for ``_``, naming one value where the option repeats. A spelling
of before the rule (``settings.MOVED``) still works for now, with a deprecation warning that
names the new one; under ``-W error`` the run stops with a usage error that says what to do.
"""

from __future__ import annotations

import pytest

from pytest_llmperf.plugin.settings import BY_FIELD, MOVED, OPTIONS, Option, singular

HOST = "http://127.0.0.1:9"
# A test that shows which hosts the run resolved.
SHOWS_HOSTS = f"""
def test_hosts(llm_settings):
    assert llm_settings.hosts == ({HOST!r},)
"""
OLD_INI = f"[pytest]\nllm_host = {HOST}\n"
NEW_INI = f"[pytest]\nllm_hosts = {HOST}\n"
DEPRECATED = (
    "ini option llm_host is deprecated: rename it llm_hosts (every option is spelt llm_<field>"
)


@pytest.mark.parametrize("option", OPTIONS, ids=[o.field for o in OPTIONS])
def test_every_ini_key_and_environment_variable_is_the_field_itself(option: Option) -> None:
    field = option.field
    assert (option.ini, option.env) == (f"llm_{field}", f"LLMPERF_{field.upper()}")


def test_a_flag_names_one_value_where_the_option_repeats() -> None:
    flags = {field: BY_FIELD[field].flag for field in ("hosts", "route_prefixes")}
    assert flags == {"hosts": "--llm-host", "route_prefixes": "--llm-route-prefix"}
    assert BY_FIELD["allowed_hosts"].flag == "--llm-allowed-host"
    assert BY_FIELD["scrub_query"].flag == "--llm-scrub-query"  # one query name already
    # a setting that does not repeat keeps its field's plural
    assert BY_FIELD["emulator_profiles"].flag == "--llm-emulator-profiles"
    assert BY_FIELD["adaptive_timeouts"].flag == "--llm-adaptive-timeouts"


@pytest.mark.parametrize(
    ("word", "one"),
    [
        ("hosts", "host"),
        ("prefixes", "prefix"),
        ("headers", "header"),
        ("responses", "response"),
        ("addresses", "address"),
        ("patches", "patch"),
        ("gguf", "gguf"),
        ("query", "query"),
        ("class", "class"),
    ],
)
def test_the_singular_of_a_word(word: str, one: str) -> None:
    assert singular(word) == one


def test_each_moved_spelling_is_not_the_new_one_and_the_new_follows_the_rule() -> None:
    assert {(m.field, m.kind, m.old, m.new) for m in MOVED} == {
        ("hosts", "ini", "llm_host", "llm_hosts"),
        ("hosts", "env", "LLMPERF_HOST", "LLMPERF_HOSTS"),
    }


def test_the_new_ini_key_gives_no_warning(pytester: pytest.Pytester) -> None:
    pytester.makeini(NEW_INI)
    pytester.makepyfile(SHOWS_HOSTS)
    result = pytester.runpytest("--strict-config", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "llm_host" not in result.stdout.str().replace("llm_hosts", "")


def test_the_old_ini_key_still_works_under_strict_config_with_a_deprecation_warning(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(OLD_INI)
    pytester.makepyfile(SHOWS_HOSTS)
    result = pytester.runpytest("--strict-config", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*warnings summary*", f"*PytestDeprecationWarning: {DEPRECATED}*"])
    assert "is still read for now" in result.stdout.str()


def test_the_old_environment_variable_still_works_with_a_deprecation_warning(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMPERF_HOST", HOST)
    pytester.makepyfile(SHOWS_HOSTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*PytestDeprecationWarning: environment variable LLMPERF_HOST is deprecated: "
            "rename it LLMPERF_HOSTS*"
        ]
    )


def test_the_new_spelling_wins_and_the_old_is_named_as_ignored(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMPERF_HOST", "http://127.0.0.1:8")
    monkeypatch.setenv("LLMPERF_HOSTS", HOST)
    pytester.makepyfile(SHOWS_HOSTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*environment variable LLMPERF_HOST is ignored: LLMPERF_HOSTS is set too, and wins "
            "(LLMPERF_HOST is its old spelling); remove LLMPERF_HOST*"
        ]
    )


def test_the_command_line_still_wins_over_an_old_spelling(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nllm_host = http://127.0.0.1:8\n")
    pytester.makepyfile(SHOWS_HOSTS)
    result = pytester.runpytest("--llm-host", HOST, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)


@pytest.mark.parametrize(
    "how",
    [
        ["-W", "error"],
        ["-W", "error::pytest.PytestDeprecationWarning"],
        ["-o", "filterwarnings=error"],
    ],
    ids=["W-error", "W-error-deprecations", "ini-filterwarnings"],
)
def test_where_warnings_are_errors_an_old_spelling_stops_the_run_saying_what_to_do(
    pytester: pytest.Pytester, how: list[str]
) -> None:
    pytester.makeini(OLD_INI)
    pytester.makepyfile(SHOWS_HOSTS)
    result = pytester.runpytest_subprocess("--strict-config", "-p", "no:cacheprovider", *how)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: {DEPRECATED}*This deprecation warning is an error here (-W or "
            "filterwarnings make it one): rename the option, or let the warning pass with "
            "-W 'ignore::pytest.PytestDeprecationWarning'"
        ]
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_the_warning_can_be_let_through_where_warnings_are_errors(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(OLD_INI)
    pytester.makepyfile(SHOWS_HOSTS)
    result = pytester.runpytest(
        "-W", "error", "-W", "ignore::pytest.PytestDeprecationWarning", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
