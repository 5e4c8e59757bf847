"""Our Ollama client's overhead, cache hits and concurrency, each side by side in one run.

Three targets, each with a PASS/FAIL line; every figure is measured, nothing is assumed.

1. Overhead: calls/s of our sync ``OllamaClient`` (``cache=None``) against a bare
   ``httpx.Client`` doing the same work (POST the JSON body; read and ``json.loads`` the
   answer, or, streaming, every line) and against the official ``ollama.Client``, for
   ``generate`` with and without ``stream``. The emulator runs at ``--fast-time-scale``
   (default 0: no delays) with a short fixed answer, so the clients' own cost shows. Each
   round runs ``--calls`` sequential calls per contender, the contenders in a rotating
   order, so machine noise falls on all of them alike; the figure is the median over the
   rounds of each round's ratio. Targets: ours >= 0.97x bare httpx and >= 1.0x official.
2. Cache hits: ``client.generate(...)`` answered from the cache (``options={"seed": 1}``
   makes it repeatable), from the first level (``ResponseCache()``) and from fakeredis
   (``memory_size=0``: every hit comes from fakeredis). Per round and level, one batch of
   ``--hit-batch`` calls timed as a whole (its mean) and one batch of calls timed one by
   one; the figures are the median of the batch means and the median of every single call.
   Targets: <= 15 us from memory, <= 60 us from fakeredis (both figures must meet them).
3. Concurrency: a warm model whose one call takes ``--slow-ms`` (first token at half of it,
   the other tokens over the other half), on an emulator with ``num_parallel`` equal to
   ``--concurrency``. Each round times one call alone and ``--concurrency`` calls at once
   through ``AsyncOllamaClient.many`` (alternating which goes first); the figure is the
   median over the rounds of (all at once) / (one alone). Target <= 1.15. For reference,
   the same rounds (interleaved) with a bare ``httpx.AsyncClient`` with our pool limits and
   with raw HTTP/1.1 on asyncio streams (the floor the machine and the emulator allow).

The emulator runs in its own process (``llmperf serve --port 0`` on 127.0.0.1); client and
server share the machine's cores, so read the ratios, and run twice before trusting them.

    .venv/bin/python benchmarks/bench_client.py [--rounds 20] [--calls 200] [--tokens 8]
        [--hit-rounds 20] [--hit-batch 1000] [--concurrency 64] [--slow-ms 200]
        [--concurrency-rounds 10] [--only 1,2,3] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import ollama
from serving import llmperf_serve

from pytest_llmperf import AsyncOllamaClient, OllamaClient, ResponseCache
from pytest_llmperf.client.cache import open_redis

FAST_MODEL = "bench-fast:latest"
SLOW_MODEL = "bench-slow:latest"
PROMPT = "Why is the sky blue?"

TARGET_VS_HTTPX = 0.97  # ours / bare httpx, calls per second: at least
TARGET_VS_OFFICIAL = 1.0  # ours / official ollama client: at least
TARGET_HIT_MEMORY_US = 15.0  # per cache hit from the first level: at most
TARGET_HIT_REDIS_US = 60.0  # per cache hit from fakeredis: at most
TARGET_CONCURRENCY = 1.15  # N calls at once / one call alone: at most

# The reference async client of target 3: one httpx pool, as large as our client's was when
# this was written (pytest_llmperf.client.faces.LIMITS).
BARE_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64)

Runner = Callable[[int], None]  # runs that many calls, one after another


@dataclass
class Verdict:
    target: str
    figure: str
    passed: bool


# --- the emulator -------------------------------------------------------------------------


def write_profiles(directory: Path, args: argparse.Namespace) -> Path:
    """A fast model (no delays, ``--tokens`` tokens) and a slow one (one call: ``--slow-ms``)."""
    half_s = args.slow_ms / 1000 / 2
    rate = (args.slow_tokens - 1) / half_s  # the tokens after the first fill the second half
    path = directory / "bench_client_profiles.toml"
    path.write_text(
        f"""[server]
num_parallel = 1
keep_alive = "-1s"

[models."{FAST_MODEL}"]
load_s = 0.0
prompt_tokens_per_s = 1e9
first_token_s = 0.0
tokens_per_s = 1e9
jitter = 0.0
response_tokens = [{args.tokens}, {args.tokens}]

[models."{SLOW_MODEL}"]
load_s = 0.0
prompt_tokens_per_s = 1e9
first_token_s = {half_s!r}
tokens_per_s = {rate!r}
jitter = 0.0
response_tokens = [{args.slow_tokens}, {args.slow_tokens}]
""",
        encoding="utf-8",
    )
    return path


@contextmanager
def emulator(profiles: Path, time_scale: float, parallel: int) -> Iterator[str]:
    """``llmperf serve`` on a free loopback port, in its own process; yields its base URL."""
    options = ["--time-scale", repr(time_scale), "--profiles", str(profiles)]
    options += ["--num-parallel", str(parallel), "--max-queue", str(max(parallel, 512))]
    with llmperf_serve([*options, "--log-level", "warning"]) as (url, process):
        print(
            f"emulator: {url} (pid {process.pid}, time scale {time_scale:g}, "
            f"num_parallel {parallel})"
        )
        yield url


# --- statistics ---------------------------------------------------------------------------


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """p25, median, p75 (inclusive method: no values beyond the data)."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    p25, p50, p75 = statistics.quantiles(values, n=4, method="inclusive")
    return p25, p50, p75


# --- target 1: overhead against bare httpx and the official client ------------------------


def body(stream: bool) -> dict[str, Any]:
    return {"model": FAST_MODEL, "prompt": PROMPT, "stream": stream}


def ours_runner(client: OllamaClient, stream: bool) -> Runner:
    generate = client.generate

    if stream:

        def run(calls: int) -> None:
            for _ in range(calls):
                for _chunk in generate(FAST_MODEL, PROMPT, stream=True):
                    pass

    else:

        def run(calls: int) -> None:
            for _ in range(calls):
                generate(FAST_MODEL, PROMPT)

    return run


def httpx_runner(client: httpx.Client, url: str, stream: bool) -> Runner:
    """The least a client can do: POST the JSON, check the status, decode every line."""
    endpoint = url + "/api/generate"
    payload = body(stream)
    loads = json.loads

    if stream:

        def run(calls: int) -> None:
            for _ in range(calls):
                with client.stream("POST", endpoint, json=payload) as response:
                    if response.status_code != 200:
                        raise SystemExit(f"bare httpx: HTTP {response.status_code}")
                    for line in response.iter_lines():
                        if line:
                            loads(line)

    else:

        def run(calls: int) -> None:
            for _ in range(calls):
                response = client.post(endpoint, json=payload)
                if response.status_code != 200:
                    raise SystemExit(f"bare httpx: HTTP {response.status_code}")
                loads(response.content)

    return run


def official_runner(client: ollama.Client, stream: bool) -> Runner:
    generate = client.generate

    if stream:

        def run(calls: int) -> None:
            for _ in range(calls):
                for _chunk in generate(FAST_MODEL, PROMPT, stream=True):
                    pass

    else:

        def run(calls: int) -> None:
            for _ in range(calls):
                generate(FAST_MODEL, PROMPT)

    return run


def same_answers(ours: OllamaClient, bare: httpx.Client, official: ollama.Client, url: str) -> str:
    """Check that the three contenders get the same answer; the answer's text."""
    texts: dict[str, str] = {}
    for stream in (False, True):
        mode = "stream" if stream else "whole"
        if stream:
            texts[f"ours {mode}"] = "".join(
                c["response"] for c in ours.generate(FAST_MODEL, PROMPT, stream=True)
            )
            texts[f"official {mode}"] = "".join(
                c["response"] for c in official.generate(FAST_MODEL, PROMPT, stream=True)
            )
            with bare.stream("POST", url + "/api/generate", json=body(True)) as response:
                lines = [json.loads(line) for line in response.iter_lines() if line]
            texts[f"httpx {mode}"] = "".join(line["response"] for line in lines)
        else:
            texts[f"ours {mode}"] = ours.generate(FAST_MODEL, PROMPT)["response"]
            texts[f"official {mode}"] = official.generate(FAST_MODEL, PROMPT)["response"]
            answer = bare.post(url + "/api/generate", json=body(False)).json()
            texts[f"httpx {mode}"] = answer["response"]
    if len(set(texts.values())) != 1 or not next(iter(texts.values())):
        raise SystemExit(f"the contenders got different answers: {texts}")
    return next(iter(texts.values()))


def bench_overhead(url: str, args: argparse.Namespace) -> tuple[list[Verdict], dict[str, Any]]:
    ours = OllamaClient(url, cache=None)
    bare = httpx.Client()
    official = ollama.Client(host=url)
    try:
        text = same_answers(ours, bare, official, url)
        print(f"answer ({args.tokens} tokens, the same for every contender): {text!r}")
        names = ("ours", "httpx", "official")
        runners: dict[tuple[str, str], Runner] = {}
        for mode, stream in (("whole", False), ("stream", True)):
            runners[(mode, "ours")] = ours_runner(ours, stream)
            runners[(mode, "httpx")] = httpx_runner(bare, url, stream)
            runners[(mode, "official")] = official_runner(official, stream)
        for runner in runners.values():  # warm every path (connections, imports, caches)
            runner(max(args.calls // 4, 10))
        rates: dict[tuple[str, str], list[float]] = {key: [] for key in runners}
        clock = time.perf_counter
        for round_ in range(args.rounds):
            for mode in ("whole", "stream") if round_ % 2 else ("stream", "whole"):
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:
                    run = runners[(mode, name)]
                    began = clock()
                    run(args.calls)
                    rates[(mode, name)].append(args.calls / (clock() - began))
    finally:
        ours.close()
        bare.close()
        official._client.close()

    print(
        f"\n1. overhead: {args.rounds} rounds x {args.calls} sequential calls per contender, "
        "interleaved; medians over rounds"
    )
    print(
        f"{'mode':<7}{'contender':<10}{'calls/s':>9}{'us/call':>9}"
        f"{'ours/them p25':>15}{'median':>8}{'p75':>7}{'min':>7}{'max':>7}"
    )
    verdicts: list[Verdict] = []
    results: dict[str, Any] = {}
    for mode in ("whole", "stream"):
        mine = rates[(mode, "ours")]
        for name in names:
            theirs = rates[(mode, name)]
            median_rate = statistics.median(theirs)
            line = f"{mode:<7}{name:<10}{median_rate:>9.0f}{1e6 / median_rate:>9.1f}"
            entry: dict[str, Any] = {"calls_per_s": theirs}
            if name != "ours":
                ratios = [a / b for a, b in zip(mine, theirs, strict=True)]
                p25, p50, p75 = quartiles(ratios)
                line += f"{p25:>15.3f}{p50:>8.3f}{p75:>7.3f}{min(ratios):>7.3f}{max(ratios):>7.3f}"
                entry["ratios"] = ratios
                target = TARGET_VS_HTTPX if name == "httpx" else TARGET_VS_OFFICIAL
                # what ours adds per call: the median over rounds of the paired difference
                pairs = zip(mine, theirs, strict=True)
                extra_us = statistics.median(1e6 / a - 1e6 / b for a, b in pairs)
                verdicts.append(
                    Verdict(
                        f"{mode} generate: ours >= {target:.2f}x {name}",
                        f"{p50:.3f}x ({extra_us:+.1f} us/call)",
                        p50 >= target,
                    )
                )
            results[f"{mode}/{name}"] = entry
            print(line)
    return verdicts, results


# --- target 2: cache hits through the whole call -------------------------------------------


def bench_hits(url: str, args: argparse.Namespace) -> tuple[list[Verdict], dict[str, Any]]:
    levels = {
        "memory": (ResponseCache(), TARGET_HIT_MEMORY_US),
        "fakeredis": (ResponseCache(open_redis("fakeredis"), memory_size=0), TARGET_HIT_REDIS_US),
    }
    clients = {name: OllamaClient(url, cache=cache) for name, (cache, _) in levels.items()}
    options = {"seed": 1}
    batch_means: dict[str, list[float]] = {name: [] for name in levels}
    singles: dict[str, list[int]] = {name: [] for name in levels}
    clock = time.perf_counter_ns
    try:
        answers = {n: c.generate(FAST_MODEL, PROMPT, options=options) for n, c in clients.items()}
        if len({a["response"] for a in answers.values()}) != 1:
            raise SystemExit("the two caches' first (missed) calls answered differently")
        for client in clients.values():  # warm: the hit path, the allocator
            generate = client.generate
            for _ in range(args.hit_batch):
                generate(FAST_MODEL, PROMPT, options=options)
        before = {
            name: (c.stats.hits_memory, c.stats.hits_redis) for name, (c, _) in levels.items()
        }
        names = list(levels)
        for round_ in range(args.hit_rounds):
            for name in names if round_ % 2 == 0 else names[::-1]:
                generate = clients[name].generate
                began = clock()
                for _ in range(args.hit_batch):
                    generate(FAST_MODEL, PROMPT, options=options)
                batch_means[name].append((clock() - began) / args.hit_batch / 1000)
                times = singles[name]
                for _ in range(args.hit_batch):
                    began = clock()
                    generate(FAST_MODEL, PROMPT, options=options)
                    times.append(clock() - began)
    finally:
        for client in clients.values():
            client.close()
    timed = 2 * args.hit_rounds * args.hit_batch
    for name, (cache, _) in levels.items():
        memory, redis = (
            cache.stats.hits_memory - before[name][0],
            cache.stats.hits_redis - before[name][1],
        )
        wanted = (timed, 0) if name == "memory" else (0, timed)
        if (memory, redis) != wanted or cache.stats.misses != 1:
            raise SystemExit(
                f"{name}: {memory} memory hits, {redis} fakeredis hits and {cache.stats.misses} "
                f"misses, not {wanted} and 1 miss"
            )

    print(
        f"\n2. cache hits through client.generate: {args.hit_rounds} rounds x "
        f"{args.hit_batch} calls timed as a batch + {args.hit_batch} timed one by one, per "
        "level, interleaved (every call checked to be a hit of that level)"
    )
    print(
        f"{'level':<11}{'batch mean us: median':>22}{'p25':>7}{'p75':>7}"
        f"{'per call us: median':>21}{'p90':>7}{'p99':>7}{'target':>8}"
    )
    verdicts: list[Verdict] = []
    results: dict[str, Any] = {}
    for name, (_, target) in levels.items():
        p25, mean_median, p75 = quartiles(batch_means[name])
        ordered = sorted(singles[name])
        single_median = statistics.median(ordered) / 1000
        p90 = ordered[int(0.90 * (len(ordered) - 1))] / 1000
        p99 = ordered[int(0.99 * (len(ordered) - 1))] / 1000
        print(
            f"{name:<11}{mean_median:>22.2f}{p25:>7.2f}{p75:>7.2f}"
            f"{single_median:>21.2f}{p90:>7.2f}{p99:>7.2f}{target:>8.0f}"
        )
        verdicts.append(
            Verdict(
                f"cache hit from {name} <= {target:.0f} us/call",
                f"{mean_median:.2f} us (batch means), {single_median:.2f} us (single calls)",
                mean_median <= target and single_median <= target,
            )
        )
        results[name] = {
            "batch_mean_us": batch_means[name],
            "per_call_median_us": single_median,
            "per_call_p90_us": p90,
            "per_call_p99_us": p99,
        }
    return verdicts, results


# --- target 3: many calls at once to a slow model -----------------------------------------


Answer = dict[str, Any]
Batch = Callable[[list[str]], Awaitable[list[Answer]]]  # the answers to these prompts


def ours_batch(client: AsyncOllamaClient) -> Batch:
    async def run(prompts: list[str]) -> list[Answer]:
        if len(prompts) == 1:
            return [await client.generate(SLOW_MODEL, prompts[0])]
        outcomes = await client.many(
            [partial(client.generate, SLOW_MODEL, prompt) for prompt in prompts],
            concurrency=len(prompts),
        )
        failed = [o.error for o in outcomes if not o.ok]
        if failed:
            raise SystemExit(f"{len(failed)} of {len(prompts)} calls failed: {failed[0]}")
        return [o.unwrap() for o in outcomes]

    return run


def httpx_batch(client: httpx.AsyncClient, url: str) -> Batch:
    endpoint = url + "/api/generate"

    async def one(prompt: str) -> Answer:
        payload = {"model": SLOW_MODEL, "prompt": prompt, "stream": False}
        response = await client.post(endpoint, json=payload)
        if response.status_code != 200:
            raise SystemExit(f"bare httpx: HTTP {response.status_code}")
        answer: Answer = json.loads(response.content)
        return answer

    async def run(prompts: list[str]) -> list[Answer]:
        return list(await asyncio.gather(*(one(prompt) for prompt in prompts)))

    return run


class RawConnections:
    """The floor: HTTP/1.1 over asyncio streams, one kept-alive connection per call at once.

    No pool, no timeouts, no checks beyond the status: what the machine and the emulator
    allow, to read the other contenders against.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, prompt: str) -> Answer:
        if self.idle:
            reader, writer = self.idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        payload = json.dumps({"model": SLOW_MODEL, "prompt": prompt, "stream": False}).encode()
        writer.write(
            b"POST /api/generate HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (self.host.encode(), len(payload), payload)
        )
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        if not head.startswith(b"http/1.1 200"):
            raise SystemExit(f"raw floor: {head.splitlines()[0]!r}")
        if b"transfer-encoding: chunked" in head:
            data = b""
            while size := int((await reader.readline()).split(b";")[0], 16):
                data += (await reader.readexactly(size + 2))[:-2]
            await reader.readuntil(b"\r\n")  # the empty trailer
        else:
            length = head.split(b"content-length:")[1].split(b"\r\n")[0]
            data = await reader.readexactly(int(length))
        self.idle.append((reader, writer))
        answer: Answer = json.loads(data)
        return answer

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


def raw_batch(raw: RawConnections) -> Batch:
    async def run(prompts: list[str]) -> list[Answer]:
        return list(await asyncio.gather(*(raw.post(prompt) for prompt in prompts)))

    return run


@dataclass
class Timed:
    wall_s: float
    server_s: float  # the longest total_duration the server reported among the calls


async def timed(batch: Batch, count: int, tokens: int) -> Timed:
    prompts = [f"question {i}" for i in range(count)]
    began = time.perf_counter()
    answers = await batch(prompts)
    wall = time.perf_counter() - began
    short = [a.get("eval_count") for a in answers if a.get("eval_count") != tokens]
    if len(answers) != count or short:
        raise SystemExit(f"{len(answers)} answers, {len(short)} without {tokens} tokens")
    return Timed(wall, max(a["total_duration"] for a in answers) / 1e9)


CONTENDERS_3 = ("ours", "httpx", "floor")


async def concurrency_rounds(
    url: str, args: argparse.Namespace
) -> dict[str, list[tuple[Timed, Timed]]]:
    """Per contender, per round: (one call alone, ``--concurrency`` calls at once)."""
    n, tokens = args.concurrency, args.slow_tokens
    ours = AsyncOllamaClient(url, cache=None)
    bare = httpx.AsyncClient(limits=BARE_LIMITS, timeout=60.0)
    raw = RawConnections(url)
    batches = {"ours": ours_batch(ours), "httpx": httpx_batch(bare, url), "floor": raw_batch(raw)}
    pairs: dict[str, list[tuple[Timed, Timed]]] = {name: [] for name in CONTENDERS_3}
    try:
        await ours.warm_up([SLOW_MODEL])
        for batch in batches.values():  # open the connections, warm every path
            await timed(batch, n, tokens)
            await timed(batch, 1, tokens)
        for round_ in range(args.concurrency_rounds):
            shift = round_ % len(CONTENDERS_3)
            for name in CONTENDERS_3[shift:] + CONTENDERS_3[:shift]:
                batch = batches[name]
                if round_ % 2:
                    many = await timed(batch, n, tokens)
                    one = await timed(batch, 1, tokens)
                else:
                    one = await timed(batch, 1, tokens)
                    many = await timed(batch, n, tokens)
                pairs[name].append((one, many))
    finally:
        await ours.aclose()
        await bare.aclose()
        await raw.close()
    return pairs


def bench_concurrency(url: str, args: argparse.Namespace) -> tuple[list[Verdict], dict[str, Any]]:
    pairs = asyncio.run(concurrency_rounds(url, args))
    n = args.concurrency
    print(
        f"\n3. concurrency: {args.concurrency_rounds} rounds; in each, per contender, one call "
        f"alone and {n} at once (alternating which goes first), contenders in rotating order"
    )
    print(
        f"   ours: AsyncOllamaClient.many(concurrency={n}); httpx: one bare httpx.AsyncClient "
        "(max_connections 256, keep-alive 64), asyncio.gather; floor: raw HTTP/1.1 on asyncio "
        "streams"
    )
    print(
        f"{'contender':<10}{'one ms':>8}{f'{n} at once ms':>15}{'ratio p25':>11}{'median':>8}"
        f"{'p75':>7}{'min':>7}{'max':>7}{'srv one ms':>12}{f'srv {n} max ms':>15}"
    )
    verdicts: list[Verdict] = []
    results: dict[str, Any] = {}
    for name in CONTENDERS_3:
        runs = pairs[name]
        ratios = [many.wall_s / one.wall_s for one, many in runs]
        p25, median, p75 = quartiles(ratios)
        one_ms = statistics.median(one.wall_s for one, _ in runs) * 1e3
        many_ms = statistics.median(many.wall_s for _, many in runs) * 1e3
        srv_one = statistics.median(one.server_s for one, _ in runs) * 1e3
        srv_many = statistics.median(many.server_s for _, many in runs) * 1e3
        print(
            f"{name:<10}{one_ms:>8.1f}{many_ms:>15.1f}{p25:>11.3f}{median:>8.3f}{p75:>7.3f}"
            f"{min(ratios):>7.3f}{max(ratios):>7.3f}{srv_one:>12.1f}{srv_many:>15.1f}"
        )
        results[name] = {
            "ratios": ratios,
            "pairs": [{"one": asdict(one), "many": asdict(many)} for one, many in runs],
        }
        if name == "ours":
            verdicts.append(
                Verdict(
                    f"{n} concurrent calls <= {TARGET_CONCURRENCY:.2f}x one call "
                    f"({args.slow_ms:g} ms profile)",
                    f"{median:.3f}x ({many_ms:.1f} ms vs {one_ms:.1f} ms)",
                    median <= TARGET_CONCURRENCY,
                )
            )
    print(
        "   srv: total_duration the emulator reports (from when its app has the request); "
        "the gap to the wall time is spent in the client, the sockets or the server's HTTP layer"
    )
    return verdicts, results


# --- the run ------------------------------------------------------------------------------


def parse_only(text: str) -> set[int]:
    chosen = {int(part) for part in text.split(",") if part.strip()}
    if not chosen or not chosen <= {1, 2, 3}:
        raise argparse.ArgumentTypeError("--only takes target numbers from 1,2,3")
    return chosen


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="overhead rounds (target 1)")
    parser.add_argument("--calls", type=int, default=200, help="calls per contender and round")
    parser.add_argument("--tokens", type=int, default=8, help="tokens in a fast answer")
    parser.add_argument(
        "--fast-time-scale", type=float, default=0.0, help="emulator time scale, targets 1-2"
    )
    parser.add_argument("--hit-rounds", type=int, default=20, help="cache-hit rounds (target 2)")
    parser.add_argument("--hit-batch", type=int, default=1000, help="calls per cache-hit batch")
    parser.add_argument("--concurrency", type=int, default=64, help="calls at once (target 3)")
    parser.add_argument("--slow-ms", type=float, default=200.0, help="one slow call's time")
    parser.add_argument("--slow-tokens", type=int, default=6, help="tokens in a slow answer")
    parser.add_argument("--concurrency-rounds", type=int, default=10, help="rounds (target 3)")
    parser.add_argument(
        "--only", type=parse_only, default={1, 2, 3}, help="targets to run, e.g. 1,3"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    args = parser.parse_args()
    small = [
        name
        for name in ("rounds", "calls", "tokens", "hit_rounds", "hit_batch", "concurrency")
        if getattr(args, name) < 1
    ]
    if small or args.slow_tokens < 2 or args.slow_ms <= 0 or args.concurrency_rounds < 1:
        parser.error("counts must be >= 1, --slow-tokens >= 2 and --slow-ms > 0")
    return args


def source_digest() -> str:
    """A short digest of the package's sources, to tell which code a run measured."""
    import pytest_llmperf

    digest = hashlib.sha256()
    for path in sorted(Path(pytest_llmperf.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def main() -> int:
    args = parse_args()
    source = source_digest()
    print(
        f"python {sys.version.split()[0]}, httpx {httpx.__version__}, httpcore "
        f"{version('httpcore')}, ollama {version('ollama')}, {os.cpu_count()} cores, "
        f"gc {'on' if gc.isenabled() else 'off'}, pytest_llmperf sources {source}"
    )
    verdicts: list[Verdict] = []
    results: dict[str, Any] = {"args": {k: v for k, v in vars(args).items() if k != "json"}}
    results["sources"] = source
    results["args"]["only"] = sorted(args.only)
    with tempfile.TemporaryDirectory(prefix="llmperf-bench-") as tmp:
        profiles = write_profiles(Path(tmp), args)
        if args.only & {1, 2}:
            with emulator(profiles, args.fast_time_scale, 1) as url:
                if 1 in args.only:
                    found, results["overhead"] = bench_overhead(url, args)
                    verdicts += found
                if 2 in args.only:
                    found, results["cache_hits"] = bench_hits(url, args)
                    verdicts += found
        if 3 in args.only:
            print()
            with emulator(profiles, 1.0, args.concurrency) as url:
                found, results["concurrency"] = bench_concurrency(url, args)
                verdicts += found
    print()
    for verdict in verdicts:
        print(f"{'PASS' if verdict.passed else 'FAIL'}: {verdict.target}: {verdict.figure}")
    results["verdicts"] = [asdict(v) for v in verdicts]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0 if all(v.passed for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
