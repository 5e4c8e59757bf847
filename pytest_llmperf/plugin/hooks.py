"""pytest-llmperf's pytest hooks and fixtures. Thin: the work lives in the modules they call."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

from pytest_llmperf.errors import ConfigurationError
from pytest_llmperf.plugin import markers
from pytest_llmperf.plugin import settings as _settings

# What a suite that makes no LLM calls does not use loads when a test needs it: the heavy
# parts (httpx, uvicorn, vcrpy, redis), and the per-test hooks (tracking.py) with the
# records, budgets and report they feed.
if TYPE_CHECKING:
    from pytest_llmperf.client.cache import ResponseCache
    from pytest_llmperf.client.faces import AsyncOllamaClient, OllamaClient
    from pytest_llmperf.emulator.server import EmulatorServer
    from pytest_llmperf.judge.gate import Comparison
    from pytest_llmperf.observe.cassettes import CassetteSession
    from pytest_llmperf.observe.records import Recorder
    from pytest_llmperf.plugin.runtime import Runtime
    from pytest_llmperf.plugin.tracking import CallObserver, Tracker

SETTINGS_KEY = pytest.StashKey[_settings.Settings]()
RUNTIME_KEY = pytest.StashKey["Runtime"]()
RUN_KEY = pytest.StashKey["_Run"]()
OBSERVER_KEY = pytest.StashKey["CallObserver"]()
STOP_OBSERVING_KEY = pytest.StashKey[Callable[[], None]]()
UNBLOCK_KEY = pytest.StashKey[contextlib.ExitStack]()


class _Run:
    """The controller's view of the run, for the report: every test report, as it came."""

    def __init__(self) -> None:
        import time

        self.started = time.time()
        self.reports: list[pytest.TestReport] = []
        self.path: Path | None = None
        self.data: dict[str, object] | None = None
        self.problems: list[str] = []
        self.baseline: dict[str, object] | None = None
        self.comparison: Comparison | None = None
        self.session_calls: list[dict[str, object]] = []  # calls made outside any test
        self.running: dict[str, None] = {}  # tests begun and not finished, in order
        self.interrupted: str | None = None  # why the run was interrupted, if it was

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.reports.append(report)  # read at the end of the run, if it made LLM calls

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.running[nodeid] = None

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self.running.pop(nodeid, None)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """Ctrl-C, SIGTERM (see :func:`_terminating_interrupts`) or ``pytest.exit``."""
        error = excinfo.value
        if isinstance(error, Terminated):
            self.interrupted = "SIGTERM"
        elif isinstance(error, KeyboardInterrupt):
            self.interrupted = "KeyboardInterrupt"
        else:
            self.interrupted = f"pytest.exit: {getattr(error, 'msg', error)}"

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: object, error: object) -> None:
        """An xdist worker ended: the calls it made outside its tests."""
        from pytest_llmperf.plugin.tracking import SESSION_CALLS

        output = getattr(node, "workeroutput", None) or {}
        self.session_calls.extend(output.get(SESSION_CALLS, ()))


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while the tests ran: the run stops as on Ctrl-C, and says so."""


SETTINGS_MARKER = markers.SETTINGS
BUDGET_MARKER = markers.BUDGET
CASSETTE_MARKER = markers.CASSETTE
UNMEASURED_MARKER = markers.UNMEASURED
ClientT = TypeVar("ClientT")


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
    config.stash[RUN_KEY] = run = _Run()
    _register_markers(config)
    _observe(config, settings)
    if not settings.enabled:  # --llm-enabled off: markers and ini keys known, nothing done
        return
    if settings.block_network:  # until pytest_unconfigure
        from pytest_llmperf.plugin.network import blocking

        config.stash[UNBLOCK_KEY] = stack = contextlib.ExitStack()
        stack.enter_context(blocking(settings.allowed_hosts))
    if settings.budgets:  # they judge every test's calls, however it reaches its client
        _tracker(config, in_test=False)
    if not hasattr(config, "workerinput"):  # only the controller collects and reports
        if settings.report != "off" or settings.baseline is not None:
            config.pluginmanager.register(run, "llmperf-run")
        if config.pluginmanager.hasplugin("html") or config.pluginmanager.hasplugin(
            "pytest_html.plugin"
        ):  # pytest-html's table gets each test's LLM calls and verdict
            from pytest_llmperf.report.html_rows import register

            register(config)
        if settings.baseline is not None:  # read it now: a bad path should not cost a run
            from pytest_llmperf.judge import gate

            try:
                run.baseline = gate.load(settings.baseline, "baseline")
            except ConfigurationError as exc:
                raise pytest.UsageError(f"--llm-baseline: {exc}") from None


def _register_markers(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{SETTINGS_MARKER}(**fields): override pytest-llmperf settings (cache, tiers, hosts, "
        "timeouts, fallback, ...) for this test",
    )
    config.addinivalue_line(
        "markers",
        f"{BUDGET_MARKER}(*, total=None, ttft=None, tokens_per_s=None, calls=None, tokens=None, "
        "wall=None, p50=None, p95=None, p99=None, runs=None, mode=None): fail this test when "
        "its LLM calls go past these limits (seconds, tokens/s, counts); runs=N runs it N times",
    )
    config.addinivalue_line(
        "markers",
        f"{CASSETTE_MARKER}(name=None, *, record_mode=None, timing=None): record this test's "
        "LLM traffic to a cassette, or replay it from one",
    )
    config.addinivalue_line(
        "markers",
        f"{UNMEASURED_MARKER}: leave this test's LLM calls out of the records, budgets and report",
    )


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
            problem = _marker_problem(item)
            if problem is not None:  # the tracker fails the test at its setup
                from pytest_llmperf.plugin.tracking import MARKER_PROBLEM_KEY

                item.stash[MARKER_PROBLEM_KEY] = problem
        if CASSETTE_MARKER in found and names is not None and "llm_cassette" not in names:
            names.insert(0, "llm_cassette")
        tracked = tracked or bool(found) or not TRACKED_FIXTURES.isdisjoint(names or ())
    if tracked:
        _tracker(config, in_test=False)


def _tracker(config: pytest.Config, *, in_test: bool) -> Tracker:
    """The per-test hooks (tracking.py), registered on first need."""
    from pytest_llmperf.plugin import tracking

    settings = config.stash[SETTINGS_KEY]
    return tracking.start(config, settings, in_test=in_test, judge=settings.enabled)


@pytest.hookimpl(optionalhook=True)
def pytest_recording_configure(config: pytest.Config, vcr: object) -> None:
    """pytest-recording's cassettes leave the LLM calls to ours, where a test has both."""
    from pytest_llmperf.plugin.beside_vcr import leave_llm_calls_to_ours

    leave_llm_calls_to_ours(vcr)


def _check_settings(marker: pytest.Mark, where: str) -> None:
    if marker.args:
        raise ValueError(f"{where}: give settings as keywords, e.g. cache='off'")
    _settings.with_marker(_settings.Settings(), marker.kwargs, where)


def _check_budget(marker: pytest.Mark, where: str) -> None:
    from pytest_llmperf.judge.budget import Budget

    Budget.from_marker(marker.args, marker.kwargs, where)


def _check_cassette(marker: pytest.Mark, where: str) -> None:
    from pytest_llmperf.plugin.cassettes import check_marker

    check_marker(marker, where)


_MARKER_CHECKS = {
    SETTINGS_MARKER: _check_settings,
    BUDGET_MARKER: _check_budget,
    CASSETTE_MARKER: _check_cassette,
}


def _marker_problem(item: pytest.Item) -> str | None:
    """What is wrong with our markers on ``item``, if anything: checked at collection, and
    reported as that test's failure (the other tests run)."""
    for marker in item.iter_markers():
        check = _MARKER_CHECKS.get(marker.name)
        if check is None:
            continue
        try:
            check(marker, f"marker {marker.name} on {item.nodeid}")
        except ValueError as exc:
            return str(exc)
    runs = _runs(item)
    if runs > 1:
        from pytest_llmperf.judge.budget import cannot_repeat

        cassette = item.get_closest_marker(CASSETTE_MARKER) is not None
        problem = cannot_repeat(runs, getattr(item, "fixturenames", ()), cassette)
        if problem:
            return f"marker {BUDGET_MARKER} on {item.nodeid}: {problem}"
    return None


def _runs(node: pytest.Item) -> int:
    """How many times the closest ``llm_budget(runs=N)`` runs the test (1 without it)."""
    for marker in node.iter_markers(BUDGET_MARKER):
        if "runs" in marker.kwargs:
            return int(marker.kwargs["runs"])
    return 1


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    """While the tests run, a call the plugin did not expect belongs to the test running."""
    observer: CallObserver | None = session.config.stash.get(OBSERVER_KEY, None)
    if observer is not None:
        observer.testing = True
    try:
        with _terminating_interrupts(session.config.stash[SETTINGS_KEY].enabled):
            return (yield)
    finally:
        if observer is not None:
            observer.testing = False


@contextlib.contextmanager
def _terminating_interrupts(enabled: bool) -> Iterator[None]:
    """While the tests run, SIGTERM interrupts the run as Ctrl-C does (:class:`Terminated`),
    so fixtures tear down, cassettes stay whole and the report says what was running,
    instead of the process dying on the spot. Only where SIGTERM has Python's default
    handling, in the main thread; a second SIGTERM ends the process at once."""
    import signal
    import threading

    if (
        not enabled
        or threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def terminate(number: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated("SIGTERM")

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is terminate:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def pytest_unconfigure(config: pytest.Config) -> None:
    if RUNTIME_KEY in config.stash:
        config.stash[RUNTIME_KEY].close()
    if UNBLOCK_KEY in config.stash:
        config.stash[UNBLOCK_KEY].close()
        del config.stash[UNBLOCK_KEY]
    if STOP_OBSERVING_KEY in config.stash:
        config.stash[STOP_OBSERVING_KEY]()
        del config.stash[STOP_OBSERVING_KEY]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    config = terminalreporter.config
    run = config.stash[RUN_KEY]
    if run.data is not None:
        from pytest_llmperf.report.document import terminal_lines

        terminalreporter.section("llmperf")
        for line in terminal_lines(run.data, run.path):
            terminalreporter.write_line(line)
    if run.comparison is not None:
        from pytest_llmperf.judge import gate

        regressed = bool(run.comparison.regressions)
        for line in gate.table(run.comparison):
            terminalreporter.write_line(line, red=regressed, green=not regressed)
    for problem in run.problems:
        terminalreporter.write_line(f"llmperf: {problem}", red=True)
    if RUNTIME_KEY in config.stash:
        for line in config.stash[RUNTIME_KEY].problems():
            terminalreporter.write_line(f"llmperf: {line}", yellow=True)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput"):  # an xdist worker: the controller writes the report
        return
    run = config.stash[RUN_KEY]
    settings = config.stash[SETTINGS_KEY]
    if not settings.enabled:
        return
    from pytest_llmperf.plugin.tracking import TRACKER_KEY

    if TRACKER_KEY in config.stash:
        run.session_calls.extend(r.to_dict() for r in config.stash[TRACKER_KEY].router.session)
    interrupted = session.exitstatus == pytest.ExitCode.INTERRUPTED or run.interrupted
    running = _running_calls(config, run) if interrupted else {}
    made_calls = (
        bool(run.session_calls)
        or any(getattr(report, "llm_calls", None) for report in run.reports)
        or any(running.values())
    )
    write = settings.report != "off" and (settings.report or made_calls)
    if not write and run.baseline is None:
        return
    import dataclasses
    import time

    from pytest_llmperf.report import document as _report

    collector = _report.Collector()
    for report in run.reports:
        collector.add(report.nodeid, report.when, report.outcome, report.duration, report)
    if interrupted:
        collector.interrupt(run.interrupted or "interrupted", running)
    run.data = _report.build(
        collector, dataclasses.asdict(settings), run.started, time.time(), run.session_calls
    )
    if run.baseline is not None:
        _gate(session, run, settings)
    config.hook.pytest_llmperf_report(report=run.data, config=config)
    if not write:
        return
    try:
        if settings.report:
            path = Path(settings.report)
            _report.write(path, run.data)
        else:
            folder = config.rootpath / settings.report_dir
            path = _report.write_in_folder(folder, run.started, run.data, settings.report_keep)
    except ConfigurationError as exc:
        run.problems.append(str(exc))
        return
    run.path = path


def _running_calls(config: pytest.Config, run: _Run) -> dict[str, list[dict[str, object]]]:
    """The tests running when the run was interrupted, each with the calls it finished (in
    this process; an xdist worker's are lost with it)."""
    from pytest_llmperf.plugin.tracking import TRACKER_KEY

    tracker = config.stash.get(TRACKER_KEY, None)
    current = tracker.latest if tracker is not None else None
    return {
        nodeid: [r.to_dict() for r in current.records]
        if current is not None and current.name == nodeid
        else []
        for nodeid in run.running
    }


def _gate(session: pytest.Session, run: _Run, settings: _settings.Settings) -> None:
    """Compare the run with the baseline; a regression fails the run in enforce mode."""
    from pytest_llmperf.judge import gate

    assert run.data is not None and run.baseline is not None
    run.comparison = comparison = gate.compare(
        run.baseline,
        run.data,
        threshold=settings.baseline_threshold,
        alpha=settings.baseline_alpha,
        baseline=str(settings.baseline),
    )
    run.data["baseline"] = comparison.to_dict()
    try:
        gate.write_outputs(
            comparison, markdown_path=settings.baseline_markdown, append_markdown=True
        )
    except ConfigurationError as exc:
        run.problems.append(str(exc))
    enforced = comparison.regressions and settings.baseline_mode == "enforce"
    if enforced and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
        pytest.fail(f"cannot start the ollama_emulator fixture: {exc}", pytrace=False)
    with server:
        yield server


@pytest.fixture(scope="session")
def _llmperf_runtime(pytestconfig: pytest.Config) -> Runtime:
    if RUNTIME_KEY not in pytestconfig.stash:
        from pytest_llmperf.plugin.runtime import Runtime

        router = _tracker(pytestconfig, in_test=True).router
        pytestconfig.stash[RUNTIME_KEY] = Runtime(router)
    return pytestconfig.stash[RUNTIME_KEY]


@pytest.fixture
def _llmperf_test_settings(
    request: pytest.FixtureRequest, llm_settings: _settings.Settings
) -> _settings.Settings:
    settings = llm_settings
    for marker in reversed(list(request.node.iter_markers(SETTINGS_MARKER))):
        where = f"marker {SETTINGS_MARKER} on {request.node.nodeid}"
        settings = _settings.with_marker(settings, marker.kwargs, where)
    uses_cassette = request.node.get_closest_marker(CASSETTE_MARKER) is not None
    if uses_cassette or "llm_cassette" in request.fixturenames:
        # every request must reach the cassette: a cache hit would leave it out
        settings = replace(settings, cache="off")
    elif _runs(request.node) > 1 or "benchmark" in request.fixturenames:
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
    # (the llm_cassette marker puts the fixture in the test's fixtures: pytest_collection_...)
    if request.scope != "function" or "llm_cassette" not in request.fixturenames:
        return False
    session: CassetteSession = request.getfixturevalue("llm_cassette")
    return not session.records


@pytest.fixture
def ollama_client(
    request: pytest.FixtureRequest,
    _llmperf_runtime: Runtime,
    _llmperf_test_settings: _settings.Settings,
) -> OllamaClient:
    """The sync client on this test's settings; its calls are recorded in ``llm_calls``."""
    return _fixture_call(_llmperf_runtime.client, _llmperf_test_settings, request)


@pytest.fixture
def async_ollama_client(
    request: pytest.FixtureRequest,
    _llmperf_runtime: Runtime,
    _llmperf_test_settings: _settings.Settings,
) -> Iterator[AsyncOllamaClient]:
    """The async client on this test's settings; its calls are recorded in ``llm_calls``.

    A plain fixture, so it needs no async fixture support: it works in pytest-asyncio's
    strict and auto modes and under anyio alike.
    """
    from pytest_llmperf.plugin.tracking import ASYNC_CLIENTS_KEY

    client = _fixture_call(_llmperf_runtime.async_client, _llmperf_test_settings, request)
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
        pytest.fail(f"cannot make the LLM client: {exc}", pytrace=False)


@pytest.fixture
def llm_cache(
    _llmperf_runtime: Runtime, _llmperf_test_settings: _settings.Settings
) -> ResponseCache | None:
    """The response cache this test's clients use (``None`` with ``--llm-cache off``)."""
    return _llmperf_runtime.cache(_llmperf_test_settings)


@pytest.fixture
def llm_calls(request: pytest.FixtureRequest) -> Recorder:
    """The records of this test's LLM calls, in the order they finished."""
    return _tracker(request.config, in_test=True).claim(request.node)


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
    request: pytest.FixtureRequest, _llmperf_test_settings: _settings.Settings
) -> Iterator[CassetteSession]:
    """This test's cassette: its LLM traffic is replayed from it or recorded to it."""
    from pytest_llmperf.observe.cassettes import CassetteError, patched
    from pytest_llmperf.plugin.cassettes import open_session
    from pytest_llmperf.plugin.tracking import PASSED_KEY

    _tracker(request.config, in_test=True)  # its call report tells PASSED_KEY

    try:
        session = open_session(request.node, _llmperf_test_settings)
    except CassetteError as exc:
        pytest.fail(str(exc), pytrace=False)
    with patched(session):
        yield session
    try:
        # no call report: the test did not run to its end (interrupted, or its setup failed)
        session.save(passed=request.node.stash.get(PASSED_KEY, None))
    except CassetteError as exc:
        pytest.fail(str(exc), pytrace=False)
