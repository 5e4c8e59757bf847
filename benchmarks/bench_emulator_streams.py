"""How many concurrent streams the emulator on a loopback port sustains at a profile's rate.

The emulator runs in its own process (``llmperf serve`` on 127.0.0.1, port 0) with a
synthetic profile: no load time, no jitter, a fixed answer length and ``--tokens-per-s``.
This process (one asyncio loop, one httpx.AsyncClient) opens N streams of
``/api/generate`` at once and measures each stream's delivered rate on its own clock:
(tokens - 1) / (time of last token - time of first token).

A level passes when every stream completes with all its tokens (as the server counts them
too), all N streams were delivering tokens at the same moment (the "peak" column: streams
between their first and last token at once, on the client's clock), and its 5th- and
95th-percentile streams (nearest rank) are within 5% of the profile's rate (a stream can also
run fast: the emulator keeps absolute deadlines, so a late first token is followed by a
catch-up burst); the "all" column says whether every single stream was. The headline is the
largest passing level. Client and server share the machine's cores, so the figure is a lower
bound of what the emulator alone sustains; the CPU used by the server, by the client and by
the whole machine, and the client loop's lag, tell which side ran out.

    .venv/bin/python benchmarks/bench_emulator_streams.py [--tokens-per-s 20] [--tokens 60]
        [--levels 1,8,32,64,128,256,384,512,768,1024] [--stagger] [--keep-going]
        [--json results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from serving import process_cpu, stop

LISTENING = "llmperf emulator listening on "
MODEL = "bench:latest"
TOLERANCE = 0.05
MAX_LEVEL = 4096  # the most streams one level may open
STARTUP_TIMEOUT_S = 30.0
DEFAULT_LEVELS = "1,8,32,64,128,256,384,512,768,1024"


@dataclass
class Stream:
    """What the client saw of one stream."""

    tokens: int = 0
    first: float = math.nan  # arrival of the first token line, client clock
    last: float = math.nan  # arrival of the last token line
    done: bool = False
    error: str = ""
    server_eval_count: int = 0  # from the final line: what the server says it delivered
    server_eval_s: float = 0.0

    @property
    def rate(self) -> float:
        if self.tokens < 2 or not self.last > self.first:
            return math.nan
        return (self.tokens - 1) / (self.last - self.first)


@dataclass(frozen=True)
class Usage:
    """CPU used during a level, in cores (1.0 = one core busy for the whole level)."""

    server: float  # the emulator's process
    client: float  # this process
    machine: float  # every process and the kernel (loopback TCP included)
    client_lag_ms: float  # worst delay of a 5 ms timer in this process's loop


@dataclass
class Level:
    """The summary of one concurrency level; rates are ratios to the profile's rate."""

    streams: int
    completed: int
    errors: int
    median: float
    p5: float
    p95: float
    low: float
    high: float
    server_median: float  # (eval_count - 1) / eval_duration of the final lines
    peak: int  # the most streams between their first and last token at one moment
    aggregate_tokens_per_s: float
    wall_s: float
    usage: Usage
    passed: bool
    all_within: bool
    first_error: str = ""
    rates: list[float] = field(default_factory=list)


def write_profile(directory: Path, tokens_per_s: float, tokens: int, parallel: int) -> Path:
    path = directory / "bench_profiles.toml"
    path.write_text(
        f"""[server]
num_parallel = {parallel}
max_queue = {parallel}
keep_alive = "-1s"

[models."{MODEL}"]
load_s = 0.0
prompt_tokens_per_s = 1000000.0
first_token_s = 0.0
tokens_per_s = {tokens_per_s!r}
jitter = 0.0
response_tokens = [{tokens}, {tokens}]
""",
        encoding="utf-8",
    )
    return path


def start_server(profiles: Path, parallel: int) -> tuple[subprocess.Popen[str], str]:
    """``llmperf serve`` on a free loopback port, in its own process; its base URL."""
    command = [sys.executable, "-m", "pytest_llmperf.cli", "serve", "--host", "127.0.0.1"]
    command += ["--port", "0", "--profiles", str(profiles), "--log-level", "warning"]
    command += ["--num-parallel", str(parallel), "--max-queue", str(parallel)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=STARTUP_TIMEOUT_S)
    line = process.stdout.readline() if ready else ""
    url = line[len(LISTENING) :].strip()
    problem = "" if line.startswith(LISTENING) else f"did not start: {line!r}"
    if not problem and not ipaddress.ip_address(urlsplit(url).hostname or "").is_loopback:
        problem = f"is not on a loopback address: {url}"
    if problem:
        stop_server(process)
        raise SystemExit(f"the emulator {problem}")
    return process, url


stop_server = stop


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine, summed over its cores (Linux /proc)."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0]
    except OSError:
        return math.nan
    values = [int(v) for v in first.split()[1:9]]  # user nice system idle iowait irq soft steal
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


async def one_stream(client: httpx.AsyncClient, delay: float, max_lines: int) -> Stream:
    """Stream one answer; time every token line as it arrives."""
    if delay:
        await asyncio.sleep(delay)
    seen = Stream()
    body = {"model": MODEL, "prompt": "go", "stream": True}
    buffer = b""
    clock = time.perf_counter
    lines = 0
    try:
        async with client.stream("POST", "/api/generate", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                seen.error = f"HTTP {response.status_code}: {response.text[:80]}"
                return seen
            async for data in response.aiter_raw():
                now = clock()
                buffer += data
                *complete, buffer = buffer.split(b"\n")
                for raw in complete:
                    lines += 1
                    if lines > max_lines:
                        seen.error = f"more than {max_lines} lines"
                        return seen
                    line = json.loads(raw)
                    if not line.get("done"):
                        seen.tokens += 1
                        if seen.tokens == 1:
                            seen.first = now
                        seen.last = now
                    else:
                        seen.done = True
                        seen.server_eval_count = line.get("eval_count", 0)
                        seen.server_eval_s = line.get("eval_duration", 0) / 1e9
    except (httpx.HTTPError, ValueError) as exc:
        seen.error = f"{type(exc).__name__}: {exc}"[:120]
    return seen


async def lag_probe(stop: asyncio.Event, samples: list[float]) -> None:
    """How late a 5 ms timer fires in this loop: the client's own saturation."""
    period = 0.005
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(period)
        samples.append(time.perf_counter() - before - period)


async def run_level(
    url: str, streams: int, args: argparse.Namespace, server_pid: int
) -> tuple[list[Stream], float, Usage]:
    """Open ``streams`` streams at once; their results, the wall time and the CPU used."""
    # No idle connections kept: httpcore's pool checks every idle connection against all the
    # others whenever a response closes (O(idle x N)), which stalled this loop just as the
    # synchronised streams were ending and showed up as lower rates. One connection a stream.
    limits = httpx.Limits(max_connections=streams + 8, max_keepalive_connections=0)
    budget = 3 * args.tokens / args.tokens_per_s + 30 + streams * 0.05  # finite, generous
    timeout = httpx.Timeout(budget, connect=20.0)
    max_lines = args.tokens + 2
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        warm = await one_stream(client, 0.0, max_lines)  # load the model once
        if warm.error or not warm.done:
            raise SystemExit(f"the warm-up stream failed: {warm.error or 'no final line'}")
        step = 1 / args.tokens_per_s / streams if args.stagger else 0.0
        stop, lags = asyncio.Event(), [0.0]
        probe = asyncio.create_task(lag_probe(stop, lags))
        cpu = (process_cpu(server_pid), time.process_time(), machine_cpu())
        started = time.perf_counter()
        tasks = [
            asyncio.create_task(one_stream(client, i * step, max_lines)) for i in range(streams)
        ]
        finished, pending = await asyncio.wait(tasks, timeout=budget)
        wall = time.perf_counter() - started
        usage = Usage(
            server=(process_cpu(server_pid) - cpu[0]) / wall,
            client=(time.process_time() - cpu[1]) / wall,
            machine=(machine_cpu() - cpu[2]) / wall,
            client_lag_ms=max(lags) * 1000,
        )
        stop.set()
        for task in pending:
            task.cancel()
        await asyncio.gather(probe, *pending, return_exceptions=True)
    results = [t.result() for t in tasks if t in finished]
    results += [Stream(error=f"not finished within {budget:.0f} s") for _ in pending]
    return results, wall, usage


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def problem(seen: Stream, tokens: int) -> str:
    """Why a stream does not count ("" if it does): errors, no final line, missing tokens."""
    if seen.error or not seen.done:
        return seen.error or "no final line"
    if seen.tokens != tokens or seen.server_eval_count != tokens:
        return f"{seen.tokens} token lines, eval_count {seen.server_eval_count}, not {tokens}"
    return "" if seen.rate > 0 else "no rate"


def peak_overlap(seen: list[Stream]) -> int:
    """The most streams between their first and last token at one moment (ends count first)."""
    edges = sorted([(s.first, 1) for s in seen] + [(s.last, -1) for s in seen])
    active = peak = 0
    for _, step in edges:
        active += step
        peak = max(peak, active)
    return peak


def summarize(
    streams: int, seen: list[Stream], wall: float, args: argparse.Namespace, usage: Usage
) -> Level:
    rate = args.tokens_per_s
    errors = [why for why in (problem(s, args.tokens) for s in seen) if why]
    good = [s for s in seen if not problem(s, args.tokens)]
    ratios = sorted(s.rate / rate for s in good)
    server = [(s.server_eval_count - 1) / s.server_eval_s / rate for s in good if s.server_eval_s]
    nan = math.nan
    p5, p95 = (percentile(ratios, 0.05), percentile(ratios, 0.95)) if ratios else (nan, nan)
    peak = peak_overlap(good)
    complete = not errors and len(good) == streams and peak == streams
    return Level(
        streams=streams,
        completed=len(good),
        errors=len(errors),
        median=statistics.median(ratios) if ratios else nan,
        p5=p5,
        p95=p95,
        low=ratios[0] if ratios else nan,
        high=ratios[-1] if ratios else nan,
        server_median=statistics.median(server) if server else nan,
        peak=peak,
        aggregate_tokens_per_s=sum(s.tokens for s in seen) / wall,
        wall_s=wall,
        usage=usage,
        passed=complete and abs(p5 - 1) <= TOLERANCE and abs(p95 - 1) <= TOLERANCE,
        all_within=complete and all(abs(r - 1) <= TOLERANCE for r in ratios),
        first_error=errors[0] if errors else "",
        rates=[round(r, 4) for r in ratios],
    )


HEADER = (
    f"{'streams':>7} {'peak':>5} {'median':>6} {'p5':>6} {'p95':>6} {'min':>6} {'max':>6} "
    f"{'server':>6} {'tok/s':>6} {'srvCPU':>6} {'cliCPU':>6} {'allCPU':>6} {'lag ms':>6} "
    f"{'pass':>4} {'all':>4}"
)


def row(level: Level) -> str:
    u = level.usage
    text = (
        f"{level.streams:>7} {level.peak:>5} {level.median:>6.3f} {level.p5:>6.3f} "
        f"{level.p95:>6.3f} {level.low:>6.3f} {level.high:>6.3f} {level.server_median:>6.3f} "
        f"{level.aggregate_tokens_per_s:>6.0f} {u.server:>6.2f} {u.client:>6.2f} "
        f"{u.machine:>6.2f} {u.client_lag_ms:>6.0f} "
        f"{'yes' if level.passed else 'NO':>4} {'yes' if level.all_within else 'no':>4}"
    )
    return text + (f"  {level.errors} failed: {level.first_error}" if level.errors else "")


def parse_levels(text: str) -> list[int]:
    levels = sorted({int(n) for n in text.split(",") if n.strip()})
    if not levels or levels[0] < 1 or levels[-1] > MAX_LEVEL:
        raise argparse.ArgumentTypeError(f"levels must be whole numbers in 1..{MAX_LEVEL}")
    return levels


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tokens-per-s", type=float, default=20.0, help="profile rate")
    parser.add_argument("--tokens", type=int, default=60, help="tokens in every answer (>= 2)")
    parser.add_argument(
        "--levels",
        type=parse_levels,
        default=parse_levels(DEFAULT_LEVELS),
        help=f"concurrent streams to try, comma-separated (default {DEFAULT_LEVELS})",
    )
    parser.add_argument(
        "--stagger",
        action="store_true",
        help="spread the starts over one token interval (default: all start together, so "
        "every stream's tokens fall due at the same instants, the worst case)",
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="run every level (default: stop after two failing levels in a row)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    args = parser.parse_args()
    if args.tokens < 2 or not 0 < args.tokens_per_s <= 10_000:
        parser.error("--tokens must be >= 2 and --tokens-per-s in (0, 10000]")
    return args


def main() -> int:
    args = parse_args()
    rate, parallel = args.tokens_per_s, max(args.levels)
    levels: list[Level] = []
    with tempfile.TemporaryDirectory(prefix="llmperf-bench-") as tmp:
        process, url = start_server(write_profile(Path(tmp), rate, args.tokens, parallel), parallel)
        try:
            starts = "staggered" if args.stagger else "simultaneous"
            print(f"profile: {rate:g} tokens/s, {args.tokens} tokens a stream, {starts} starts")
            print(f"server: {url}, own process (pid {process.pid}), num_parallel {parallel}")
            print(
                f"client: one asyncio process (pid {os.getpid()}); client and server share "
                f"{os.cpu_count()} cores, so the figures are lower bounds"
            )
            print("rates: delivered tokens/s on the client's clock / the profile's; server:")
            print("median (eval_count - 1) / eval_duration reported by the server; CPU in cores;")
            print("peak: streams delivering at one moment; pass: every stream complete, peak =")
            print("streams, p5 and p95 within 5%; all: every stream within 5%")
            print(HEADER)
            failures = 0
            for streams in args.levels:
                seen, wall, usage = asyncio.run(run_level(url, streams, args, process.pid))
                level = summarize(streams, seen, wall, args, usage)
                levels.append(level)
                print(row(level), flush=True)
                failures = 0 if level.passed else failures + 1
                if failures >= 2 and not args.keep_going:
                    print("(stopped after two failing levels in a row)")
                    break
        finally:
            stop_server(process)
    best = max((lv.streams for lv in levels if lv.passed), default=0)
    every = max((lv.streams for lv in levels if lv.all_within), default=0)
    print(
        f"headline: {best} concurrent streams held {rate:g} tokens/s within 5% "
        f"(p5 and p95 streams; every single stream within 5% up to {every})"
    )
    if args.json:
        results = {
            "tokens_per_s": rate,
            "tokens": args.tokens,
            "stagger": args.stagger,
            "cpu_count": os.cpu_count(),
            "headline_streams": best,
            "levels": [asdict(lv) for lv in levels],
        }
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
