"""The per-test hooks come only to a run that can make LLM calls, and miss none of its calls."""

from __future__ import annotations

import json

import pytest

FAST = ["--llm-emulator-time-scale", "0.02", "-p", "no:cacheprovider"]

SAYS_IF_TRACKED = """
def pytest_terminal_summary(terminalreporter, config):
    tracked = config.pluginmanager.has_plugin("llmperf-tracker")
    terminalreporter.write_line(f"per-test hooks: {tracked}")
"""


def test_a_suite_without_llm_calls_runs_no_hook_of_ours_per_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(SAYS_IF_TRACKED)
    pytester.makepyfile(
        """
        import pytest

        def test_plain():
            pass

        @pytest.mark.parametrize("n", range(3))
        def test_settings_only(llm_settings, n):
            assert llm_settings.cache == "memory"
        """
    )
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["per-test hooks: False"])
    assert not list(pytester.path.glob("llm_validation_*.json"))


@pytest.mark.parametrize(
    "test",
    [
        "def test_client(ollama_client):\n    pass\n",
        "def test_records(llm_calls):\n    pass\n",
        "def test_warm(llm_warm_up):\n    pass\n",
        "import pytest\n\n@pytest.mark.llm_budget(total=60)\ndef test_budget():\n    pass\n",
        "import pytest\n\n@pytest.mark.llm_settings(cache='off')\ndef test_marked():\n    pass\n",
        "def test_bench(benchmark):\n    benchmark(lambda: None)\n",
    ],
    ids=["client", "llm_calls", "warm-up", "budget-marker", "settings-marker", "benchmark"],
)
def test_a_test_that_may_call_an_llm_brings_the_hooks_at_collection(
    pytester: pytest.Pytester, test: str
) -> None:
    pytester.makeconftest(SAYS_IF_TRACKED)
    pytester.makepyfile(test)
    result = pytester.runpytest("--co", *FAST)
    result.stdout.fnmatch_lines(["per-test hooks: True"])


def test_suite_budgets_bring_the_hooks(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SAYS_IF_TRACKED)
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("--llm-budget", "fast: total=60", *FAST)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["per-test hooks: True"])


def test_a_client_reached_at_run_time_records_to_its_own_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        def test_before():
            pass

        def test_late(request):
            client = request.getfixturevalue("ollama_client")
            client.generate(tier="fast", prompt="late")
            client.generate(tier="fast", prompt="later")
            calls = request.getfixturevalue("llm_calls")
            assert [c.tier for c in calls] == ["fast", "fast"]

        def test_after(request):
            assert len(request.getfixturevalue("llm_calls")) == 0
        """
    )
    result = pytester.runpytest("--llm-report", "report.json", *FAST)
    result.assert_outcomes(passed=3)
    data = json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))
    calls = {test["nodeid"].split("::")[1]: len(test["calls"]) for test in data["tests"]}
    assert calls == {"test_before": 0, "test_late": 2, "test_after": 0}


def test_a_session_warm_up_reached_at_run_time_belongs_to_the_session(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        def test_plain():
            pass

        def test_warms(request):
            assert request.getfixturevalue("llm_warm_up")

        def test_after():
            pass
        """
    )
    result = pytester.runpytest("--llm-report", "report.json", *FAST)
    result.assert_outcomes(passed=3)
    data = json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))
    purposes = {
        test["nodeid"].split("::")[1]: {call["purpose"] for call in test["calls"]}
        for test in data["tests"]
    }
    assert purposes == {"test_plain": set(), "test_warms": set(), "test_after": set()}
    # a session fixture's calls are the session's, not the first test's that needed it
    assert {call["purpose"] for call in data["session"]["calls"]} == {"warm_up"}
    assert data["summary"]["session_calls"] == len(data["session"]["calls"]) == 3
