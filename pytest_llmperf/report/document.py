"""The validation report: one JSON file per run, and the terminal summary.

Each test's call records and budget violations travel on its pytest reports (JSON-able
attributes, so pytest-xdist carries them to the controller); the controller alone collects
them and writes the file. The layout is versioned and described by the JSON Schema that
ships beside this module (``report-schema-v1.json``).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pytest_llmperf.errors import ConfigurationError
from pytest_llmperf.files import write_atomically
from pytest_llmperf.judge.gate import SCHEMA_VERSION
from pytest_llmperf.judge.recommend import recommend
from pytest_llmperf.observe.records import CallRecord
from pytest_llmperf.stats import quantile

SCHEMA_FILE = "report-schema-v1.json"
TOP = 3  # recommendations shown in the terminal summary


@dataclass
class TestEntry:
    """What the run learnt about one test."""

    nodeid: str
    outcome: str = "passed"
    duration_s: float = 0.0
    runs: int = 1
    repeated: bool = False
    attempts: int = 1
    calls: list[dict[str, Any]] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Collector:
    """The tests of a run, filled from their reports as they arrive (on the controller)."""

    tests: dict[str, TestEntry] = field(default_factory=dict)
    interrupted: dict[str, Any] | None = None  # why the run stopped early, and what ran

    def interrupt(self, reason: str, running: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """The run was interrupted (``reason``) while the tests in ``running`` ran: they did
        not pass; each has the calls it finished (``running[nodeid]``)."""
        self.interrupted = {"reason": reason, "running": sorted(running)}
        for nodeid, calls in running.items():
            entry = self.tests.setdefault(nodeid, TestEntry(nodeid))
            entry.outcome = "interrupted"
            entry.calls.extend(dict(call) for call in calls)

    def add(self, nodeid: str, when: str, outcome: str, duration: float, extra: Any) -> None:
        entry = self.tests.setdefault(nodeid, TestEntry(nodeid))
        entry.duration_s += duration
        attempt = getattr(extra, "llm_attempt", 1)
        if attempt > entry.attempts:  # pytest-rerunfailures tries again: judged on this one
            entry.attempts = attempt
            entry.outcome = "passed"
            entry.calls = []
            entry.violations = []
        if outcome == "failed" or (when == "call" and outcome != "passed"):
            entry.outcome = "error" if outcome == "failed" and when != "call" else outcome
        if when == "setup" and outcome == "skipped":
            entry.outcome = "skipped"
        if when == "call" and hasattr(extra, "wasxfail"):  # pytest.mark.xfail, as expected
            entry.outcome = "xfailed" if outcome == "skipped" else "xpassed"
        calls = getattr(extra, "llm_calls", None)
        if calls:
            entry.calls.extend(calls)
        violations = getattr(extra, "llm_violations", None)
        if violations:
            entry.violations.extend(violations)
        entry.runs = max(entry.runs, getattr(extra, "llm_runs", 1))
        entry.repeated = entry.repeated or getattr(extra, "llm_repeated", False)


def model_statistics(calls: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per model: count, percentiles of total and TTFT, tokens/s, cache hits, load share."""
    by_model: dict[str, list[Mapping[str, Any]]] = {}
    for call in calls:
        if call.get("purpose") == "call":
            by_model.setdefault(str(call["model"]), []).append(call)
    out = {}
    for model, items in sorted(by_model.items()):
        totals = [float(c["total_s"]) for c in items]
        ttfts = [float(c["ttft_s"]) for c in items if c.get("ttft_s") is not None]
        speeds = [float(c["tokens_per_s"]) for c in items if c.get("tokens_per_s")]
        # a cache hit keeps its answer's load_duration, but loaded nothing
        load = sum(
            float((c.get("server") or {}).get("load_s") or 0.0)
            for c in items
            if not c.get("cache_hit")
        )
        out[model] = {
            "calls": len(items),
            "total_s": _percentiles(totals),
            "ttft_s": _percentiles(ttfts) if ttfts else None,
            "tokens_per_s": sum(speeds) / len(speeds) if speeds else None,
            "cache_hits": sum(1 for c in items if c.get("cache_hit")),
            "cache_hit_rate": sum(1 for c in items if c.get("cache_hit")) / len(items),
            "load_share": load / sum(totals) if sum(totals) > 0 else 0.0,
            "timeouts": sum(1 for c in items if c.get("outcome") == "timeout"),
            "errors": sum(1 for c in items if c.get("outcome") == "error"),
        }
    return out


def add_to_benchmark(benchmark: Any, records: Sequence[CallRecord]) -> None:
    """Put the test's LLM statistics in pytest-benchmark's ``extra_info["llm"]``."""
    extra = getattr(benchmark, "extra_info", None)
    if not isinstance(extra, dict) or not records:
        return
    calls = [record.to_dict() for record in records]
    extra["llm"] = {
        "calls": len(calls),
        "cache_hits": sum(1 for call in calls if call["cache_hit"]),
        "models": model_statistics(calls),
    }


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": sum(values) / len(values),
        "min": min(values),
        "max": max(values),
        "p50": quantile(values, 0.50),
        "p90": quantile(values, 0.90),
        "p95": quantile(values, 0.95),
        "p99": quantile(values, 0.99),
    }


def build(
    collector: Collector,
    settings: Mapping[str, Any],
    started: float,
    finished: float,
    session_calls: Sequence[Mapping[str, Any]] = (),
    *,
    server: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The report as a JSON-able dict; ``session_calls`` were made outside any test.

    ``server`` is the optional section on the server's models (see
    :func:`pytest_llmperf.observe.server.from_api`); ``environ`` (``os.environ`` by default)
    tells whether the run was in CI.
    """
    tests = sorted(collector.tests.values(), key=lambda entry: entry.nodeid)
    test_calls = [call for t in tests for call in t.calls]
    every_call = [*test_calls, *session_calls]
    entries = [
        {
            "nodeid": t.nodeid,
            "outcome": t.outcome,
            "duration_s": t.duration_s,
            "runs": t.runs,
            "repeated": t.repeated,
            "attempts": t.attempts,
            "calls": t.calls,
            "violations": t.violations,
        }
        for t in tests
    ]
    run = _run_section(settings, started, finished, every_call, environ)
    run["interrupted"] = collector.interrupted
    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run": run,
        "summary": _summary(tests, len(test_calls), len(session_calls)),
        "tests": entries,
        "session": {"calls": list(session_calls)},
        "models": model_statistics(every_call),
        "recommendations": recommend(entries, run=run, server=server),
    }
    if server is not None:
        data["server"] = dict(server)
    return data


def _summary(tests: Sequence[TestEntry], calls: int, session_calls: int) -> dict[str, Any]:
    """The counts of tests and calls, and the share of the judged tests that passed."""
    # an expected failure is neither judged nor a failure, as in pytest's own summary
    judged = [t for t in tests if t.outcome not in ("skipped", "xfailed")]
    passed = sum(1 for t in judged if t.outcome in ("passed", "xpassed"))
    return {
        "tests": len(tests),
        "passed": passed,
        "failed": sum(1 for t in judged if t.outcome in ("failed", "error")),
        "skipped": sum(1 for t in tests if t.outcome == "skipped"),
        "xfailed": sum(1 for t in tests if t.outcome == "xfailed"),
        "interrupted": sum(1 for t in judged if t.outcome == "interrupted"),
        "budget_violations": sum(len(t.violations) for t in tests),
        "calls": calls,
        "session_calls": session_calls,
        "success_rate": passed / len(judged) if judged else None,
        "success": f"{round(100 * passed / len(judged))}% ({passed}/{len(judged)})"
        if judged
        else "no tests",
    }


def _run_section(
    settings: Mapping[str, Any],
    started: float,
    finished: float,
    calls: Sequence[Mapping[str, Any]],
    environ: Mapping[str, str] | None,
) -> dict[str, Any]:
    from pytest_llmperf import __version__

    replayed = sum(1 for call in calls if call.get("timing") == "recorded")
    return {
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "duration_s": finished - started,
        "plugin_version": __version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": _git_commit(),
        "timing": "replay"
        if calls and replayed == len(calls)
        else "live"
        if not replayed
        else "mixed",
        "ci": in_ci(os.environ if environ is None else environ),
        "settings": dict(settings),
    }


def in_ci(environ: Mapping[str, str]) -> bool:
    """Whether ``CI`` is set, as CI services set it (``true``, ``1``, a name)."""
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


LATEST = "latest.json"  # in the report folder: the newest report, at a name that stays
PATTERN = "llm_validation_*.json"
_IGNORE_ALL = "# Created by pytest-llmperf automatically: its reports stay out of git.\n*\n"


def default_path(folder: Path, started: float) -> Path:
    """A new timestamped report path in ``folder`` (a second run in the same second: ``_2``)."""
    stem = time.strftime("llm_validation_%Y%m%d_%H%M%S", time.localtime(started))
    path, number = folder / f"{stem}.json", 1
    while path.exists():
        number += 1
        path = folder / f"{stem}_{number}.json"
    return path


def write_in_folder(folder: Path, started: float, data: Mapping[str, Any], keep: int) -> Path:
    """Write a timestamped report in ``folder``, and again as ``latest.json``; keep the newest
    ``keep`` timestamped ones. A folder made here ignores itself in git (a ``.gitignore``
    of ``*``, as ``.pytest_cache`` does)."""
    made = not folder.exists()
    path = default_path(folder, started)
    write(path, data)
    write(folder / LATEST, data)
    if made:
        with contextlib.suppress(OSError):
            (folder / ".gitignore").write_text(_IGNORE_ALL, encoding="utf-8")
    for old in sorted(folder.glob(PATTERN))[:-keep]:
        with contextlib.suppress(OSError):
            old.unlink()
    return path


def write(path: Path, data: Mapping[str, Any]) -> None:
    """Write the report atomically; a path that cannot be written is a ConfigurationError.

    Only a regular file is replaced; on any failure the temporary file is removed.
    """
    try:
        write_atomically(path, json.dumps(data, indent=1, default=str))
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write the LLM validation report to {path}: {exc.strerror or exc}. Choose "
            "a writable place with --llm-report PATH or the llm_report_dir ini option; the "
            "test results themselves are not affected"
        ) from None


def schema() -> dict[str, Any]:
    """The report's JSON Schema."""
    text = (
        resources.files("pytest_llmperf.report").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    )
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def terminal_lines(data: Mapping[str, Any], path: Path | None) -> list[str]:
    """A compact table per model, the top recommendations, and where the report went."""
    models: Mapping[str, Mapping[str, Any]] = data["models"]
    violations: dict[str, int] = {}
    for test in data["tests"]:
        for violation in test["violations"]:
            model = violation.get("model") or "(test)"
            violations[model] = violations.get(model, 0) + 1
    lines = []
    if models:
        lines.append(
            f"{'model':<24} {'calls':>5} {'p50 s':>8} {'p95 s':>8} {'TTFT p95':>9} "
            f"{'tok/s':>7} {'cache':>6} {'over':>5}"
        )
        for model, stats in models.items():
            ttft = stats["ttft_s"]["p95"] if stats["ttft_s"] else None
            speed = stats["tokens_per_s"]
            lines.append(
                f"{model:<24} {stats['calls']:>5} {stats['total_s']['p50']:>8.3f} "
                f"{stats['total_s']['p95']:>8.3f} "
                f"{(f'{ttft:.3f}' if ttft is not None else '-'):>9} "
                f"{(f'{speed:.1f}' if speed else '-'):>7} {stats['cache_hits']:>6} "
                f"{violations.get(model, 0):>5}"
            )
    recommendations = data.get("recommendations") or []
    for item in recommendations[:TOP]:
        lines.append(f"{item['severity']}: {item['message']} [{item['id']}]")
    if len(recommendations) > TOP:
        lines.append(f"... {len(recommendations) - TOP} more recommendations in the report")
    summary = data["summary"]
    outside = summary.get("session_calls") or 0
    lines.append(
        f"tests {summary['success']}, {summary['calls']} LLM calls"
        + (f" (and {outside} outside any test)" if outside else "")
        + f", {summary['budget_violations']} budget violations"
    )
    stopped = data["run"].get("interrupted")
    if stopped:
        running = ", ".join(stopped["running"]) or "no test"
        lines.append(f"interrupted ({stopped['reason']}) while running {running}")
    if path is not None:
        lines.append(f"report: {path}")
    return lines
