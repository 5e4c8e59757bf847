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
    .venv/bin/python benchmarks/bench_observe.py --replayed [--calls 100]

The loopback count moves by some 10-25k instructions a call from run to run, because how
the client's reads fall (how many lines each read brings) depends on timing, and under
callgrind the client is slow enough for the server's writes to gather. ``--replayed`` takes
timing out: the same client and httpx's own ``HTTPTransport`` run on an answer the emulator
gave once, handed to httpx by a stand-in for its connection pool in fixed reads (the whole
body in one read; a stream in one read, and a line a read as Ollama sends them), so the
counts move by a few thousand a call, not tens of thousands. The socket is left out, and
with it about half of what the client process does a call on loopback, so these ratios are
stricter than the loopback ones: use them to compare two versions of the code.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpcore
import httpx
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
    return measured(client, args, args.child_stream)


def measured(client: ollama.Client, args: argparse.Namespace, stream: bool) -> int:
    """A child's counted part: ``--calls`` calls, observed or not; each observed call must
    give its record."""
    collect = Collect()
    stop = start_observing(collect) if args.child == "observed" else None
    timed(client, args.calls, stream)
    if stop is not None:
        stop()
        if len(collect.records) != args.calls or collect.records[-1].outcome != "ok":
            raise SystemExit(f"{len(collect.records)} records for {args.calls} calls")
    client.close()
    return 0


class Replayed:
    """A stand-in for httpx's connection pool: every request gets the same reads back."""

    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        for _ in request.stream:  # type: ignore[union-attr]  # the body is sent
            pass
        return httpcore.Response(200, content=iter(self.reads))

    def close(self) -> None:
        pass


SHAPES = ("whole", "stream, one read", "stream, a line a read")


def answers(url: str, folder: Path) -> Path:
    """The emulator's answer to the benchmark's call, whole and streamed, in each shape."""
    with httpx.Client(base_url=url) as client:
        bodies = [
            client.post(
                "/api/generate",
                json={"model": MODEL, "prompt": "hi", "stream": stream, "options": SEEDED},
            ).content
            for stream in (False, True)
        ]
    shapes = {
        "whole": [bodies[0]],
        "stream, one read": [bodies[1]],
        "stream, a line a read": bodies[1].splitlines(keepends=True),
    }
    path = folder / "answers.json"
    path.write_text(
        json.dumps({key: [read.decode() for read in reads] for key, reads in shapes.items()}),
        encoding="utf-8",
    )
    return path


def replayed_child(args: argparse.Namespace) -> int:
    """One measured process on replayed reads: ``--calls`` calls, observed or not."""
    gc.disable()
    reads = json.loads(Path(args.child_answers).read_text(encoding="utf-8"))[args.child_shape]
    transport = httpx.HTTPTransport()
    transport._pool = Replayed([read.encode() for read in reads])  # type: ignore[assignment]
    client = ollama.Client(host="http://127.0.0.1:11434", transport=transport)
    stream = args.child_shape != "whole"
    timed(client, 5, stream)
    return measured(client, args, stream)


def count_replayed(args: argparse.Namespace) -> int:
    verdicts = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        with emulator(profiles(folder, args.tokens), 0.0, 1) as url:
            path = answers(url, folder)
        for shape in SHAPES:
            argv = [__file__, "--child-answers", str(path), "--child-shape", shape]
            verdicts.append((shape, compared(shape, argv, args.calls)))
    return judged(verdicts)


def compared(kind: str, argv: list[str], calls: int) -> float:
    """Observed over bare instructions a call for the child ``argv``: each mode counted at
    ``calls`` and 3x ``calls`` calls, and the difference taken (start-up left out)."""
    per_call = {}
    for mode in ("bare", "observed"):
        counted = [*argv, "--child", mode, "--calls"]
        once = callgrind([*counted, str(calls)])
        more = callgrind([*counted, str(3 * calls)])
        per_call[mode] = (more - once) / (2 * calls)
    bare, observed = per_call["bare"], per_call["observed"]
    ratio = observed / bare
    print(
        f"{kind}: client instructions per call, bare {bare:,.0f}, observed "
        f"{observed:,.0f} (+{observed - bare:,.0f}): ratio {ratio:.4f}",
        flush=True,
    )
    return ratio


def judged(verdicts: list[tuple[str, float]]) -> int:
    for kind, ratio in verdicts:
        print(f"{'PASS' if ratio <= TARGET else 'FAIL'}: {kind} {ratio:.4f} (target <= {TARGET})")
    return 1 if any(ratio > TARGET for _, ratio in verdicts) else 0


def count(args: argparse.Namespace) -> int:
    verdicts = []
    with (
        tempfile.TemporaryDirectory() as name,
        emulator(profiles(Path(name), args.tokens), 0.0, 1) as url,
    ):
        for stream in (False, True):
            argv = [__file__, "--child-url", url] + (["--child-stream"] if stream else [])
            kind = "streamed" if stream else "whole"
            verdicts.append((kind, compared(kind, argv, args.calls)))
    return judged(verdicts)


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
    parser.add_argument(
        "--replayed", action="store_true", help="count, with callgrind, on replayed reads"
    )
    parser.add_argument("--child", choices=["bare", "observed"], help=argparse.SUPPRESS)
    parser.add_argument("--child-url", help=argparse.SUPPRESS)
    parser.add_argument("--child-stream", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-answers", help=argparse.SUPPRESS)
    parser.add_argument("--child-shape", choices=SHAPES, help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.child:
        sys.exit(replayed_child(parsed) if parsed.child_answers else child(parsed))
    if parsed.replayed:
        sys.exit(count_replayed(parsed))
    sys.exit(count(parsed) if parsed.instructions else main(parsed))
