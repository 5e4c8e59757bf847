"""pytest-llmperf's hooks (the ``pytest11`` entry point). Thin: each hands its job on.

Start-up: the options (:mod:`.settings`), the markers (:mod:`.markers`), the observation of
every LLM call from the first conftest on (:mod:`pytest_llmperf.observe`); the run's report
(:mod:`.session`); the per-test hooks, registered only when a test may call an LLM
(:mod:`.tracking`); the fixtures (:mod:`.fixtures`). What a suite that makes no LLM calls does
not use loads only when a test needs it: httpx, uvicorn, vcrpy, redis, and the per-test hooks
with the records, budgets and report they feed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

import pytest

from pytest_llmperf.plugin import markers
from pytest_llmperf.plugin import settings as _settings

if TYPE_CHECKING:
    from pytest_llmperf.plugin.runtime import Runtime
    from pytest_llmperf.plugin.tracking import CallObserver, Tracker

pytest_plugins = ["pytest_llmperf.plugin.fixtures"]

SETTINGS_KEY = pytest.StashKey[_settings.Settings]()
RUNTIME_KEY: pytest.StashKey[Runtime] = pytest.StashKey()
OBSERVER_KEY: pytest.StashKey[CallObserver] = pytest.StashKey()
STOP_OBSERVING_KEY = pytest.StashKey[Callable[[], None]]()
UNBLOCK_KEY = pytest.StashKey[contextlib.ExitStack]()


def pytest_addoption(parser: pytest.Parser) -> None:
    _settings.add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_llmperf.plugin import hookspecs as hooks

    pluginmanager.add_hookspecs(hooks)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Observe from before the first conftest is imported: it may call an LLM at import."""
    _observe(early_config, _settings.resolve(early_config, early=True))


def _observe(config: pytest.Config, settings: _settings.Settings) -> None:
    """Measure every LLM call the process makes, whatever the client (``measure = all``)."""
    observer = config.stash.get(OBSERVER_KEY, None)
    wanted = settings.enabled and settings.measure == "all"
    if observer is not None:  # observing since the conftests: now with the final settings
        if wanted:
            observer.use(settings)
            return
        config.stash[STOP_OBSERVING_KEY]()
        del config.stash[STOP_OBSERVING_KEY], config.stash[OBSERVER_KEY]
        return
    if wanted:
        from pytest_llmperf.observe.point import start_observing
        from pytest_llmperf.plugin.tracking import CallObserver

        config.stash[OBSERVER_KEY] = observer = CallObserver(config, settings)
        config.stash[STOP_OBSERVING_KEY] = start_observing(observer)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SETTINGS_KEY] = settings = _settings.resolve(config)
    markers.register(config)
    _observe(config, settings)
    if not settings.enabled:  # --llm-enabled off: markers and ini keys known, nothing done
        return
    if settings.block_network:  # until pytest_unconfigure
        from pytest_llmperf.plugin.network import blocking

        config.stash[UNBLOCK_KEY] = stack = contextlib.ExitStack()
        stack.enter_context(blocking(settings.allowed_hosts))
    if settings.budgets:  # they judge every test's calls, however it reaches its client
        tracker(config, in_test=False)
    if hasattr(config, "workerinput"):  # an xdist worker: the controller reports
        return
    from pytest_llmperf.plugin.session import RunSession

    run = RunSession(config, settings)
    run.read_baseline()
    config.pluginmanager.register(run, "llmperf-session")
    if config.pluginmanager.hasplugin("html") or config.pluginmanager.hasplugin(
        "pytest_html.plugin"
    ):  # pytest-html's table gets each test's LLM calls and verdict
        from pytest_llmperf.report.html_rows import register

        register(config)


# A test that uses one of these, or one of our markers, may make LLM calls (or, with
# pytest-benchmark's fixture, repeats its body by design): the run gets the per-test hooks.
# _llmperf_runtime is behind every client, llm_cache and llm_warm_up.
TRACKED_FIXTURES = frozenset({"_llmperf_runtime", "llm_calls", "llm_cassette", "benchmark"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Our markers are checked; a test marked ``llm_cassette`` uses the ``llm_cassette``
    fixture, set up first; a run with a test that may make LLM calls gets the per-test hooks."""
    if not config.stash[SETTINGS_KEY].enabled:
        return
    tracked = False
    for item in items:
        names = getattr(item, "fixturenames", None)
        found = markers.on(item)
        if found:
            problem = markers.problem(item)
            if problem is not None:  # the tracker fails the test at its setup
                from pytest_llmperf.plugin.tracking import MARKER_PROBLEM_KEY

                item.stash[MARKER_PROBLEM_KEY] = problem
        if markers.CASSETTE in found and names is not None and "llm_cassette" not in names:
            names.insert(0, "llm_cassette")
        tracked = tracked or bool(found) or not TRACKED_FIXTURES.isdisjoint(names or ())
    if tracked:
        tracker(config, in_test=False)


def tracker(config: pytest.Config, *, in_test: bool) -> Tracker:
    """The per-test hooks (tracking.py), registered on first need."""
    from pytest_llmperf.plugin import tracking

    settings = config.stash[SETTINGS_KEY]
    return tracking.start(config, settings, in_test=in_test, judge=settings.enabled)


@pytest.hookimpl(optionalhook=True)
def pytest_recording_configure(config: pytest.Config, vcr: object) -> None:
    """pytest-recording's cassettes leave the LLM calls to ours, where a test has both."""
    from pytest_llmperf.plugin.beside_vcr import leave_llm_calls_to_ours

    leave_llm_calls_to_ours(vcr)


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    """While the tests run, a call the plugin did not expect belongs to the test running."""
    observer: CallObserver | None = session.config.stash.get(OBSERVER_KEY, None)
    if observer is not None:
        observer.testing = True
    try:
        if not session.config.stash[SETTINGS_KEY].enabled:
            return (yield)
        from pytest_llmperf.plugin.session import terminating_interrupts

        with terminating_interrupts():
            return (yield)
    finally:
        if observer is not None:
            observer.testing = False


def pytest_unconfigure(config: pytest.Config) -> None:
    if RUNTIME_KEY in config.stash:
        config.stash[RUNTIME_KEY].close()
    if UNBLOCK_KEY in config.stash:
        config.stash[UNBLOCK_KEY].close()
        del config.stash[UNBLOCK_KEY]
    if STOP_OBSERVING_KEY in config.stash:
        config.stash[STOP_OBSERVING_KEY]()
        del config.stash[STOP_OBSERVING_KEY]
