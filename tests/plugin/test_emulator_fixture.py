"""The ollama_emulator fixture and the settings behind it, through pytester."""

from __future__ import annotations

import pytest

INNER = """
import httpx

def test_version(ollama_emulator):
    assert httpx.get(ollama_emulator.url + "/api/version").json() == {"version": "0.5.1"}

def test_models(ollama_emulator):
    names = [m["name"] for m in httpx.get(ollama_emulator.url + "/api/tags").json()["models"]]
    assert names == NAMES
"""


def test_fixture_serves_the_shipped_profiles(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(INNER.replace("NAMES", '["llama3.2:1b", "llama3.2:3b", "llama3:8b"]'))
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_profiles_file_from_ini(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", mine='[models."tiny:1b"]\ntokens_per_s = 500\n')
    pytester.makeini("[pytest]\nllm_emulator_profiles = mine.toml\n")
    pytester.makepyfile(INNER.replace("NAMES", '["tiny:1b"]'))
    pytester.runpytest().assert_outcomes(passed=2)


def test_command_line_beats_environment_beats_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\nllm_emulator_time_scale = 0.5\n")
    pytester.makepyfile(
        """
        def test_scale(llm_settings):
            assert llm_settings.emulator_time_scale == SCALE
        """.replace("SCALE", "0.25")
    )
    monkeypatch.setenv("LLMPERF_EMULATOR_TIME_SCALE", "0.25")
    pytester.runpytest().assert_outcomes(passed=1)
    monkeypatch.setenv("LLMPERF_EMULATOR_TIME_SCALE", "0.1")
    pytester.runpytest("--llm-emulator-time-scale", "0.25").assert_outcomes(passed=1)


def test_bad_value_names_the_value_and_where_it_came_from(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nllm_emulator_time_scale = fast\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: invalid value 'fast' for ini option llm_emulator_time_scale: must be a number >= 0 (1: the profiles' delays, 0.1: ten times faster)"
        ]
    )


def test_missing_profile_file_fails_the_fixture_with_the_fix(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_uses(ollama_emulator): pass")
    result = pytester.runpytest("--llm-emulator-profiles", "gone.toml")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*cannot start the ollama_emulator fixture: latency profile file 'gone.toml' does not exist;"
            " pass an existing TOML file or leave the setting empty to use the shipped profiles"
        ]
    )


def test_options_are_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "LLM performance testing (pytest-llmperf):",
            "  --llm-emulator-profiles=FILE",
            "  --llm-emulator-gguf=NAME=PATH",
            "  --llm-emulator-time-scale=FACTOR",
            "  llm_emulator_time_scale (string):",
        ]
    )


def test_llm_settings_can_be_overridden_in_a_conftest(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from pytest_llmperf import Settings

        @pytest.fixture(scope="session")
        def llm_settings():
            return Settings(emulator_time_scale=0.0)
        """
    )
    pytester.makepyfile(
        """
        import httpx

        def test_instant(ollama_emulator):
            body = {"model": "llama3:8b", "prompt": "hi", "stream": False}
            answer = httpx.post(ollama_emulator.url + "/api/generate", json=body, timeout=10).json()
            assert answer["load_duration"] < 1e9  # the 5 s profile load, scaled to zero
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
