"""What a pytest run shows a user who got something wrong: the message once, no traceback of
ours, the other tests run, nothing lost. Each case is one inner run through pytester."""

from __future__ import annotations

import pytest

FAST = ["--llm-emulator-time-scale", "0.02", "-p", "no:cacheprovider"]
CHAINED = "During handling of the above exception"


def sections(result: pytest.RunResult) -> str:
    """The run's output above the short summary (which repeats each failure's first line)."""
    return result.stdout.str().split("short test summary info")[0]


def test_a_bad_marker_fails_only_its_test_once_and_every_other_test_and_file_runs(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_first="""
        import pytest

        @pytest.mark.llm_budget(total="fast")
        def test_bad_budget():
            pass

        @pytest.mark.llm_cassette(record_mode="sometimes")
        def test_bad_cassette():
            pass

        @pytest.mark.llm_settings(tiers=5)
        def test_bad_settings():
            pass

        def test_fine():
            pass
        """,
        test_second="def test_other_file(): pass",
    )
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(passed=2, errors=3)
    shown = sections(result)
    for message in (
        "marker llm_budget on test_first.py::test_bad_budget: total='fast' must be a number of seconds",
        "marker llm_cassette on test_first.py::test_bad_cassette: record_mode='sometimes': choose one of",
        "invalid value 5 for marker llm_settings on test_first.py::test_bad_settings, argument tiers: "
        "give a string or a list of strings (as TIER=MODEL)",
    ):
        assert shown.count(message) == 1, message
    assert CHAINED not in result.stdout.str()
    assert "Traceback" not in result.stdout.str()


def test_a_setting_that_is_not_a_number_stops_the_run_with_one_line(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nllm_emulator_time_scale = fast\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == (
        "ERROR: invalid value 'fast' for ini option llm_emulator_time_scale: must be a number "
        ">= 0 (1: the profiles' delays, 0.1: ten times faster)"
    )
    assert "could not convert string to float" not in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_cassette_of_the_wrong_shape_names_the_file_and_the_field_once(
    pytester: pytest.Pytester,
) -> None:
    cassette = pytester.path / "cassettes" / "broken.yaml"
    cassette.parent.mkdir()
    cassette.write_text(
        '{"version": 1, "interactions": [{"request": {"method": "POST", "uri": "http://h/api/'
        'generate"}, "response": {"status": {"code": "200"}}}]}\n',
        encoding="utf-8",
    )
    before = cassette.read_bytes()
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm_cassette("broken.yaml")
        def test_replays(ollama_client):
            pass

        def test_fine():
            pass
        """
    )
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(passed=1, errors=1)
    message = (
        f"cannot read cassette {cassette}: interactions[0].response.status.code is '200' (str), "
        "not an HTTP status from 100 to 599. It is left as it is; fix or delete it, or record "
        "it again with --llm-record-mode rewrite"
    )
    assert sections(result).count(message) == 1
    assert CHAINED not in result.stdout.str()
    assert "TypeError" not in result.stdout.str()
    assert cassette.read_bytes() == before  # nothing lost


def test_a_missing_cassette_says_it_does_not_exist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm_cassette("never-recorded.yaml")
        def test_replays(ollama_client):
            ollama_client.generate(tier="fast", prompt="hi")
        """
    )
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*no recorded answer in cassette */cassettes/never-recorded.yaml for POST "
            "/api/generate*",
            "*the cassette file does not exist: nothing was recorded for this test",
        ]
    )
    assert "no requests with this method at all" not in result.stdout.str()
    assert not (pytester.path / "cassettes" / "never-recorded.yaml").exists()


def test_a_cassette_that_cannot_be_written_is_said_once(pytester: pytest.Pytester) -> None:
    (pytester.path / "cassettes").write_text("a file where the folder should be")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm_cassette
        def test_records(ollama_client):
            ollama_client.generate(tier="fast", prompt="hi", options={"temperature": 0})
        """
    )
    result = pytester.runpytest(*FAST, "--llm-record-mode", "once")
    result.assert_outcomes(passed=1, errors=1)  # the test passed; its teardown could not save
    shown = sections(result)
    assert shown.count("cannot write cassette ") == 1
    assert "Check the folder (llm_cassette_dir) is writable" in shown
    assert CHAINED not in result.stdout.str()


LONG_ID = "b" * 300


def test_a_long_parametrize_id_records_and_replays(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.parametrize("x", [1], ids=["{LONG_ID}"])
        @pytest.mark.llm_cassette
        def test_long(x, ollama_client):
            ollama_client.generate(tier="fast", prompt="hi", options={{"temperature": 0}})
        """
    )
    recorded = pytester.runpytest(*FAST, "--llm-record-mode", "once")
    recorded.assert_outcomes(passed=1)
    assert "File name too long" not in recorded.stdout.str()
    [cassette] = (pytester.path / "cassettes").rglob("*.yaml")
    assert len(cassette.name.encode()) <= 255
    assert cassette.name.startswith("test_long-bbbb")
    replayed = pytester.runpytest(*FAST)  # --llm-record-mode none: replay only
    replayed.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("host", "message"),
    [
        (
            "http://127.0.0.1:9",
            "*LLMConnectError: cannot connect to the LLM server at http://127.0.0.1:9*"
            "Start Ollama there (`ollama serve`)*",
        ),
        (
            "http://no-such-host.invalid:11434",
            "*LLMConnectError: cannot connect to the LLM server at "
            "http://no-such-host.invalid:11434*",
        ),
    ],
    ids=["unreachable", "unresolvable"],
)
def test_a_host_that_does_not_answer_fails_the_test_with_the_way_out(
    pytester: pytest.Pytester, host: str, message: str
) -> None:
    pytester.makepyfile(
        """
        def test_calls(ollama_client):
            ollama_client.generate(tier="fast", prompt="hi")

        def test_fine():
            pass
        """
    )
    result = pytester.runpytest(*FAST, "--llm-host", host, "--llm-retries", "0")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines([message])
    assert CHAINED not in result.stdout.str()
