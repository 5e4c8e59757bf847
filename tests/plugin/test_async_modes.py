"""The async client fixture in every way people run async tests: pytest-asyncio's strict
mode (its default) and auto mode, and anyio, with warnings as errors (an unclosed
connection would be a ResourceWarning)."""

from __future__ import annotations

from importlib.metadata import version

import pytest

FAST = ["--llm-emulator-time-scale", "0.02", "-p", "no:cacheprovider", "-W", "error"]

BODY = """
    answer = await async_ollama_client.generate(tier="fast", prompt="hi", options={"seed": 1})
    assert answer.response
    stream = await async_ollama_client.chat(
        tier="fast", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert [chunk async for chunk in stream]
    assert [(c.tier, c.stream, c.outcome) for c in llm_calls] == [
        ("fast", False, "ok"), ("fast", True, "ok")
    ]
"""


# Run last in each inner file: the client's connections were closed, not left to the GC.
AFTER = """


def test_no_connection_was_left_open():
    import gc
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        gc.collect()
    assert not [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)]
"""


@pytest.fixture(autouse=True)
def _only_this_runs_garbage(pytester: pytest.Pytester) -> None:
    """The inner run starts by collecting what earlier tests of this process left behind."""
    pytester.makeconftest(
        """
        import asyncio
        import gc
        import warnings

        def pytest_sessionstart():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                asyncio.set_event_loop(None)  # a loop an earlier run left set (not ours)
                gc.collect()
        """
    )


def _asyncio_options(mode: str) -> list[str]:
    scope = "asyncio_default_fixture_loop_scope=function"
    return ["-p", "pytest_asyncio.plugin", "-o", f"asyncio_mode={mode}", "-o", scope]


def test_strict_mode_with_the_asyncio_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "import pytest\n\n\n@pytest.mark.asyncio\n"
        f"async def test_strict(async_ollama_client, llm_calls):{BODY}{AFTER}"
    )
    result = pytester.runpytest(*FAST, *_asyncio_options("strict"))
    result.assert_outcomes(passed=2)


def test_strict_mode_twice_in_a_row_on_fresh_loops(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "import pytest\n\n\n@pytest.mark.asyncio\n"
        f"async def test_one(async_ollama_client, llm_calls):{BODY}\n\n"
        "@pytest.mark.asyncio\n"
        f"async def test_two(async_ollama_client, llm_calls):{BODY}{AFTER}"
    )
    result = pytester.runpytest(*FAST, *_asyncio_options("strict"))
    result.assert_outcomes(passed=3)


def test_auto_mode(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(f"async def test_auto(async_ollama_client, llm_calls):{BODY}{AFTER}")
    result = pytester.runpytest(*FAST, *_asyncio_options("auto"))
    result.assert_outcomes(passed=2)


def test_anyio_without_pytest_asyncio(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "import pytest\n\n\n@pytest.fixture\ndef anyio_backend():\n    return 'asyncio'\n\n\n"
        f"@pytest.mark.anyio\nasync def test_anyio(async_ollama_client, llm_calls):{BODY}{AFTER}"
    )
    result = pytester.runpytest(*FAST, "-p", "no:asyncio")
    result.assert_outcomes(passed=2)


def test_a_client_never_used_closes_with_nothing_to_close(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "import pytest\n\n\n@pytest.mark.asyncio\n"
        "async def test_unused(async_ollama_client):\n    assert async_ollama_client\n"
    )
    result = pytester.runpytest(*FAST, *_asyncio_options("strict"))
    result.assert_outcomes(passed=1)


OLD_LOOPS = "pytest-asyncio before 1.0 closes its loops without closing their async generators"


@pytest.mark.skipif(
    int(version("pytest-asyncio").split(".")[0]) < 1,
    reason=f"{OLD_LOOPS}: a client the test never closed cannot be closed with the loop there",
)
def test_a_client_whose_loop_ended_first_was_closed_with_it(pytester: pytest.Pytester) -> None:
    """Made and used inside the test, never closed by it: the loop's end closes it."""
    pytester.makepyfile(
        "import pytest\nfrom pytest_llmperf import AsyncOllamaClient\n\n\n"
        "@pytest.mark.asyncio\nasync def test_forgets(ollama_emulator):\n"
        "    client = AsyncOllamaClient(ollama_emulator.url)\n"
        "    assert (await client.generate(model='llama3.2:1b', prompt='hi')).response\n"
        f"{AFTER}"
    )
    result = pytester.runpytest(*FAST, *_asyncio_options("strict"))
    result.assert_outcomes(passed=2)
