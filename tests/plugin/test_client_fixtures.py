"""The client fixtures, settings and the llm_settings marker, through pytester."""

from __future__ import annotations

import pytest

FAST = ["--llm-emulator-time-scale", "0.02", "-p", "no:cacheprovider"]


def test_clients_call_the_embedded_emulator_and_record_every_call(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        def test_sync(ollama_client, llm_calls):
            answer = ollama_client.generate(tier="fast", prompt="hi")
            assert answer.model == "llama3.2:1b"
            assert [(c.model, c.tier, c.outcome) for c in llm_calls] == [
                ("llama3.2:1b", "fast", "ok")
            ]

        def test_records_are_per_test(llm_calls):
            assert len(llm_calls) == 0

        """
    )
    pytester.runpytest(*FAST).assert_outcomes(passed=2)


def test_the_async_client_under_pytest_asyncio(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        """
        async def test_async(async_ollama_client, llm_calls):
            stream = await async_ollama_client.chat(
                tier="balanced", messages=[{"role": "user", "content": "x"}], stream=True
            )
            chunks = [c async for c in stream]
            assert chunks[-1].done and chunks[-1].model == "llama3.2:3b"
            assert [c.stream for c in llm_calls] == [True]
        """
    )
    pytester.runpytest("-p", "asyncio", *FAST).assert_outcomes(passed=1)


def test_the_cache_is_shared_across_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def ask(client):
            return client.generate(tier="fast", prompt="same", options={"seed": 1})

        def test_first(ollama_client, llm_calls, llm_cache):
            ask(ollama_client)
            assert llm_calls[0].cache == "miss"

        def test_second(ollama_client, llm_calls, ollama_emulator, llm_cache):
            served = ollama_emulator.app.engine.requests_served
            ask(ollama_client)
            assert llm_calls[0].cache == "hit-memory"
            assert ollama_emulator.app.engine.requests_served == served
            assert llm_cache.stats.hits == 1
        """
    )
    pytester.runpytest(*FAST).assert_outcomes(passed=2)


def test_cache_off_from_the_command_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_off(ollama_client, llm_calls, llm_cache):
            for _ in range(2):
                ollama_client.generate(tier="fast", prompt="same", options={"seed": 1})
            assert [c.cache for c in llm_calls] == ["off", "off"]
            assert llm_cache is None
        """
    )
    pytester.runpytest("--llm-cache", "off", *FAST).assert_outcomes(passed=1)


def test_a_marker_overrides_the_settings_for_one_test(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nllm_tiers =\n    fast = llama3.2:3b\n")
    pytester.makepyfile(
        """
        import pytest

        def test_ini(ollama_client):
            assert ollama_client.generate(tier="fast", prompt="x").model == "llama3.2:3b"

        @pytest.mark.llm_settings(tiers=["fast=llama3:8b"], cache="off", fallback=True)
        def test_marker(ollama_client, llm_calls, llm_settings):
            assert ollama_client.generate(tier="fast", prompt="x").model == "llama3:8b"
            assert llm_calls[0].cache == "off"
            assert llm_settings.cache == "memory"  # the session's settings are unchanged
        """
    )
    pytester.runpytest(*FAST).assert_outcomes(passed=2)


def test_a_bad_marker_fails_its_test_naming_it_and_the_argument_and_the_rest_run(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm_settings(retries=-1)
        def test_bad(ollama_client):
            pass

        @pytest.mark.llm_settings(cahce="off")
        def test_typo():
            pass

        def test_fine():
            pass
        """
    )
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(errors=2, passed=1)  # each bad test at its setup; the rest run
    message = (
        "invalid value '-1' for marker llm_settings on test_a_bad_marker_fails_its_test_naming_it_and_the_argument_and_the_rest_run.py::test_bad, "
        "argument retries: must be a whole number >= 0"
    )
    result.stdout.fnmatch_lines([f"*{message}*"])
    # once in the test's section (the short summary below repeats it whole under CI)
    sections = result.stdout.str().split("short test summary info")[0]
    assert sections.count(message) == 1
    assert "During handling of the above exception" not in result.stdout.str()


def test_a_typo_in_a_marker_lists_the_settings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm_settings(cahce="off")
        def test_typo():
            pass
        """
    )
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*unknown setting 'cahce'; a marker can set adaptive_timeouts, api, budget_mode, budgets, cache,*"
        ]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--llm-cache", "mongo://x"],
            "*invalid value 'mongo://x' for command-line option --llm-cache: choose memory, off, or a redis://HOST:PORT/DB URL",
        ),
        (
            ["--llm-host", "ftp://x"],
            "*invalid value 'ftp://x' for command-line option --llm-host: cannot use host 'ftp://x': the scheme must be http or https*",
        ),
        (
            ["--llm-tier", "fast"],
            "*invalid value 'fast' for command-line option --llm-tier: cannot read tier 'fast': write TIER=MODEL*",
        ),
        (
            ["--llm-timeout", "fast: ttft=3"],
            "*--llm-timeout: cannot read timeout 'ttft=3': write PHASE=SECONDS*",
        ),
        (["--llm-fallback", "maybe"], "*--llm-fallback: choose on or off"),
    ],
)
def test_bad_options_name_the_value_and_where_it_came_from(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_host_pool_from_the_command_line_with_the_emulator(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_pool(ollama_client, llm_calls, ollama_emulator):
            for i in range(3):
                ollama_client.generate(tier="fast", prompt=str(i))
            assert {c.host for c in llm_calls} == {ollama_emulator.url}
            assert sum(c.retries for c in llm_calls) == 1
        """
    )
    result = pytester.runpytest("--llm-host", "127.0.0.1:9", "--llm-host", "emulator", *FAST)
    result.assert_outcomes(passed=1)


def test_an_unreachable_host_fails_the_test_with_the_way_out(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_call(ollama_client):
            ollama_client.generate("llama3.2:1b", "x")
        """
    )
    result = pytester.runpytest("--llm-host", "127.0.0.1:9", "--llm-retries", "0", *FAST)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*LLMConnectError: cannot connect to the LLM server at http://127.0.0.1:9*ollama serve*"]
    )


def test_warm_up_fixture_loads_every_tier_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture(scope="session", autouse=True)
        def warm(llm_warm_up):
            return llm_warm_up

        def test_loaded(ollama_client, llm_warm_up):
            assert set(llm_warm_up) == {"llama3.2:1b", "llama3.2:3b", "llama3:8b"}
            assert llm_warm_up["llama3:8b"] > llm_warm_up["llama3.2:1b"]
            loaded = {m["name"] for m in ollama_client.ps()["models"]}
            assert loaded == set(llm_warm_up)

        def test_no_load_left(ollama_client, llm_calls):
            answer = ollama_client.generate(tier="complex", prompt="x")
            assert "load_duration" not in answer or answer.load_duration < 50_000_000
        """
    )
    pytester.runpytest(*FAST).assert_outcomes(passed=2)


def test_llm_settings_can_be_overridden_in_a_conftest(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import dataclasses
        import pytest
        from pytest_llmperf import Tiers

        @pytest.fixture(scope="session")
        def llm_settings(llm_settings):
            return dataclasses.replace(llm_settings, tiers=Tiers.parse(["fast=llama3:8b"]))
        """
    )
    pytester.makepyfile(
        """
        def test_code(ollama_client):
            assert ollama_client.generate(tier="fast", prompt="x").model == "llama3:8b"
        """
    )
    pytester.runpytest(*FAST).assert_outcomes(passed=1)


def test_redis_down_lets_the_tests_pass_and_says_so_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_one(ollama_client, llm_calls):
            for _ in range(2):
                ollama_client.generate(tier="fast", prompt="same", options={"seed": 1})
            assert [c.cache for c in llm_calls] == ["miss", "hit-memory"]

        def test_two(ollama_client, llm_calls):
            ollama_client.generate(tier="fast", prompt="same", options={"seed": 1})
            assert llm_calls[0].cache == "hit-memory"
        """
    )
    result = pytester.runpytest("--llm-cache", "redis://127.0.0.1:9/0", *FAST)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "llmperf: the response cache could not reach redis://127.0.0.1:9/0 (ConnectionError: *); "
            "the calls ran with the in-process cache only"
        ]
    )
    assert result.stdout.str().count("could not reach") == 1


def test_a_real_redis_from_the_command_line_serves_the_next_run(
    pytester: pytest.Pytester, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        """
        import os

        def test_call(ollama_client, llm_calls):
            ollama_client.generate(tier="fast", prompt="kept", options={"seed": 5})
            assert llm_calls[0].cache == os.environ["EXPECTED"]
        """
    )
    for namespace, expected in (("one", "miss"), ("one", "hit-redis"), ("two", "miss")):
        monkeypatch.setenv("EXPECTED", expected)
        result = pytester.runpytest(
            "--llm-cache", redis_url, "--llm-cache-namespace", namespace, *FAST
        )
        result.assert_outcomes(passed=1)
