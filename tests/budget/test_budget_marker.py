"""The llm_budget marker, suite budgets and the verdict, through pytester."""

from __future__ import annotations

import pytest

FAST = ["--llm-emulator-time-scale", "0.02", "-p", "no:cacheprovider", "--llm-cache", "off"]

TEST = """
import pytest

@pytest.mark.llm_budget({budget})
def test_calls(ollama_client):
    for _ in range({calls}):
        list(ollama_client.generate(tier="fast", prompt="hi", stream=True,
                                    options={{"num_predict": 5}}))
"""


def run(pytester: pytest.Pytester, budget: str, calls: int = 1, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_budget=TEST.format(budget=budget, calls=calls))
    return pytester.runpytest(*FAST, *args)


@pytest.mark.parametrize(
    ("budget", "calls", "line"),
    [
        (
            "total=1e-6",
            1,
            "  call 1 of 1 (/api/generate, llama3.2:1b, tier fast): total * s > budget 1e-06 s",
        ),
        (
            "ttft=1e-6",
            1,
            "  call 1 of 1 (/api/generate, llama3.2:1b, tier fast): time to first token * s > budget 1e-06 s",
        ),
        (
            "tokens_per_s=1e9",
            1,
            "  call 1 of 1 (/api/generate, llama3.2:1b, tier fast): * tokens/s < budget 1e+09 tokens/s",
        ),
        ("calls=1", 2, "  2 calls > budget 1 calls"),
        ("tokens=6", 2, "  10 output tokens > budget 6 tokens"),
        ("wall=1e-6", 2, "  LLM time * s > budget 1e-06 s"),
        ("p50=1e-6", 3, "  p50 of 3 calls * s > budget 1e-06 s"),
        ("p95=1e-6", 3, "  p95 of 3 calls * s > budget 1e-06 s"),
        ("p99=1e-6", 3, "  p99 of 3 calls * s > budget 1e-06 s"),
        ("p95=1e-6, runs=4", 1, "  p95 of 4 calls over 4 runs * s > budget 1e-06 s"),
        ("calls=1, runs=2", 2, "  run 1: 2 calls > budget 1 calls"),
    ],
)
def test_each_budget_fails_with_its_message(
    pytester: pytest.Pytester, budget: str, calls: int, line: str
) -> None:
    result = run(pytester, budget, calls)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*LLM budget exceeded in test_budget.py::test_calls (* violation*):", line, "hint: *"]
    )


@pytest.mark.parametrize(
    ("budget", "calls"),
    [
        ("total=60", 1),
        ("ttft=60", 1),
        ("tokens_per_s=0.001", 1),
        ("calls=2", 2),
        ("tokens=10", 2),
        ("wall=60", 2),
        ("p50=60, p95=60, p99=60", 3),
    ],
)
def test_each_budget_passes_within_its_limit(
    pytester: pytest.Pytester, budget: str, calls: int
) -> None:
    run(pytester, budget, calls).assert_outcomes(passed=1)


def test_runs_repeat_the_body_and_judge_percentiles_over_every_run(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        bodies = []

        @pytest.fixture
        def setups():
            bodies.append("setup")
            return bodies

        @pytest.mark.llm_budget(p95=60, calls=1, runs=5)
        def test_repeated(ollama_client, llm_calls, setups):
            setups.append("body")
            ollama_client.generate(tier="fast", prompt="hi", options={"num_predict": 2})
            # each run sees the calls of the runs before it
            assert len(llm_calls) == setups.count("body")

        def test_counts():
            assert bodies == ["setup"] + ["body"] * 5
        """
    )
    result = pytester.runpytest(*FAST, "-p", "no:randomly", "--llm-report", "r.json")
    result.assert_outcomes(passed=2)
    import json

    data = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    [repeated] = [t for t in data["tests"] if t["nodeid"].endswith("test_repeated")]
    assert (repeated["runs"], len(repeated["calls"])) == (5, 5)


def test_a_per_call_violation_shows_the_breakdown(pytester: pytest.Pytester) -> None:
    result = run(pytester, "total=1e-6")
    result.stdout.fnmatch_lines(
        ["    load * s, prompt * s, generation * s, queue+network * s, cache off"]
    )


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ("2.0", "give budgets as keywords, e.g. llm_budget(total=2.0)"),
        ("runs=0", "runs=0 must be above 0"),
        ("runs=2.5", "runs=2.5 must be a whole number"),
        ("totl=2", "unknown budget 'totl'; the budgets are total, ttft, tokens_per_s,*"),
        ("total='fast'", "total='fast' must be a number of seconds"),
        ("calls=1.5", "calls=1.5 must be a whole number"),
        ("ttft=-1", "ttft=-1 must be above 0"),
        ("mode='loud'", "mode='loud': choose one of enforce, warn, off"),
    ],
)
def test_a_bad_marker_fails_at_collection(
    pytester: pytest.Pytester, budget: str, message: str
) -> None:
    result = run(pytester, budget)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*marker llm_budget on test_budget.py::test_calls: {message}"])


# our own runs turn warnings into errors; a user's run shows them
SHOW_WARNINGS = ("-W", "always::pytest_llmperf.errors.LLMBudgetWarning")


def test_warn_mode_passes_with_a_warning(pytester: pytest.Pytester) -> None:
    result = run(pytester, "total=1e-6, mode='warn'", 1, *SHOW_WARNINGS)
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*LLMBudgetWarning: LLM budget exceeded in *test_calls*"])


def test_budget_mode_from_the_command_line(pytester: pytest.Pytester) -> None:
    run(pytester, "total=1e-6", 1, "--llm-budget-mode", "off").assert_outcomes(passed=1)
    result = run(pytester, "total=1e-6", 1, "--llm-budget-mode", "warn", *SHOW_WARNINGS)
    result.assert_outcomes(passed=1, warnings=1)


def test_suite_budgets_per_tier(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nllm_budgets =\n    fast: total=1e-6\n    balanced: total=60\n")
    pytester.makepyfile(
        """
        def test_fast(ollama_client):
            ollama_client.generate(tier="fast", prompt="x")

        def test_balanced(ollama_client):
            ollama_client.generate(tier="balanced", prompt="x")
        """
    )
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*LLM budget exceeded in *test_fast (1 violation):*"])


def test_a_bad_suite_budget_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--llm-budget", "fast total=1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--llm-budget: cannot read budget 'fast total=1': write TIER:*"])


def test_a_cold_load_gets_the_warm_up_hint(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm_budget(total=1e-6)
        def test_cold(ollama_client):
            ollama_client.generate(tier="complex", prompt="x", options={"num_predict": 1})
        """
    )
    result = pytester.runpytest("--llm-emulator-time-scale", "0.05", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "hint: test test_a_cold_load_gets_the_warm_up_hint.py::test_cold spent *% of its LLM "
            "time loading llama3:8b: warm it up once per session (the llm_warm_up fixture*"
        ]
    )


def test_warm_up_calls_are_not_judged(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm_budget(calls=1)
        def test_one_call(ollama_client, llm_calls):
            ollama_client.warm_up(["llama3.2:1b"])
            ollama_client.generate(tier="fast", prompt="x")
            assert len(llm_calls) == 2
        """
    )
    pytester.runpytest(*FAST).assert_outcomes(passed=1)


REPLAYED = """
import pytest

@pytest.mark.llm_cassette("slow.yaml")
@pytest.mark.llm_budget(ttft={ttft})
def test_story(ollama_client, llm_calls):
    list(ollama_client.generate(tier="fast", prompt="a story", stream=True))
    assert llm_calls[0].timing == "{timing}"
"""


def test_budgets_judge_a_replayed_cassette_on_its_recorded_timing(
    pytester: pytest.Pytester,
) -> None:
    # record a cold load (100 ms at this time scale); a budget of 10 s passes
    pytester.makepyfile(test_replayed=REPLAYED.format(ttft=10, timing="live"))
    slow = ["--llm-emulator-time-scale", "0.1", "-p", "no:cacheprovider"]
    pytester.runpytest("--llm-record-mode", "once", *slow).assert_outcomes(passed=1)
    # replayed instantly with no server behind it, the call is judged on the recorded times
    pytester.makepyfile(test_replayed=REPLAYED.format(ttft=0.05, timing="recorded"))
    result = pytester.runpytest("--llm-host", "127.0.0.1:9", *slow)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "  call 1 of 1 (/api/generate, llama3.2:1b, tier fast): time to first token * s"
            " > budget 0.05 s"
        ]
    )
    pytester.makepyfile(test_replayed=REPLAYED.format(ttft=10, timing="recorded"))
    pytester.runpytest("--llm-host", "127.0.0.1:9", *slow).assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("decorators", "fixtures", "message"),
    [
        ("", "benchmark", "runs=3 repeats the test body, and pytest-benchmark's fixture"),
        ("@pytest.mark.llm_cassette", "", "runs=3 repeats the test body, and a cassette"),
        ("", "llm_cassette", "runs=3 repeats the test body, and a cassette"),
    ],
)
def test_runs_refuses_what_cannot_repeat(
    pytester: pytest.Pytester, decorators: str, fixtures: str, message: str
) -> None:
    args = ", ".join(["ollama_client", *([fixtures] if fixtures else [])])
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.llm_budget(p95=60, runs=3)
        {decorators}
        def test_repeated({args}):
            pass
        """
    )
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*marker llm_budget on test_runs_refuses*: {message}*"])


def test_runs_measure_the_server_not_the_cache(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm_budget(p95=60, runs=3)
        def test_repeated(ollama_client, llm_calls):
            ollama_client.generate(tier="fast", prompt="hi", options={"temperature": 0})
            assert {call.cache for call in llm_calls} == {"off"}
        """
    )
    result = pytester.runpytest(*FAST[:-2], "--llm-cache", "memory")
    result.assert_outcomes(passed=1)


def test_a_failing_run_is_named_and_counted(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        count = []

        @pytest.mark.llm_budget(p95=60, runs=4)
        def test_repeated(ollama_client):
            count.append(1)
            ollama_client.generate(tier="fast", prompt="hi")
            assert len(count) < 2, "the second run fails"
        """
    )
    result = pytester.runpytest(*FAST, "--llm-report", "r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*llmperf*", "*failed in run 2 of 4*"])
    import json

    data = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    [test] = data["tests"]
    assert (test["runs"], len(test["calls"]), test["repeated"]) == (2, 2, True)


def test_runs_under_pytest_asyncio(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm_budget(p95=60, calls=1, runs=3)
        async def test_repeated(async_ollama_client, llm_calls):
            await async_ollama_client.generate(tier="fast", prompt="hi")
        """
    )
    result = pytester.runpytest("-p", "asyncio", *FAST, "--llm-report", "r.json")
    result.assert_outcomes(passed=1)
    import json

    [test] = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))["tests"]
    assert (test["runs"], len(test["calls"])) == (3, 3)
