"""The run as the report sees it: a plugin object that keeps every test report and, at the end
of the run, builds the report, gates it against the baseline, writes it, and prints it.

Registered on the controller only (under xdist the workers' reports reach it), as
pytest-benchmark's ``BenchmarkSession`` is.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmperf.errors import ConfigurationError

if TYPE_CHECKING:
    from pytest_llmperf.judge.gate import Comparison
    from pytest_llmperf.observe.records import CallDict
    from pytest_llmperf.plugin.settings import Settings


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while the tests ran: the run stops as on Ctrl-C, and says so."""


@contextlib.contextmanager
def terminating_interrupts() -> Iterator[None]:
    """While the tests run, SIGTERM interrupts the run as Ctrl-C does (:class:`Terminated`),
    so fixtures tear down, cassettes stay whole and the report says what was running,
    instead of the process dying on the spot. Only where SIGTERM has Python's default
    handling, in the main thread; a second SIGTERM ends the process at once."""
    import signal
    import threading

    if (
        threading.current_thread() is not threading.main_thread()
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


class RunSession:
    """The controller's view of the run: its test reports, then the report built from them."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.started = time.time()
        self.reports: list[pytest.TestReport] = []
        self.path: Path | None = None
        self.data: dict[str, Any] | None = None
        self.problems: list[str] = []
        self.baseline: dict[str, Any] | None = None
        self.comparison: Comparison | None = None
        self.session_calls: list[CallDict] = []  # calls made outside any test
        self.running: dict[str, None] = {}  # tests begun and not finished, in order
        self.interrupted: str | None = None  # why the run was interrupted, if it was

    def read_baseline(self) -> None:
        """Read the baseline now: a bad path should not cost a whole run."""
        if self.settings.baseline is None:
            return
        from pytest_llmperf.judge import gate

        try:
            self.baseline = gate.load(self.settings.baseline, "baseline")
        except ConfigurationError as exc:
            raise pytest.UsageError(f"--llm-baseline: {exc}") from None

    @property
    def wanted(self) -> bool:
        """Whether the run may end with a report or a gate (else it keeps nothing)."""
        return self.settings.report != "off" or self.settings.baseline is not None

    # --- while the tests run ---------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.wanted:
            self.reports.append(report)  # read at the end of the run, if it made LLM calls

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.running[nodeid] = None

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self.running.pop(nodeid, None)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """Ctrl-C, SIGTERM (see :func:`terminating_interrupts`) or ``pytest.exit``."""
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

    # --- at the end ------------------------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from pytest_llmperf.plugin.tracking import TRACKER_KEY

        if TRACKER_KEY in self.config.stash:
            router = self.config.stash[TRACKER_KEY].router
            self.session_calls.extend(r.to_dict() for r in router.session)
        stopped = session.exitstatus == pytest.ExitCode.INTERRUPTED or self.interrupted
        running = self._running_calls() if stopped else {}
        made_calls = (
            bool(self.session_calls)
            or any(getattr(report, "llm_calls", None) for report in self.reports)
            or any(running.values())
        )
        write = self.settings.report != "off" and bool(self.settings.report or made_calls)
        if not write and self.baseline is None:
            return
        self.data = self._build(running if stopped else None)
        if self.baseline is not None:
            self._gate(session)
        self.config.hook.pytest_llmperf_report(report=self.data, config=self.config)
        if write:
            self._write()

    def _running_calls(self) -> dict[str, list[CallDict]]:
        """The tests running when the run was interrupted, each with the calls it finished
        (in this process; an xdist worker's are lost with it)."""
        from pytest_llmperf.plugin.tracking import TRACKER_KEY

        tracker = self.config.stash.get(TRACKER_KEY, None)
        latest = tracker.latest if tracker is not None else None
        return {
            nodeid: [r.to_dict() for r in latest.records]
            if latest is not None and latest.name == nodeid
            else []
            for nodeid in self.running
        }

    def _build(self, running: dict[str, list[CallDict]] | None) -> dict[str, Any]:
        """The report; ``running``: the run was interrupted while these tests ran."""
        from pytest_llmperf.report import document

        collector = document.Collector()
        for report in self.reports:
            collector.add(report.nodeid, report.when, report.outcome, report.duration, report)
        if running is not None:
            collector.interrupt(self.interrupted or "interrupted", running)
        settings = self.settings.to_json()
        return document.build(collector, settings, self.started, time.time(), self.session_calls)

    def _write(self) -> None:
        from pytest_llmperf.report import document

        assert self.data is not None
        try:
            if self.settings.report:
                path = Path(self.settings.report)
                document.write(path, self.data)
            else:
                folder = self.config.rootpath / self.settings.report_dir
                keep = self.settings.report_keep
                path = document.write_in_folder(folder, self.started, self.data, keep)
        except ConfigurationError as exc:
            self.problems.append(str(exc))
            return
        self.path = path

    def _gate(self, session: pytest.Session) -> None:
        """Compare the run with the baseline; a regression fails the run in enforce mode."""
        from pytest_llmperf.judge import gate

        assert self.data is not None and self.baseline is not None
        settings = self.settings
        self.comparison = comparison = gate.compare(
            self.baseline,
            self.data,
            threshold=settings.baseline_threshold,
            alpha=settings.baseline_alpha,
            baseline=str(settings.baseline),
        )
        self.data["baseline"] = comparison.to_dict()
        try:
            gate.write_outputs(
                comparison, markdown_path=settings.baseline_markdown, append_markdown=True
            )
        except ConfigurationError as exc:
            self.problems.append(str(exc))
        enforced = comparison.regressions and settings.baseline_mode == "enforce"
        if enforced and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.data is not None:
            from pytest_llmperf.report.document import terminal_lines

            terminalreporter.section("llmperf")
            for line in terminal_lines(self.data, self.path):
                terminalreporter.write_line(line)
        if self.comparison is not None:
            from pytest_llmperf.judge import gate

            regressed = bool(self.comparison.regressions)
            for line in gate.table(self.comparison):
                terminalreporter.write_line(line, red=regressed, green=not regressed)
        for problem in self.problems:
            terminalreporter.write_line(f"llmperf: {problem}", red=True)
        from pytest_llmperf.plugin.hooks import RUNTIME_KEY

        if RUNTIME_KEY in self.config.stash:
            for line in self.config.stash[RUNTIME_KEY].problems():
                terminalreporter.write_line(f"llmperf: {line}", yellow=True)
