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

import pytest

from pytest_llmperf import budget as _budget
from pytest_llmperf.errors import LLMBudgetWarning
from pytest_llmperf.markers import BUDGET
from pytest_llmperf.records import Recorder, RecordRouter
from pytest_llmperf.settings import Settings

RECORDER_KEY = pytest.StashKey[Recorder]()
PASSED_KEY = pytest.StashKey[bool]()
VIOLATIONS_KEY = pytest.StashKey[list[dict[str, object]]]()
RUNS_KEY = pytest.StashKey[int]()
TRACKER_KEY = pytest.StashKey["Tracker"]()


def start(config: pytest.Config, settings: Settings, *, in_test: bool) -> Tracker:
    """The run's tracker, registered now if it is not yet.

    ``in_test``: a fixture asks, inside a test whose protocol began without the tracker;
    the calls it makes from now on wait in a recorder of their own, which the test claims
    (through ``llm_calls``, or at its next report at the latest).
    """
    tracker = config.stash.get(TRACKER_KEY, None)
    if tracker is None:
        tracker = config.stash[TRACKER_KEY] = Tracker(settings)
        if in_test:
            tracker.router.current = Recorder()
        config.pluginmanager.register(tracker, "llmperf-tracker")
    return tracker


class Tracker:
    """The per-test hooks: each test's recorder, its budget verdict, its reports' extras."""

    def __init__(self, settings: Settings) -> None:
        self.router = RecordRouter()
        self.budget_mode = settings.budget_mode
        self.suite_budgets: Mapping[str, _budget.Budget] = _budget.suite_budgets(settings.budgets)

    def claim(self, item: pytest.Item) -> Recorder:
        """``item``'s recorder: the one current now if the test began before we were here."""
        if RECORDER_KEY not in item.stash:
            item.stash[RECORDER_KEY] = self.router.current
            self.router.current.name = item.nodeid
        return item.stash[RECORDER_KEY]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        router = self.router
        router.current = item.stash[RECORDER_KEY] = Recorder(item.nodeid)
        try:
            return (yield)
        finally:
            router.current = router.session

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        """After the test body: run it again if its budget asks for runs, then judge its calls."""
        yield
        records = self.claim(item).records
        benchmark = getattr(item, "funcargs", {}).get("benchmark")
        if benchmark is not None:  # pytest-benchmark's fixture
            from pytest_llmperf.report import add_to_benchmark

            add_to_benchmark(benchmark, records)
        marked = list(item.iter_markers(BUDGET))
        if not (marked or self.suite_budgets):  # the common case: nothing to judge
            return
        budget = _budget.Budget()
        for marker in reversed(marked):
            budget = _budget.Budget.from_marker(marker.args, marker.kwargs, item.nodeid).over(
                budget
            )
        runs = [len(records)]
        for number in range(2, (budget.runs or 1) + 1):
            item.stash[RUNS_KEY] = number
            try:
                item.runtest()
            except BaseException:
                item.add_report_section(
                    "call", "llmperf", f"failed in run {number} of {budget.runs}"
                )
                raise
            runs.append(len(records))
        mode = budget.mode or self.budget_mode
        if mode == "off":
            return
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
