"""The ``llmperf`` command: ``serve`` runs the Ollama emulator on a port; ``compare`` gates a
run's validation report against a baseline's; ``report`` shows a report, or writes it as a
self-contained HTML page."""

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmperf", description=__doc__)
    parser.add_argument("--version", action="version", version=f"llmperf {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the Ollama-compatible emulator",
        description="Serve the Ollama API (and its /v1 OpenAI routes) with emulated models.",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=_port, default=11434, help="port (default 11434; 0: any free port)"
    )
    serve.add_argument(
        "--profiles", type=Path, help="latency profile file (TOML); default: the shipped one"
    )
    serve.add_argument(
        "--gguf",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="serve a real GGUF model through llama.cpp under NAME (repeatable)",
    )
    serve.add_argument(
        "--gguf-threads",
        type=_positive,
        help="llama.cpp threads for the --gguf models (default: half the cores)",
    )
    serve.add_argument(
        "--num-parallel", type=_positive, help="requests at once per model (OLLAMA_NUM_PARALLEL)"
    )
    serve.add_argument(
        "--max-queue", type=_non_negative, help="waiting requests before 503 (OLLAMA_MAX_QUEUE)"
    )
    serve.add_argument(
        "--max-loaded-models",
        type=_positive,
        help="models kept in memory (OLLAMA_MAX_LOADED_MODELS)",
    )
    serve.add_argument(
        "--time-scale", type=_scale, help="multiply every emulated delay (0.01: 100x faster)"
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    _add_compare(commands)
    _add_report(commands)
    return parser


def _argument(parse: Callable[[str], float]) -> Callable[[str], float]:
    """``parse`` for argparse: its ValueError's message becomes argparse's."""

    def convert(value: str) -> float:
        try:
            return parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _add_compare(commands: Any) -> None:
    compare = commands.add_parser(
        "compare",
        help="compare a validation report with a baseline; exit 1 on a latency regression",
        description=(
            "Compare CURRENT with BASELINE per model and per test. A regression needs the "
            "median or p95 of a call's total time or time to first token to grow beyond the "
            "threshold, and a one-sided Mann-Whitney U test on the raw calls to find it "
            "significant. Exit status: 0 none, 1 a regression (0 with --warn), 2 bad input."
        ),
    )
    compare.add_argument("baseline", type=Path, help="the baseline report (JSON)")
    compare.add_argument("current", type=Path, help="the report of the run to judge (JSON)")
    compare.add_argument(
        "--threshold",
        type=_argument(gate.parse_threshold),
        default=gate.THRESHOLD,
        help="smallest growth of the median or p95 that counts (default 10%%)",
    )
    compare.add_argument(
        "--alpha",
        type=_argument(gate.parse_alpha),
        default=gate.ALPHA,
        help="significance level of the Mann-Whitney U test (default 0.01)",
    )
    compare.add_argument(
        "--markdown", type=Path, metavar="PATH", help="also write the result as Markdown here"
    )
    compare.add_argument(
        "--json", type=Path, metavar="PATH", help="also write every finding as JSON here"
    )
    compare.add_argument(
        "--all", action="store_true", help="list every comparison, not only what moved"
    )
    compare.add_argument(
        "--warn", action="store_true", help="report regressions but exit 0 (to start soft)"
    )


def _add_report(commands: Any) -> None:
    report = commands.add_parser(
        "report",
        help="show a validation report, or write it as an HTML page with charts",
        description=(
            "Show REPORT's summary as the end of a run does; with --html, write one "
            "self-contained page (charts and tables, no network needed) that needs the html "
            "extra: pip install 'pytest-llmperf[html]'. Exit status: 0 done, 2 bad input."
        ),
    )
    report.add_argument("report", type=Path, help="the validation report (JSON)")
    report.add_argument(
        "--html", type=Path, metavar="PATH", help="write the report as an HTML page here"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
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
