"""Which test an LLM call belongs to, and what each test's reports carry.

The per-test hooks live on a :class:`Tracker`, which the plugin registers only in a run
that can make LLM calls: when suite budgets are set, when a collected test uses the
plugin's fixtures or markers, or when a test first reaches for a client, its records or a
cassette at run time (``request.getfixturevalue``). A suite that does none of these runs
no hook of ours per test.

While a test runs, the router sends each call's record to that test's :class:`Recorder`;
the records travel on its teardown report as ``report.llm_calls``, and the budget's
violations and runs on its call report as ``report.llm_violations``, ``report.llm_runs`` and
``report.llm_repeated`` (JSON-able, so pytest-xdist carries them to the controller, which
writes the report).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING

import pytest

from pytest_llmperf.errors import LLMBudgetWarning
from pytest_llmperf.judge import budget as _budget
from pytest_llmperf.observe.measure import Routes, Sink
from pytest_llmperf.observe.records import CallRecord, Discard, Recorder, RecordRouter
from pytest_llmperf.plugin import markers
from pytest_llmperf.plugin.markers import BUDGET, UNMEASURED
from pytest_llmperf.plugin.settings import Settings

if TYPE_CHECKING:
    from pytest_llmperf.client.faces import AsyncOllamaClient

RECORDER_KEY = pytest.StashKey[Recorder]()
PASSED_KEY = pytest.StashKey[bool]()
VIOLATIONS_KEY = pytest.StashKey[list[dict[str, object]]]()
RUNS_KEY = pytest.StashKey[int]()
ATTEMPT_KEY = pytest.StashKey[int]()
MARKER_PROBLEM_KEY = pytest.StashKey[str]()  # what is wrong with the test's markers
TRACKER_KEY = pytest.StashKey["Tracker"]()
ASYNC_CLIENTS_KEY = pytest.StashKey[list["AsyncOllamaClient"]]()  # the fixture's
SESSION_CALLS = "llmperf_session_calls"  # the key of an xdist worker's session calls


def start(
    config: pytest.Config, settings: Settings, *, in_test: bool, judge: bool = True
) -> Tracker:
    """The run's tracker, registered now if it is not yet.

    ``judge=False`` (the plugin is off): made, for the fixtures' records, but its hooks are
    not registered.
    ``in_test``: a fixture asks, inside a test whose protocol began without the tracker;
    the calls it makes from now on wait in a recorder of their own, which the test claims
    (through ``llm_calls``, or at its next report at the latest).
    """
    tracker = config.stash.get(TRACKER_KEY, None)
    if tracker is None:
        tracker = config.stash[TRACKER_KEY] = Tracker(settings)
        if in_test:
            tracker.router.current = Recorder()
        if judge:  # (with the plugin off, the fixtures' calls are kept but not judged)
            config.pluginmanager.register(tracker, "llmperf-tracker")
    return tracker


class CallObserver:
    """What the interception point reports to: the recorder of whatever runs now.

    The first LLM call of a run that had no reason to expect one (a test on the user's own
    client, with none of our fixtures or markers) registers the tracker then.
    """

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.testing = False  # the tests are running (else: collection, or the end)
        self.use(settings)

    def use(self, settings: Settings) -> None:
        self.settings = settings
        self.routes = Routes(settings.route_prefixes)

    def sink(self) -> Sink | None:
        tracker = self.config.stash.get(TRACKER_KEY, None)
        if tracker is None:
            tracker = start(self.config, self.settings, in_test=self.testing)
        current = tracker.router.current
        return None if isinstance(current, Discard) else current


class Tracker:
    """The per-test hooks: each test's recorder, its budget verdict, its reports' extras."""

    def __init__(self, settings: Settings) -> None:
        self.router = RecordRouter()
        self.latest: Recorder | None = None  # the recorder of the test begun last
        self.budget_mode = settings.budget_mode
        self.suite_budgets: Mapping[str, _budget.Budget] = settings.budgets

    def claim(self, item: pytest.Item) -> Recorder:
        """``item``'s recorder: the one current now if the test began before we were here."""
        if RECORDER_KEY not in item.stash:
            item.stash[RECORDER_KEY] = self.router.current
            self.router.current.name = item.nodeid
        return item.stash[RECORDER_KEY]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:
            self.router.current = self.router.session

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        """Each attempt at a test (pytest-rerunfailures makes several) gets its own records."""
        item.stash[ATTEMPT_KEY] = item.stash.get(ATTEMPT_KEY, 0) + 1
        if VIOLATIONS_KEY in item.stash:  # an earlier attempt's
            del item.stash[VIOLATIONS_KEY]
        if RUNS_KEY in item.stash:
            del item.stash[RUNS_KEY]
        if PASSED_KEY in item.stash:  # an earlier attempt's verdict is not this one's
            del item.stash[PASSED_KEY]
        unmeasured = item.get_closest_marker(UNMEASURED) is not None
        recorder = Discard(item.nodeid) if unmeasured else Recorder(item.nodeid)
        self.router.current = item.stash[RECORDER_KEY] = self.latest = recorder
        return (yield)

    @pytest.hookimpl(tryfirst=True, specname="pytest_runtest_setup")
    def pytest_runtest_setup_refuses_bad_markers(self, item: pytest.Item) -> None:
        """A bad marker argument fails its test, before its fixtures; the others run."""
        problem = item.stash.get(MARKER_PROBLEM_KEY, None)
        if problem is not None:
            pytest.fail(problem, pytrace=False)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[object]
    ) -> Generator[None, object, object]:
        """A fixture shared beyond one test (a session's warm-up) calls for the session."""
        if fixturedef.scope == "function":
            return (yield)
        router = self.router
        current, router.current = router.current, router.session
        try:
            return (yield)
        finally:
            router.current = current

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        output = getattr(session.config, "workeroutput", None)
        if output is not None:  # an xdist worker: its session's calls go to the controller
            output[SESSION_CALLS] = [record.to_dict() for record in self.router.session]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        """After the test body: run it again if its budget asks for runs, then judge its calls."""
        try:
            yield
            self._after_body(item)
        finally:
            # while the body's event loop is still open: some close it without closing its
            # async generators first (pytest-asyncio 0.24), before the fixtures' teardown
            for client in item.stash.get(ASYNC_CLIENTS_KEY, ()):
                client.close_from_sync()

    def _after_body(self, item: pytest.Item) -> None:
        records = self.claim(item).records
        _feed_benchmark(item, records)
        if item.get_closest_marker(BUDGET) is None and not self.suite_budgets:
            return  # the common case: nothing to judge
        budget = markers.budget(item)
        runs = _run_again(item, budget.runs or 1, records)
        mode = budget.mode or self.budget_mode
        if mode != "off":
            self._judge(item, budget, records, runs, mode)

    def _judge(
        self,
        item: pytest.Item,
        budget: _budget.Budget,
        records: list[CallRecord],
        runs: list[int],
        mode: str,
    ) -> None:
        violations = _budget.judge(budget, records, self.suite_budgets, runs)
        if not violations:
            return
        calls = _budget.judged(records)
        found: list[dict[str, object]] = [
            {
                "budget": v.budget,
                "measured": v.measured,
                "limit": v.limit,
                "call": v.call,
                "model": calls[v.call - 1].model if v.call is not None else None,
                "message": v.line,
            }
            for v in violations
        ]
        item.stash[VIOLATIONS_KEY] = found
        message = _budget.verdict(item.nodeid, violations, records)
        if mode == "warn":
            import warnings

            warnings.warn(LLMBudgetWarning(message), stacklevel=1)
        else:
            pytest.fail(message, pytrace=False)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        # JSON-able attributes: pytest-xdist carries them to the controller with the report
        report.llm_attempt = item.stash.get(ATTEMPT_KEY, 1)  # type: ignore[attr-defined]
        if report.when == "call":
            item.stash[PASSED_KEY] = report.passed
            report.llm_violations = item.stash.get(VIOLATIONS_KEY, [])  # type: ignore[attr-defined]
            report.llm_runs = runs = item.stash.get(RUNS_KEY, 1)  # type: ignore[attr-defined]
            # the body ran more than once by design: runs=N, or pytest-benchmark's rounds
            benchmarked = "benchmark" in getattr(item, "fixturenames", ())
            report.llm_repeated = runs > 1 or benchmarked  # type: ignore[attr-defined]
        elif report.when == "teardown":
            records = self.claim(item).records
            report.llm_calls = [record.to_dict() for record in records]  # type: ignore[attr-defined]
        return report


def _feed_benchmark(item: pytest.Item, records: list[CallRecord]) -> None:
    """pytest-benchmark's fixture, where the test used it, gets the calls' figures."""
    benchmark = getattr(item, "funcargs", {}).get("benchmark")
    if benchmark is not None:
        from pytest_llmperf.report.document import add_to_benchmark

        add_to_benchmark(benchmark, records)


def _run_again(item: pytest.Item, runs: int, records: list[CallRecord]) -> list[int]:
    """Run the body again up to ``runs`` times in all (``llm_budget(runs=N)``); the number
    of records after each run."""
    ends = [len(records)]
    for number in range(2, runs + 1):
        item.stash[RUNS_KEY] = number
        try:
            item.runtest()
        except BaseException:
            item.add_report_section("call", "llmperf", f"failed in run {number} of {runs}")
            raise
        ends.append(len(records))
    return ends
