"""How many concurrent streams the emulator on a loopback port sustains at a profile's rate.

The emulator runs in its own process (``llmperf serve``); this process opens N streams of
``/api/generate`` at once and measures each stream's delivered rate on its own clock:
(tokens - 1) / (last token - first token). A level passes when the 5th-percentile stream
is within 5% of the profile's tokens/s. Client and server share this machine's cores, so
the figure is a lower bound of what the emulator alone sustains.

    .venv/bin/python benchmarks/bench_emulator_streams.py [--tokens-per-s 20] [--tokens 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

LISTENING = "llmperf emulator listening on "


def profile_file(tokens_per_s: float, tokens: int) -> Path:
    text = f"""
[server]
num_parallel = 4096
max_queue = 4096

[models."bench:1b"]
load_s = 0.0
prompt_tokens_per_s = 1000000.0
first_token_s = 0.0
tokens_per_s = {tokens_per_s}
jitter = 0.0
response_tokens = [{tokens}, {tokens}]
"""
    path = Path(tempfile.mkdtemp()) / "bench_profiles.toml"
    path.write_text(text, encoding="utf-8")
    return path


def start_server(profiles: Path) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "pytest_llmperf.cli", "serve", "--port", "0"]
    command += ["--profiles", str(profiles), "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(LISTENING):
        process.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return process, line[len(LISTENING) :].strip()


async def one_stream(client: httpx.AsyncClient) -> float:
    """The delivered tokens/s of one stream, measured on this side."""
    arrivals = []
    body = {"model": "bench:1b", "prompt": "go"}
    async with client.stream("POST", "/api/generate", json=body) as response:
        async for line in response.aiter_lines():
            if not json.loads(line)["done"]:
                arrivals.append(time.perf_counter())
    return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])


async def level(url: str, streams: int) -> list[float]:
    limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        await one_stream(client)  # warm the model and a connection
        return list(await asyncio.gather(*(one_stream(client) for _ in range(streams))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens-per-s", type=float, default=20.0)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--levels", default="1,16,64,128,256,384,512")
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    process, url = start_server(profile_file(args.tokens_per_s, args.tokens))
    rate = args.tokens_per_s
    print(f"profile: {rate:g} tokens/s, {args.tokens} tokens a stream; server {url} (own process)")
    columns = ("streams", "median/profile", "p5/profile", "worst/profile", "tokens/s")
    print(f"{columns[0]:>8} {columns[1]:>15} {columns[2]:>11} {columns[3]:>14} {columns[4]:>9}  ok")
    best = 0
    try:
        for streams in levels:
            started = time.perf_counter()
            rates = sorted(asyncio.run(level(url, streams)))
            wall = time.perf_counter() - started
            p5 = rates[max(0, int(0.05 * len(rates)) - 1)]
            ok = abs(p5 / rate - 1) <= 0.05
            total = streams * args.tokens / wall
            print(
                f"{streams:>8} {statistics.median(rates) / rate:>15.3f} {p5 / rate:>11.3f}"
                f" {rates[0] / rate:>14.3f} {total:>9.0f}  {'yes' if ok else 'NO'}"
            )
            if not ok:
                break
            best = streams
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(f"headline: {best} concurrent streams held {rate:g} tokens/s within 5% (p5 stream)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
