"""What our client costs per call, side by side with bare httpx and the official client.

Three measurements against the emulator in its own process (``llmperf serve`` on loopback):

1. **Calls per second**, sequential ``/api/generate`` calls of a few tokens with every delay
   scaled to zero, so the client's own cost shows. The client and the emulator are pinned to
   different CPUs when there are two. Contenders: our ``OllamaClient`` (no
   cache, records on), bare ``httpx.Client`` doing the same work (POST JSON, parse the
   answer; for streams, parse every line), and the official ``ollama.Client``. The
   contenders take turns call by call, in a rotating order, so the machine's noise hits all
   alike; a rate is 1 / the median latency of a contender's calls. Targets: ours >= 0.97x
   bare httpx and >= 1.0x the official client, streaming and not.
2. **A cache hit through the whole call** (``client.generate(...)`` answered from the
   cache): per-call time, median over batches. Targets: <= 15 us from the first level,
   <= 60 us from fakeredis (first level off, so every hit comes from fakeredis).
3. **64 concurrent calls to a 200 ms profile** through ``AsyncOllamaClient.many`` against one
   call alone. Target: within 1.15x.

    .venv/bin/python benchmarks/bench_client_calls.py [--rounds 10] [--calls 200]
        [--hits 1000] [--batches 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import ollama

from pytest_llmperf import AsyncOllamaClient, OllamaClient, Recorder, ResponseCache
from pytest_llmperf.cache import open_redis

LISTENING = "llmperf emulator listening on "
MODEL = "llama3.2:1b"
OPTIONS = {"num_predict": 8, "seed": 1}
SLOW_PROFILE = """
[server]
num_parallel = 64

[models."slow:200ms"]
load_s = 0.0
first_token_s = 0.1
tokens_per_s = 50.0
prompt_tokens_per_s = 100000.0
response_tokens = [6, 6]
jitter = 0.0
"""


def pin_apart() -> tuple[set[int], set[int]] | None:
    """Two disjoint CPU sets, one for this process and one for the server, if there are two.

    Sharing a core makes the scheduler, not the code, decide who waits.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return {cpus[0]}, set(cpus[1:])


@contextmanager
def emulator(*args: str, server_cpus: set[int] | None = None) -> Iterator[str]:
    """``llmperf serve --port 0 ARGS`` in its own process; its base URL."""
    llmperf = Path(sys.executable).with_name("llmperf")
    process = subprocess.Popen(
        [str(llmperf), "serve", "--port", "0", "--log-level", "warning", *args],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, server_cpus)) if server_cpus else None,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith(LISTENING):
            raise SystemExit(f"the emulator did not start: {line!r}")
        yield line[len(LISTENING) :].strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- 1. calls per second --------------------------------------------------------------------


def contenders(url: str, stream: bool) -> dict[str, Callable[[int], None]]:
    ours = OllamaClient(url, cache=None, on_record=Recorder())
    bare = httpx.Client()
    official = ollama.Client(host=url)
    body = {"model": MODEL, "prompt": "hello", "options": OPTIONS, "stream": stream}

    def run_ours(i: int) -> None:
        if stream:
            for _ in ours.generate(MODEL, "hello", options=OPTIONS, stream=True):
                pass
        else:
            ours.generate(MODEL, "hello", options=OPTIONS)

    def run_bare(i: int) -> None:
        if stream:
            with bare.stream("POST", url + "/api/generate", json=body) as response:
                for line in response.iter_lines():
                    if line:
                        json.loads(line)
        else:
            bare.post(url + "/api/generate", json=body).json()

    def run_official(i: int) -> None:
        if stream:
            for _ in official.generate(MODEL, "hello", options=OPTIONS, stream=True):
                pass
        else:
            official.generate(MODEL, "hello", options=OPTIONS)

    return {"ours": run_ours, "httpx": run_bare, "ollama": run_official}


def calls_per_second(url: str, stream: bool, rounds: int, calls: int) -> dict[str, list[float]]:
    """Per-call latencies of each contender, the contenders taking turns call by call.

    Interleaving call by call (in a rotating order) puts the machine's noise on every
    contender alike; the rates are 1 / the median latency.
    """
    runs = contenders(url, stream)
    for run in runs.values():  # warm: connections, the model, imports
        for i in range(50):
            run(i)
    latencies: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    clock = time.perf_counter
    for i in range(rounds * calls):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            began = clock()
            runs[name](i)
            latencies[name].append(clock() - began)
    return latencies


def rate(latencies: list[float]) -> float:
    return 1.0 / statistics.median(latencies)


def ratio(latencies: dict[str, list[float]], a: str, b: str) -> float:
    return rate(latencies[a]) / rate(latencies[b])


# --- 2. cache hits ------------------------------------------------------------------------------


def hit_cost_us(url: str, cache: ResponseCache, hits: int, batches: int) -> float:
    client = OllamaClient(url, cache=cache, on_record=Recorder())
    client.generate(MODEL, "cached", options=OPTIONS)  # the miss that fills the cache
    per_call = []
    for _ in range(batches):
        began = time.perf_counter_ns()
        for _ in range(hits):
            client.generate(MODEL, "cached", options=OPTIONS)
        per_call.append((time.perf_counter_ns() - began) / hits / 1000)
    stats = cache.stats
    if stats.misses != 1 or stats.hits != hits * batches:
        raise SystemExit(f"expected hits only, got {stats}")
    client.close()
    return statistics.median(per_call)


# --- 3. concurrency -------------------------------------------------------------------------------


async def concurrency_ratio(url: str, rounds: int) -> tuple[float, float, float]:
    async with AsyncOllamaClient(url, cache=None) as client:
        await client.generate("slow:200ms", "warm")
        alone, together = [], []
        for _ in range(rounds):
            began = time.perf_counter()
            await client.generate("slow:200ms", "one")
            alone.append(time.perf_counter() - began)
            began = time.perf_counter()
            outcomes = await client.many(
                [lambda i=i: client.generate("slow:200ms", f"q{i}") for i in range(64)],
                concurrency=64,
            )
            together.append(time.perf_counter() - began)
            if not all(outcome.ok for outcome in outcomes):
                raise SystemExit("a concurrent call failed")
    one, many = statistics.median(alone), statistics.median(together)
    return one, many, many / one


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(args: argparse.Namespace) -> int:
    results: list[bool] = []
    cpus = pin_apart()
    if cpus:
        os.sched_setaffinity(0, cpus[0])
        print(f"client on CPU {sorted(cpus[0])}, emulator on CPU {sorted(cpus[1])}")
    with emulator("--time-scale", "0", server_cpus=cpus[1] if cpus else None) as url:
        for stream in (False, True):
            rates = calls_per_second(url, stream, args.rounds, args.calls)
            label = "stream" if stream else "whole "
            medians = {name: rate(values) for name, values in rates.items()}
            vs_httpx, vs_ollama = ratio(rates, "ours", "httpx"), ratio(rates, "ours", "ollama")
            print(
                f"{label}: calls/s ours {medians['ours']:.0f}, httpx {medians['httpx']:.0f}, "
                f"ollama {medians['ollama']:.0f}; ours/httpx {vs_httpx:.3f} "
                f"[{verdict(vs_httpx >= 0.97)} >= 0.97], ours/ollama {vs_ollama:.3f} "
                f"[{verdict(vs_ollama >= 1.0)} >= 1.0]"
            )
            results += [vs_httpx >= 0.97, vs_ollama >= 1.0]
        memory = hit_cost_us(url, ResponseCache(), args.hits, args.batches)
        redis = hit_cost_us(
            url, ResponseCache(open_redis("fakeredis"), memory_size=0), args.hits, args.batches
        )
        print(
            f"cache hit, first level: median {memory:.1f} us/call [{verdict(memory <= 15)} <= 15]"
        )
        print(f"cache hit, fakeredis:   median {redis:.1f} us/call [{verdict(redis <= 60)} <= 60]")
        results += [memory <= 15, redis <= 60]
    with tempfile.TemporaryDirectory() as folder:
        profiles = Path(folder, "slow.toml")
        profiles.write_text(SLOW_PROFILE)
        with emulator("--profiles", str(profiles), server_cpus=cpus[1] if cpus else None) as url:
            one, many, factor = asyncio.run(concurrency_ratio(url, args.concurrency_rounds))
    print(
        f"64 concurrent calls to a 200 ms profile: {many * 1000:.0f} ms vs one call "
        f"{one * 1000:.0f} ms = {factor:.3f}x [{verdict(factor <= 1.15)} <= 1.15]"
    )
    results.append(factor <= 1.15)
    return 0 if all(results) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200, help="calls per round and contender")
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--concurrency-rounds", type=int, default=7)
    sys.exit(main(parser.parse_args()))
