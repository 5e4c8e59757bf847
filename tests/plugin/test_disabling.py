"""Turning the plugin off for a run, with --strict-markers and --strict-config still working."""

from __future__ import annotations

import pytest

SUITE = """
import pytest

@pytest.mark.llm_budget(total=0.000001)
def test_budgeted(ollama_client):
    assert ollama_client.generate(tier="fast", prompt="hi").response
"""
STRICT = ["--strict-markers", "--strict-config", "-p", "no:cacheprovider"]
FAST = ["--llm-emulator-time-scale", "0.02"]


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\nllm_budget_mode = enforce\n")
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def test_on_the_budget_is_judged(suite: pytest.Pytester) -> None:
    suite.runpytest(*STRICT, *FAST).assert_outcomes(failed=1)


@pytest.mark.parametrize("how", [["--llm-enabled", "off"], ["-o", "llm_enabled=off"]])
def test_off_nothing_is_judged_or_written_and_strict_options_hold(
    suite: pytest.Pytester, how: list[str]
) -> None:
    result = suite.runpytest(*STRICT, *FAST, *how)
    result.assert_outcomes(passed=1)
    assert " llmperf " not in result.stdout.str()  # no summary section of ours
    assert not (suite.path / ".llmperf").exists()


def test_off_from_the_environment(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMPERF_ENABLED", "off")
    suite.runpytest(*STRICT, *FAST).assert_outcomes(passed=1)


def test_no_llmperf_breaks_the_strict_options_as_the_readme_says(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_suite="import pytest\n\n\n@pytest.mark.llm_budget(total=1)\ndef test_x():\n    pass\n"
    )
    result = suite.runpytest(*STRICT, "-p", "no:llmperf")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*Unknown config option: llm_budget_mode*"])
