"""The ``llmperf`` command: ``validate`` runs the bundled validation scenarios against a
server (the embedded emulator by default); ``serve`` runs the Ollama emulator on a port;
``compare`` gates a run's validation report against a baseline's; ``report`` shows a report,
or writes it as a self-contained HTML page."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_llmperf.errors import LLMPerfError
from pytest_llmperf.judge import gate


def _whole(value: str, least: int, most: int | None, allowed: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = least - 1
    if number < least or (most is not None and number > most):
        raise argparse.ArgumentTypeError(f"must be {allowed}, got {value!r}")
    return number


def _positive(value: str) -> int:
    return _whole(value, 1, None, "a whole number >= 1")


def _non_negative(value: str) -> int:
    return _whole(value, 0, None, "a whole number >= 0")


def _port(value: str) -> int:
    return _whole(value, 0, 65535, "a port number from 0 to 65535 (0: any free port)")


def _scale(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise argparse.ArgumentTypeError(
            f"must be a number >= 0 (1: the profiles' delays, 0.01: 100x faster), got {value!r}"
        )
    return number


def version() -> str:
    """The installed distribution's version (the source tree's own where it is not installed)."""
    from importlib import metadata

    try:
        return metadata.version("pytest-llmperf")
    except metadata.PackageNotFoundError:
        from pytest_llmperf import __version__

        return __version__


def _above_zero(value: str) -> float:
    number = _scale(value)
    if number == 0:
        raise argparse.ArgumentTypeError(
            f"must be a number above 0 (0.1: ten times faster), got {value!r}"
        )
    return number


def _argument(parse: Callable[[str], float]) -> Callable[[str], float]:
    """``parse`` for argparse: its ValueError's message becomes argparse's."""

    def convert(value: str) -> float:
        try:
            return parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


# A command's options: the flags (or the positional name) and argparse's keywords for them.
Option = tuple[str, dict[str, Any]]
_GGUF = {"action": "append", "default": [], "metavar": "NAME=PATH"}

_SERVE: tuple[Option, ...] = (
    ("--host", {"default": "127.0.0.1", "help": "address to listen on (default 127.0.0.1)"}),
    ("--port", {"type": _port, "default": 11434, "help": "port (default 11434; 0: any free port)"}),
    ("--profiles", {"type": Path, "help": "latency profile file (TOML); default: the shipped one"}),
    (
        "--gguf",
        {**_GGUF, "help": "serve a real GGUF model through llama.cpp under NAME (repeatable)"},
    ),
    (
        "--gguf-threads",
        {
            "type": _positive,
            "help": "llama.cpp threads for the --gguf models (default: half the cores)",
        },
    ),
    (
        "--num-parallel",
        {"type": _positive, "help": "requests at once per model (OLLAMA_NUM_PARALLEL)"},
    ),
    (
        "--max-queue",
        {"type": _non_negative, "help": "waiting requests before 503 (OLLAMA_MAX_QUEUE)"},
    ),
    (
        "--max-loaded-models",
        {"type": _positive, "help": "models kept in memory (OLLAMA_MAX_LOADED_MODELS)"},
    ),
    (
        "--time-scale",
        {"type": _scale, "help": "multiply every emulated delay (0.01: 100x faster)"},
    ),
    (
        "--log-level",
        {"default": "info", "choices": ["critical", "error", "warning", "info", "debug"]},
    ),
)

_VALIDATE: tuple[Option, ...] = (
    (
        "--target",
        {
            "action": "append",
            "default": [],
            "metavar": "emulator|URL",
            "help": "'emulator' (default: two embedded emulators) or a server's URL; repeat for "
            "a pool",
        },
    ),
    (
        "--gguf",
        {
            **_GGUF,
            "help": "the embedded emulator serves this GGUF model through llama.cpp, as the "
            "fast tier unless --tier fast=... says otherwise (repeatable)",
        },
    ),
    (
        "--tier",
        {
            "action": "append",
            "default": [],
            "metavar": "NAME=MODEL",
            "help": "the model of a tier (default fast=llama3.2:1b balanced=llama3.2:3b "
            "complex=llama3:8b; repeatable)",
        },
    ),
    (
        "--out",
        {
            "type": Path,
            "default": Path("llmperf-validation"),
            "metavar": "DIR",
            "help": "where the files go (default ./llmperf-validation/)",
        },
    ),
    ("--html", {"action": "store_true", "help": "also write the report as an HTML page beside it"}),
    (
        "--baseline",
        {
            "type": Path,
            "metavar": "FILE",
            "help": "gate the run against this earlier report; a latency regression exits 1",
        },
    ),
    (
        "--time-scale",
        {
            "type": _above_zero,
            "metavar": "X",
            "help": "the target's delays relative to real time: the embedded emulator runs at "
            "it (default 0.1) and the budgets scale with it (default 1 for a URL)",
        },
    ),
)

_COMPARE: tuple[Option, ...] = (
    ("baseline", {"type": Path, "help": "the baseline report (JSON)"}),
    ("current", {"type": Path, "help": "the report of the run to judge (JSON)"}),
    (
        "--threshold",
        {
            "type": _argument(gate.parse_threshold),
            "default": gate.THRESHOLD,
            "help": "smallest growth of the median or p95 that counts (default 10%%)",
        },
    ),
    (
        "--alpha",
        {
            "type": _argument(gate.parse_alpha),
            "default": gate.ALPHA,
            "help": "significance level of the Mann-Whitney U test (default 0.01)",
        },
    ),
    (
        "--markdown",
        {"type": Path, "metavar": "PATH", "help": "also write the result as Markdown here"},
    ),
    ("--json", {"type": Path, "metavar": "PATH", "help": "also write every finding as JSON here"}),
    ("--all", {"action": "store_true", "help": "list every comparison, not only what moved"}),
    ("--warn", {"action": "store_true", "help": "report regressions but exit 0 (to start soft)"}),
)

_REPORT: tuple[Option, ...] = (
    ("report", {"type": Path, "help": "the validation report (JSON)"}),
    ("--html", {"type": Path, "metavar": "PATH", "help": "write the report as an HTML page here"}),
)

# Each command: its name, its one-line help, its description and its options.
_COMMANDS: tuple[tuple[str, str, str, tuple[Option, ...]], ...] = (
    (
        "serve",
        "run the Ollama-compatible emulator",
        "Serve the Ollama API (and its /v1 OpenAI routes) with emulated models.",
        _SERVE,
    ),
    (
        "validate",
        "run the validation scenarios against a server and write the optimization report",
        "Run the bundled scenarios (architecture, functionality, performance) through "
        "pytest-llmperf against TARGET: the embedded emulator (default) or Ollama-"
        "compatible servers. Writes llm_dev_validation_YYYYMMDD_HHMMSS.json (the "
        "report, with the scenarios and the optimizations measured) and "
        "performance_recommendations.json in --out. Exit status: 0 every required "
        "scenario passed (expected failures are not failures), 1 one failed or the "
        "baseline gate found a regression, 2 bad input or a run that could not be made.",
        _VALIDATE,
    ),
    (
        "compare",
        "compare a validation report with a baseline; exit 1 on a latency regression",
        "Compare CURRENT with BASELINE per model and per test. A regression needs the "
        "median or p95 of a call's total time or time to first token to grow beyond the "
        "threshold, and a one-sided Mann-Whitney U test on the raw calls to find it "
        "significant. Exit status: 0 none, 1 a regression (0 with --warn), 2 bad input.",
        _COMPARE,
    ),
    (
        "report",
        "show a validation report, or write it as an HTML page with charts",
        "Show REPORT's summary as the end of a run does; with --html, write one "
        "self-contained page (charts and tables, no network needed) that needs the html "
        "extra: pip install 'pytest-llmperf[html]'. Exit status: 0 done, 2 bad input.",
        _REPORT,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmperf", description=__doc__)
    parser.add_argument("--version", action="version", version=f"llmperf {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, summary, description, options in _COMMANDS:
        command = commands.add_parser(name, help=summary, description=description)
        for flag, keywords in options:
            command.add_argument(flag, **keywords)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "report":
            return _report(args)
    except LLMPerfError as exc:
        print(f"llmperf: error: {exc}", file=sys.stderr)
        return 2
    return 0  # pragma: no cover - argparse requires a command


def _serve(args: argparse.Namespace) -> int:
    from pytest_llmperf.emulator.runner import build_app
    from pytest_llmperf.emulator.server import serve_forever

    app = build_app(
        args.profiles,
        args.gguf,
        args.time_scale,
        gguf_threads=args.gguf_threads,
        num_parallel=args.num_parallel,
        max_queue=args.max_queue,
        max_loaded_models=args.max_loaded_models,
    )
    serve_forever(app, args.host, args.port, args.log_level)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from pytest_llmperf.validate.command import Options, run

    options = Options(
        targets=tuple(args.target),
        gguf=tuple(args.gguf),
        tiers=tuple(args.tier),
        out=args.out,
        html=args.html,
        baseline=args.baseline,
        time_scale=args.time_scale,
    )
    return run(options)


def _compare(args: argparse.Namespace) -> int:
    base = gate.load(args.baseline, "baseline")
    current = gate.load(args.current, "current")
    comparison = gate.compare(
        base, current, threshold=args.threshold, alpha=args.alpha, baseline=str(args.baseline)
    )
    for line in gate.table(comparison, everything=args.all):
        print(line)
    gate.write_outputs(
        comparison, markdown_path=args.markdown, json_path=args.json, everything=args.all
    )
    if comparison.regressions and not args.warn:
        return 1
    return 0


def _report(args: argparse.Namespace) -> int:
    from pytest_llmperf.report import html as html_report

    if args.html is None:
        from pytest_llmperf.report.document import terminal_lines

        for line in terminal_lines(html_report.load(args.report), None):
            print(line)
        return 0
    html_report.plotly()  # the missing extra is said before any work
    page = html_report.render(html_report.load(args.report))
    html_report.write(args.html, page)
    print(f"llmperf: wrote {args.html}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
