"""``llmperf validate``: start the target, run the bundled scenarios, write what they found.

The scenarios run in a pytest subprocess (``python -m pytest``) with only our plugin loaded
and the suite's own configuration (``-c suite/pytest.ini``), so neither the user's plugins
nor their pytest settings change the measurements, and the emulator this process serves
does not share an interpreter with the client that measures it. The subprocess reports
each finished scenario as a JSON line on a pipe (``--validate-progress-fd``); its own
output goes to a log file beside the report.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pytest_llmperf.errors import ConfigurationError

EMULATOR = "emulator"
DEFAULT_OUT = Path("llmperf-validation")
EMULATOR_TIME_SCALE = 0.1  # the embedded emulator's default: the profiles, 10x faster
EMULATOR_NUM_PARALLEL = 4  # as Ollama's own default where memory allows
EMULATORS = 2  # the embedded target is two emulators, so balancing can be shown
RECOMMENDATIONS = "performance_recommendations.json"
SUITE = Path(__file__).parent / "suite"
_ICONS = {"passed": "ok", "failed": "FAIL", "error": "ERROR", "skipped": "skip"}
_ICONS |= {"xfailed": "xfail", "xpassed": "XPASS"}


@dataclass(frozen=True)
class Options:
    """What ``llmperf validate`` was asked to do (checked by :func:`check`)."""

    targets: tuple[str, ...] = ()
    gguf: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    out: Path = DEFAULT_OUT
    html: bool = False
    baseline: Path | None = None
    time_scale: float | None = None

    @property
    def embedded(self) -> bool:
        return not self.targets or self.targets == (EMULATOR,)

    @property
    def scale(self) -> float:
        if self.time_scale is not None:
            return self.time_scale
        return EMULATOR_TIME_SCALE if self.embedded else 1.0


@dataclass
class Outputs:
    """Where this run's files go."""

    report: Path
    recommendations: Path
    log: Path
    html: Path | None = None

    @classmethod
    def in_folder(cls, folder: Path, started: float, html: bool) -> Outputs:
        stem = time.strftime("llm_dev_validation_%Y%m%d_%H%M%S", time.localtime(started))
        name, number = stem, 1
        while (folder / f"{name}.json").exists():
            number += 1
            name = f"{stem}_{number}"
        return cls(
            report=folder / f"{name}.json",
            recommendations=folder / RECOMMENDATIONS,
            log=folder / f"{name}.log",
            html=folder / f"{name}.html" if html else None,
        )


def check(options: Options) -> tuple[list[str], list[str], Any]:
    """The target URLs (none for the embedded emulator), the GGUF specs and the tier table;
    a ConfigurationError for what cannot work, before anything starts."""
    from pytest_llmperf.client.protocol import parse_host
    from pytest_llmperf.client.tiers import Tiers
    from pytest_llmperf.emulator.llamacpp import parse_gguf_spec

    urls: list[str] = []
    if not options.embedded:
        if EMULATOR in options.targets:
            raise ConfigurationError(
                "--target emulator cannot be mixed with URLs: validate the embedded emulator, "
                "or the servers at the URLs (repeat --target URL for a pool)"
            )
        urls = [parse_host(target) for target in options.targets]
        if options.gguf:
            raise ConfigurationError(
                "--gguf serves a model from the embedded emulator, which --target URL does not "
                "start: leave out --target, or serve the model on that server"
            )
    for spec in options.gguf:
        parse_gguf_spec(spec)  # the file must exist
    if options.time_scale is not None and options.time_scale <= 0:
        raise ConfigurationError(f"--time-scale must be above 0, got {options.time_scale:g}")
    tiers = Tiers.parse(_tier_entries(options))
    if options.baseline is not None:
        from pytest_llmperf.judge import gate

        gate.load(options.baseline, "baseline")
    if options.html:
        from pytest_llmperf.report import html as html_report

        html_report.plotly()  # the missing extra is said before the run, not after it
    return urls, list(options.gguf), tiers


def _tier_entries(options: Options) -> list[str]:
    """The tiers asked for; a GGUF model becomes the fast tier unless a tier says otherwise."""
    entries = list(options.tiers)
    named = {entry.partition("=")[0].strip() for entry in entries}
    if options.gguf and "fast" not in named:
        entries.insert(0, f"fast={options.gguf[0].partition('=')[0].strip()}")
    return entries


def num_parallel(gguf: Sequence[str]) -> int:
    """Requests at once per model on the embedded emulators: one with a llama.cpp model,
    whose backend runs one generation at a time."""
    return 1 if gguf else EMULATOR_NUM_PARALLEL


@contextlib.contextmanager
def embedded_emulators(gguf: Sequence[str], time_scale: float, log: Path) -> Iterator[list[str]]:
    """:data:`EMULATORS` emulators (``llmperf serve``), each in a process of its own on a free
    loopback port, running until the block ends; what they print goes to ``log``."""
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(log.open("a", encoding="utf-8"))
        urls = []
        for _ in range(EMULATORS):
            server = _Served(gguf, time_scale, sink)
            stack.callback(server.stop)
            urls.append(server.url)
        yield urls


LISTENING = "llmperf emulator listening on "
START_S = 60.0  # a GGUF model loads lazily: starting is importing and binding a port


class _Served:
    """One ``llmperf serve --port 0``; its output after the address is copied to ``sink``."""

    def __init__(self, gguf: Sequence[str], time_scale: float, sink: IO[str]) -> None:
        import threading

        command = [sys.executable, "-m", "pytest_llmperf.cli", "serve", "--port", "0"]
        command += ["--time-scale", repr(time_scale), "--log-level", "warning"]
        command += ["--num-parallel", str(num_parallel(gguf))]
        for spec in gguf:
            command += ["--gguf", spec]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=_environment(),
        )
        assert self.process.stdout is not None
        seen: list[str] = []
        found = threading.Event()

        def drain() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                if not found.is_set() and line.startswith(LISTENING):
                    seen.append(line[len(LISTENING) :].strip())
                    found.set()
                    continue
                sink.write(line)
                sink.flush()
            found.set()

        threading.Thread(target=drain, name="llmperf-emulator-log", daemon=True).start()
        if not found.wait(START_S) or not seen:
            self.stop()
            raise ConfigurationError(
                f"the embedded emulator did not start within {START_S:g} s (exit status "
                f"{self.process.poll()}); what it said is in {sink.name}"
            )
        self.url = seen[0]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run(options: Options, out: IO[str] | None = None) -> int:
    """Validate; the exit status: 0 every required scenario passed, 1 one failed (or the
    baseline gate found a regression), 2 the run could not be made."""
    out = out or sys.stdout
    urls, gguf, tiers = check(options)
    started = time.time()
    try:
        options.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot make the output folder {options.out}: {exc.strerror or exc}; choose "
            "another with --out DIR"
        ) from None
    outputs = Outputs.in_folder(options.out.resolve(), started, options.html)
    with contextlib.ExitStack() as stack:
        if options.embedded:
            what = "the embedded emulator" + (f" with {', '.join(gguf)}" if gguf else "")
            print(f"llmperf validate: starting {what} (time scale {options.scale:g})", file=out)
            urls = stack.enter_context(embedded_emulators(gguf, options.scale, outputs.log))
        print(
            f"llmperf validate: {', '.join(urls)}; tiers "
            + ", ".join(f"{t}={m}" for t, m in tiers.models.items()),
            file=out,
        )
        status = _pytest(options, urls, tiers, outputs, out)
    return _finish(options, outputs, status, out)


def pytest_arguments(
    options: Options, urls: Sequence[str], tiers: Any, outputs: Outputs, progress_fd: int
) -> list[str]:
    """The subprocess's command line."""
    args = [
        sys.executable,
        "-m",
        "pytest",
        str(SUITE),
        "-c",
        str(SUITE / "pytest.ini"),
        "--rootdir",
        str(SUITE),
        "-p",
        "pytest_llmperf.plugin.hooks",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfEX",
        "--llm-host",
        urls[0],
        "--llm-report",
        str(outputs.report),
        "--validate-kind",
        EMULATOR if options.embedded else "url",
        "--validate-time-scale",
        repr(options.scale),
        "--validate-progress-fd",
        str(progress_fd),
    ]
    for tier, model in tiers.models.items():
        args += ["--llm-tier", f"{tier}={model}"]
    for url in urls:
        args += ["--validate-target", url]
    for spec in options.gguf:
        args += ["--validate-real-model", spec.partition("=")[0].strip()]
    if options.embedded:
        args += ["--validate-num-parallel", str(num_parallel(options.gguf))]
    if options.baseline is not None:
        args += ["--llm-baseline", str(options.baseline.resolve())]
    return args


def _environment() -> dict[str, str]:
    """The user's environment without what would change the scenarios: our own settings
    (LLMPERF_*) and other pytest plugins (only ours is loaded, by name)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMPERF_")}
    env.pop("PYTEST_ADDOPTS", None)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the suite may live in a read-only site-packages
    return env


@dataclass
class _Progress:
    """The scenarios as they finish: one line each (on a terminal, one line rewritten)."""

    out: IO[str]
    total: int = 0
    done: int = 0
    tty: bool = field(default=False)

    def __post_init__(self) -> None:
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())

    def event(self, event: Mapping[str, Any]) -> None:
        if event.get("event") == "collected":
            self.total = int(event.get("count") or 0)
            return
        if event.get("event") != "done":
            return
        self.done += 1
        outcome = str(event.get("outcome"))
        took = float(event.get("duration_s") or 0)
        line = (
            f"[{self.done:>2}/{self.total}] {_ICONS.get(outcome, outcome):<5} "
            f"{event.get('group')}: {event.get('title')} ({took:.2f} s)"
        )
        if self.tty and outcome in ("passed", "skipped", "xfailed"):
            self.out.write("\r\x1b[2K" + line[:120])
        else:
            self.out.write(("\r\x1b[2K" if self.tty else "") + line + "\n")
        self.out.flush()

    def close(self) -> None:
        if self.tty:
            self.out.write("\r\x1b[2K")
            self.out.flush()


def _pytest(
    options: Options, urls: Sequence[str], tiers: Any, outputs: Outputs, out: IO[str]
) -> int:
    read, write = os.pipe()
    progress = _Progress(out)
    try:
        with outputs.log.open("a", encoding="utf-8") as log:
            child = subprocess.Popen(
                pytest_arguments(options, urls, tiers, outputs, write),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_environment(),
                pass_fds=(write,),
                cwd=str(options.out),
            )
            os.close(write)
            write = -1
            with os.fdopen(read, encoding="utf-8") as events:
                read = -1
                for line in events:
                    with contextlib.suppress(ValueError):
                        progress.event(json.loads(line))
            return child.wait()
    finally:
        progress.close()
        for fd in (read, write):
            if fd >= 0:
                os.close(fd)


def _finish(options: Options, outputs: Outputs, status: int, out: IO[str]) -> int:
    from pytest_llmperf.report import document as _report
    from pytest_llmperf.validate.scenarios import summary_lines

    if not outputs.report.is_file():
        print(
            f"llmperf validate: the scenarios wrote no report (pytest exit status {status}); "
            f"their output is in {outputs.log}",
            file=out,
        )
        _tail(outputs.log, out)
        return 2
    data = json.loads(outputs.report.read_text(encoding="utf-8"))
    recommendations = {
        "report": outputs.report.name,
        "generated_at": data["run"]["finished_at"],
        "recommendations": data.get("recommendations") or [],
    }
    _report.write(outputs.recommendations, recommendations)
    files = {"report": outputs.report, "recommendations": outputs.recommendations}
    if outputs.html is not None:
        from pytest_llmperf.report import html as html_report

        html_report.write(outputs.html, html_report.render(data))
        files["page"] = outputs.html
    ok = (data.get("scenarios") or {}).get("ok", False)
    if status not in (0, 1) or (status == 1 and ok and not _regressed(data)):
        files["pytest output"] = outputs.log
        _tail(outputs.log, out)
        status = 2 if status not in (0, 1) else status
    elif status:
        files["pytest output"] = outputs.log
    for line in summary_lines(data, files):
        print(line, file=out)
    for line in _baseline_lines(data):
        print(line, file=out)
    return status


def _regressed(data: Mapping[str, Any]) -> bool:
    return bool((data.get("baseline") or {}).get("regressions"))


def _baseline_lines(data: Mapping[str, Any]) -> list[str]:
    comparison = data.get("baseline")
    if not comparison:
        return []
    lines = [
        f"baseline {comparison.get('baseline')}: {comparison.get('regressions', 0)} regressions"
    ]
    for finding in comparison.get("findings") or ():
        if finding.get("status") == "regression":
            lines.append(
                f"  regression: {finding['scope']} {finding['name']} {finding['metric']}: "
                f"median {_change(finding.get('median_change'))}, "
                f"p95 {_change(finding.get('p95_change'))}"
            )
    return lines


def _change(value: Any) -> str:
    return f"{value:+.0%}" if isinstance(value, (int, float)) else "-"


def _tail(log: Path, out: IO[str], lines: int = 30) -> None:
    with contextlib.suppress(OSError):
        text = log.read_text(encoding="utf-8", errors="replace").splitlines()
        for line in text[-lines:]:
            print(f"  | {line}", file=out)
