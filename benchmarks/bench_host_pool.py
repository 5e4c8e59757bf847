"""How the host pool spreads concurrent calls: four emulators against one, side by side.

Four ``llmperf serve`` processes on loopback ports, each with ``--num-parallel 1`` (one
request at a time per model, as Ollama's default), serve the shipped ``llama3.2:1b``
profile at ``--time-scale``. Each round sends ``--calls`` concurrent calls (a fixed
``num_predict``, so every call is the same work) through ``AsyncOllamaClient.many``, first to
one host, then to a pool of the four; the figure is the ratio of the pool's time to the one
host's time, per round (ideal: 1/4). Rounds alternate the order, and the median is reported.

    .venv/bin/python benchmarks/bench_host_pool.py [--calls 32] [--rounds 5]
        [--time-scale 0.2] [--tokens 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pytest_llmperf import AsyncOllamaClient

LISTENING = "llmperf emulator listening on "
MODEL = "llama3.2:1b"
TARGET = 0.30  # "close to a quarter"


@contextmanager
def emulators(count: int, time_scale: float) -> Iterator[list[str]]:
    """Start ``count`` emulator processes; their base URLs."""
    llmperf = Path(sys.executable).with_name("llmperf")
    processes = [
        subprocess.Popen(
            [
                str(llmperf),
                "serve",
                "--port",
                "0",
                "--num-parallel",
                "1",
                "--time-scale",
                str(time_scale),
                "--log-level",
                "warning",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        urls = []
        for process in processes:
            line = process.stdout.readline() if process.stdout else ""
            if not line.startswith(LISTENING):
                raise SystemExit(f"an emulator did not start: {line!r}")
            urls.append(line[len(LISTENING) :].strip())
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


async def batch(client: AsyncOllamaClient, calls: int, tokens: int) -> float:
    began = time.perf_counter()
    outcomes = await client.many(
        [
            lambda i=i: client.generate(MODEL, f"question {i}", options={"num_predict": tokens})
            for i in range(calls)
        ],
        concurrency=calls,
    )
    elapsed = time.perf_counter() - began
    failed = [o.error for o in outcomes if not o.ok]
    if failed:
        raise SystemExit(f"{len(failed)} calls failed, first: {failed[0]}")
    return elapsed


async def main(args: argparse.Namespace) -> int:
    with emulators(4, args.time_scale) as urls:
        for url in urls:
            async with AsyncOllamaClient(url) as warming:
                await warming.warm_up([MODEL])
        alone = AsyncOllamaClient(urls[0], cache=None)
        pooled = AsyncOllamaClient(urls, cache=None)
        ratios = []
        print(f"{args.calls} concurrent calls of {args.tokens} tokens, num_parallel 1 per host")
        print(f"{'round':>5} {'one host s':>10} {'four hosts s':>12} {'ratio':>6}")
        for round_ in range(args.rounds):
            if round_ % 2:
                four = await batch(pooled, args.calls, args.tokens)
                one = await batch(alone, args.calls, args.tokens)
            else:
                one = await batch(alone, args.calls, args.tokens)
                four = await batch(pooled, args.calls, args.tokens)
            ratios.append(four / one)
            print(f"{round_ + 1:>5} {one:>10.3f} {four:>12.3f} {four / one:>6.3f}")
        await alone.aclose()
        await pooled.aclose()
    median = statistics.median(ratios)
    verdict = "PASS" if median <= TARGET else "FAIL"
    print(f"median ratio four hosts / one host: {median:.3f} (ideal 0.250; target <= {TARGET})")
    print(f"{verdict}: 32 calls over four hosts finish in {median:.2f}x the time of one host")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--time-scale", type=float, default=0.2)
    parser.add_argument("--tokens", type=int, default=16)
    sys.exit(asyncio.run(main(parser.parse_args())))
