"""pytest-llmperf's fixtures: the settings, the emulator, the clients, the cache, the records,
the warm-up and the cassette. The hooks that register them are in :mod:`.hooks`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, NoReturn, TypeVar

import pytest

from pytest_llmperf.errors import ConfigurationError
from pytest_llmperf.plugin import markers
from pytest_llmperf.plugin import settings as _settings
from pytest_llmperf.plugin.hooks import RUNTIME_KEY, SETTINGS_KEY, tracker

if TYPE_CHECKING:
    from pytest_llmperf.client.cache import ResponseCache
    from pytest_llmperf.client.faces import AsyncOllamaClient, OllamaClient
    from pytest_llmperf.emulator.server import EmulatorServer
    from pytest_llmperf.observe.cassettes import CassetteSession
    from pytest_llmperf.observe.records import Recorder
    from pytest_llmperf.plugin.runtime import Runtime

ClientT = TypeVar("ClientT")


def _fail(message: str) -> NoReturn:
    """Fail the test with ``message`` alone: called in an ``except`` block, ``pytest.fail``
    would print the error twice ("During handling of the above exception...")."""
    raise pytest.fail.Exception(message, pytrace=False) from None


@pytest.fixture(scope="session")
def llm_settings(pytestconfig: pytest.Config) -> _settings.Settings:
    """The resolved pytest-llmperf settings; override it in a conftest to change them."""
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture(scope="session")
def ollama_emulator(llm_settings: _settings.Settings) -> Iterator[EmulatorServer]:
    """An Ollama-compatible emulator on a free loopback port; ``.url`` is its base URL."""
    from pytest_llmperf.emulator.runner import build_app
    from pytest_llmperf.emulator.server import EmulatorServer

    try:
        app = build_app(
            llm_settings.emulator_profiles,
            llm_settings.emulator_gguf,
            llm_settings.emulator_time_scale,
        )
        server = EmulatorServer(app)
    except ConfigurationError as exc:
        _fail(f"cannot start the ollama_emulator fixture: {exc}")
    with server:
        yield server


@pytest.fixture(scope="session")
def _llmperf_runtime(pytestconfig: pytest.Config) -> Runtime:
    if RUNTIME_KEY not in pytestconfig.stash:
        from pytest_llmperf.plugin.runtime import Runtime

        router = tracker(pytestconfig, in_test=True).router
        pytestconfig.stash[RUNTIME_KEY] = Runtime(router)
    return pytestconfig.stash[RUNTIME_KEY]


@pytest.fixture
def llm_test_settings(
    request: pytest.FixtureRequest, llm_settings: _settings.Settings
) -> _settings.Settings:
    """This test's settings: ``llm_settings`` with its ``llm_settings`` markers laid over, and
    the cache off where a cassette or repeated runs must reach the server each time."""
    settings = llm_settings
    for marker in reversed(list(request.node.iter_markers(markers.SETTINGS))):
        where = f"marker {markers.SETTINGS} on {request.node.nodeid}"
        settings = _settings.with_marker(settings, marker.kwargs, where)
    uses_cassette = request.node.get_closest_marker(markers.CASSETTE) is not None
    if uses_cassette or "llm_cassette" in request.fixturenames:
        # every request must reach the cassette: a cache hit would leave it out
        settings = replace(settings, cache="off")
    elif markers.runs(request.node) > 1 or "benchmark" in request.fixturenames:
        # runs=N and pytest-benchmark's rounds measure the server each time: the cache would
        # answer every repeat
        settings = replace(settings, cache="off")
    return settings


# The address the client fixtures get for the emulator in a test whose cassette only
# replays (--llm-record-mode none, or once with the cassette there): every request is
# answered from the cassette, so no emulator is started. Nothing listens on the discard
# port; a request that got past the cassette would be refused, never answered.
REPLAY_ONLY_URL = "http://127.0.0.1:9"


def _emulator_url(request: pytest.FixtureRequest) -> Callable[[], str]:
    def url() -> str:
        if _replays_only(request):
            return REPLAY_ONLY_URL
        server: EmulatorServer = request.getfixturevalue("ollama_emulator")
        return server.url

    return url


def _replays_only(request: pytest.FixtureRequest) -> bool:
    """Whether this test's cassette answers every request without a server."""
    # (the llm_cassette marker puts the fixture in the test's fixtures: see hooks.py)
    if request.scope != "function" or "llm_cassette" not in request.fixturenames:
        return False
    session: CassetteSession = request.getfixturevalue("llm_cassette")
    return not session.records


@pytest.fixture
def ollama_client(
    request: pytest.FixtureRequest,
    _llmperf_runtime: Runtime,
    llm_test_settings: _settings.Settings,
) -> OllamaClient:
    """The sync client on this test's settings; its calls are recorded in ``llm_calls``."""
    return _fixture_call(_llmperf_runtime.client, llm_test_settings, request)


@pytest.fixture
def async_ollama_client(
    request: pytest.FixtureRequest,
    _llmperf_runtime: Runtime,
    llm_test_settings: _settings.Settings,
) -> Iterator[AsyncOllamaClient]:
    """The async client on this test's settings; its calls are recorded in ``llm_calls``.

    A plain fixture, so it needs no async fixture support: it works in pytest-asyncio's
    strict and auto modes and under anyio alike.
    """
    from pytest_llmperf.plugin.tracking import ASYNC_CLIENTS_KEY

    client = _fixture_call(_llmperf_runtime.async_client, llm_test_settings, request)
    request.node.stash.setdefault(ASYNC_CLIENTS_KEY, []).append(client)  # closed after the body
    yield client
    client.close_from_sync()


def _fixture_call(
    make: Callable[[_settings.Settings, Callable[[], str]], ClientT],
    settings: _settings.Settings,
    request: pytest.FixtureRequest,
) -> ClientT:
    try:
        return make(settings, _emulator_url(request))
    except ConfigurationError as exc:
        _fail(f"cannot make the LLM client: {exc}")


@pytest.fixture
def llm_cache(
    _llmperf_runtime: Runtime, llm_test_settings: _settings.Settings
) -> ResponseCache | None:
    """The response cache this test's clients use (``None`` with ``--llm-cache off``)."""
    return _llmperf_runtime.cache(llm_test_settings)


@pytest.fixture
def llm_calls(request: pytest.FixtureRequest) -> Recorder:
    """The records of this test's LLM calls, in the order they finished."""
    return tracker(request.config, in_test=True).claim(request.node)


@pytest.fixture(scope="session")
def llm_warm_up(
    request: pytest.FixtureRequest,
    _llmperf_runtime: Runtime,
    llm_settings: _settings.Settings,
) -> dict[str, float]:
    """Load every tier's model once per session; the load time (seconds) of each model."""
    client = _llmperf_runtime.client(llm_settings, _emulator_url(request))
    return client.warm_up(keep_alive=llm_settings.keep_alive)


@pytest.fixture
def llm_cassette(
    request: pytest.FixtureRequest, llm_test_settings: _settings.Settings
) -> Iterator[CassetteSession]:
    """This test's cassette: its LLM traffic is replayed from it or recorded to it."""
    from pytest_llmperf.observe.cassettes import CassetteError, patched
    from pytest_llmperf.plugin.cassettes import open_session
    from pytest_llmperf.plugin.tracking import PASSED_KEY

    tracker(request.config, in_test=True)  # its call report tells PASSED_KEY

    try:
        session = open_session(request.node, llm_test_settings)
    except CassetteError as exc:
        _fail(str(exc))
    with patched(session):
        yield session
    try:
        # no call report: the test did not run to its end (interrupted, or its setup failed)
        session.save(passed=request.node.stash.get(PASSED_KEY, None))
    except CassetteError as exc:
        _fail(str(exc))
