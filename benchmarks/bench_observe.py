"""What the observation point costs a call: the official client, measured and not, side by side.

The official ``ollama.Client`` makes sequential ``generate`` calls to the emulator (its own
process, time scale 0, a fixed answer of ``--tokens`` tokens, so the client's own cost shows),
whole and streamed. Each round runs ``--calls`` calls with the interception point installed
and observing (every call becomes a record, as in a test) and ``--calls`` with it removed,
in alternating order; the figure is the median over the rounds of (observed) / (bare) time.
Target: at most 1.03 for both.

    .venv/bin/python benchmarks/bench_observe.py [--rounds 15] [--calls 200] [--tokens 32]
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
from bench_client import emulator

from pytest_llmperf.observe.measure import Routes, Sink
from pytest_llmperf.observe.point import start_observing
from pytest_llmperf.records import CallRecord

TARGET = 1.03
MODEL = "bench-observe:latest"


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
        f"""[server]
num_parallel = 1
keep_alive = "-1s"

[models."{MODEL}"]
load_s = 0.0
prompt_tokens_per_s = 1e9
first_token_s = 0.0
tokens_per_s = 1e9
jitter = 0.0
response_tokens = [{tokens}, {tokens}]
""",
        encoding="utf-8",
    )
    return path


def timed(client: ollama.Client, calls: int, stream: bool) -> float:
    gc.collect()
    began = time.perf_counter()
    for _ in range(calls):
        if stream:
            for _chunk in client.generate(MODEL, "hi", stream=True):
                pass
        else:
            client.generate(MODEL, "hi")
    return time.perf_counter() - began


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
    sys.exit(main(parser.parse_args()))
