"""What the observation point costs a call: the official client, measured and not, side by side.

The official ``ollama.Client`` makes sequential ``generate`` calls to the emulator (its own
process, time scale 0, a fixed answer of ``--tokens`` tokens, so the client's own cost shows),
whole and streamed. Each round runs ``--calls`` calls with the interception point installed
and observing (every call becomes a record, as in a test) and ``--calls`` with it removed,
in alternating order; the figure is the median over the rounds of (observed) / (bare) time.
Target: at most 1.03 for both.

Wall time on a shared 2-core machine is noisy; ``--instructions`` counts instead what the
client process executes per call (valgrind's callgrind, which counts the same for the same
work whatever else runs): each mode runs ``--calls`` and 3x ``--calls`` calls in a process of
its own (hash seed fixed, collector off), and the difference over 2x ``--calls`` is the
per-call count, start-up left out. The
server is another process, so this ratio leaves its work out: it is the stricter figure.

    .venv/bin/python benchmarks/bench_observe.py [--rounds 15] [--calls 200] [--tokens 32]
    .venv/bin/python benchmarks/bench_observe.py --instructions [--calls 100]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ollama
from bench_client import callgrind, emulator
from serving import no_delay_model

from pytest_llmperf.observe.measure import Routes, Sink
from pytest_llmperf.observe.point import start_observing
from pytest_llmperf.observe.records import CallRecord

TARGET = 1.03
MODEL = "bench-observe:latest"
SEEDED = {"seed": 1}  # the same answer every time: its text is part of what is counted


class Collect:
    """An observer that keeps every record, as a test's recorder does."""

    def __init__(self) -> None:
        self.routes = Routes()
        self.records: list[CallRecord] = []

    def sink(self) -> Sink:
        return self.records.append


def profiles(folder: Path, tokens: int) -> Path:
    path = folder / "observe_profiles.toml"
    path.write_text(
        """[server]
num_parallel = 1
keep_alive = "-1s"

"""
        + no_delay_model(MODEL, tokens),
        encoding="utf-8",
    )
    return path


def timed(client: ollama.Client, calls: int, stream: bool) -> float:
    if gc.isenabled():
        gc.collect()
    began = time.perf_counter()
    for _ in range(calls):
        if stream:
            for _chunk in client.generate(MODEL, "hi", stream=True, options=SEEDED):
                pass
        else:
            client.generate(MODEL, "hi", options=SEEDED)
    return time.perf_counter() - began


def child(args: argparse.Namespace) -> int:
    """One measured process: ``--calls`` calls, observed or not (run under callgrind)."""
    gc.disable()  # a collection lands in one count or the other by chance: leave them out
    client = ollama.Client(host=args.child_url)
    for _ in range(5):  # warm: the connection, and what the first calls import
        client.generate(MODEL, "hi", options=SEEDED)
    stop = start_observing(Collect()) if args.child == "observed" else None
    timed(client, args.calls, args.child_stream)
    if stop is not None:
        stop()
    client.close()
    return 0


def instructions(url: str, mode: str, calls: int, stream: bool) -> int:
    child = [__file__, "--child", mode, "--child-url", url, "--calls", str(calls)]
    return callgrind(child + (["--child-stream"] if stream else []))


def count(args: argparse.Namespace) -> int:
    verdicts = []
    with (
        tempfile.TemporaryDirectory() as name,
        emulator(profiles(Path(name), args.tokens), 0.0, 1) as url,
    ):
        for stream in (False, True):
            per_call = {}
            for mode in ("bare", "observed"):
                once = instructions(url, mode, args.calls, stream)
                more = instructions(url, mode, 3 * args.calls, stream)
                per_call[mode] = (more - once) / (2 * args.calls)
            ratio = per_call["observed"] / per_call["bare"]
            kind = "streamed" if stream else "whole"
            print(
                f"{kind}: client instructions per call, bare {per_call['bare']:,.0f}, "
                f"observed {per_call['observed']:,.0f}: ratio {ratio:.4f}"
            )
            verdicts.append((kind, ratio))
    for kind, ratio in verdicts:
        print(f"{'PASS' if ratio <= TARGET else 'FAIL'}: {kind} {ratio:.4f} (target <= {TARGET})")
    return 1 if any(ratio > TARGET for _, ratio in verdicts) else 0


def main(args: argparse.Namespace) -> int:
    verdicts = []
    with (
        tempfile.TemporaryDirectory() as name,
        emulator(profiles(Path(name), args.tokens), 0.0, 1) as url,
    ):
        client = ollama.Client(host=url)
        for stream in (False, True):
            timed(client, args.calls, stream)  # warm the connection and the model
            ratios = []
            collect = Collect()
            for round_ in range(args.rounds):
                bare = observed = 0.0
                for first in (True, False) if round_ % 2 else (False, True):
                    if first:
                        stop = start_observing(collect)
                        observed = timed(client, args.calls, stream)
                        stop()
                    else:
                        bare = timed(client, args.calls, stream)
                ratios.append(observed / bare)
            expected = args.rounds * args.calls
            if len(collect.records) != expected:
                raise SystemExit(f"{len(collect.records)} records for {expected} calls")
            ratio = statistics.median(ratios)
            kind = "streamed" if stream else "whole"
            print(
                f"{kind}: {args.calls} calls x {args.rounds} rounds, observed / bare: median "
                f"{ratio:.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); "
                f"{len(collect.records)} records"
            )
            verdicts.append((kind, ratio))
        client.close()
    failed = [kind for kind, ratio in verdicts if ratio > TARGET]
    for kind, ratio in verdicts:
        print(f"{'PASS' if ratio <= TARGET else 'FAIL'}: {kind} {ratio:.3f} (target <= {TARGET})")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--instructions", action="store_true", help="count, with callgrind")
    parser.add_argument("--child", choices=["bare", "observed"], help=argparse.SUPPRESS)
    parser.add_argument("--child-url", help=argparse.SUPPRESS)
    parser.add_argument("--child-stream", action="store_true", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.child:
        sys.exit(child(parsed))
    sys.exit(count(parsed) if parsed.instructions else main(parsed))
