"""How many concurrent streams the emulator on a loopback port sustains at a profile's rate.

The emulator runs in its own process (``llmperf serve`` on 127.0.0.1, port 0) with a
synthetic profile: no load time, no jitter, a fixed answer length and ``--tokens-per-s``.
``--clients`` load-generator processes (each one asyncio loop, one httpx.AsyncClient) open N
streams of ``/api/generate`` between them, all starting at one moment, and measure each
stream's delivered rate on the machine's monotonic clock (shared by the processes):
(tokens - 1) / (time of last token - time of first token), and every gap between two tokens.

A level passes when every stream completes with all its tokens (as the server counts them
too), all N streams were delivering tokens at the same moment (the "peak" column: streams
between their first and last token at once, on the client's clock), and its 5th- and
95th-percentile streams (nearest rank) are within 5% of the profile's rate (a stream can also
run fast: the emulator keeps absolute deadlines, so a late first token is followed by a
catch-up burst); the "all" column says whether every single stream was. The headline is the
largest passing level. Client and server share the machine's cores, so the figure is a lower
bound of what the emulator alone sustains; the CPU used by the server, by the clients and by
the whole machine, the clients' worst loop lag and the load average tell which side ran out.

    .venv/bin/python benchmarks/bench_emulator_streams.py [--tokens-per-s 20] [--tokens 60]
        [--levels 1,8,32,64,128,256,384,512,768,1024] [--clients 4] [--stagger]
        [--keep-going] [--json results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import multiprocessing
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
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
START_AHEAD_S = 0.5  # the clients get a level's start moment this long before it


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
    gaps: list[float] = field(default_factory=list)  # seconds between two token lines

    @property
    def rate(self) -> float:
        if self.tokens < 2 or not self.last > self.first:
            return math.nan
        return (self.tokens - 1) / (self.last - self.first)


@dataclass(frozen=True)
class Usage:
    """CPU used during a level, in cores (1.0 = one core busy for the whole level)."""

    server: float  # the emulator's process
    client: float  # the load-generator processes together
    machine: float  # every process and the kernel (loopback TCP included)
    client_lag_ms: float  # worst delay of a 5 ms timer in a load generator's loop
    busiest_client: float = math.nan  # the busiest load-generator process


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
    gap_p50_ms: float  # the gaps between two tokens of a stream, over every stream
    gap_p99_ms: float
    aggregate_tokens_per_s: float
    server_us_per_token: float  # the server's CPU time per token delivered (any load)
    wall_s: float
    usage: Usage
    passed: bool
    all_within: bool
    first_error: str = ""
    load_average: float = math.nan  # the machine's 1-minute load average after the level
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


def load_average() -> str:
    """The machine's load averages over 1, 5 and 15 minutes (Linux /proc)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "nan nan nan"


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
                        else:
                            seen.gaps.append(now - seen.last)
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


async def run_share(
    url: str, streams: int, start_at: float, args: argparse.Namespace
) -> tuple[list[Stream], float, float]:
    """This process's share of a level: ``streams`` streams from ``start_at`` (monotonic).

    Its results, the CPU seconds it used and its loop's worst lag (seconds).
    """
    # No idle connections kept: httpcore's pool checks every idle connection against all the
    # others whenever a response closes (O(idle x N)), which stalled this loop just as the
    # synchronised streams were ending and showed up as lower rates. One connection a stream.
    limits = httpx.Limits(max_connections=streams + 8, max_keepalive_connections=0)
    timeout = httpx.Timeout(budget_s(args, streams), connect=20.0)
    max_lines = args.tokens + 2
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        step = 1 / args.tokens_per_s / streams if args.stagger else 0.0
        await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
        stop, lags = asyncio.Event(), [0.0]
        probe = asyncio.create_task(lag_probe(stop, lags))
        cpu = time.process_time()
        tasks = [
            asyncio.create_task(one_stream(client, i * step, max_lines)) for i in range(streams)
        ]
        finished, pending = await asyncio.wait(tasks, timeout=budget_s(args, streams))
        used = time.process_time() - cpu
        stop.set()
        for task in pending:
            task.cancel()
        await asyncio.gather(probe, *pending, return_exceptions=True)
    results = [t.result() for t in tasks if t in finished]
    results += [
        Stream(error=f"not finished within {budget_s(args, streams):.0f} s") for _ in pending
    ]
    return results, used, max(lags)


def budget_s(args: argparse.Namespace, streams: int) -> float:
    """How long a level may take: finite, and generous."""
    return 3 * args.tokens / args.tokens_per_s + 30 + streams * 0.05


def client_process(url: str, args: argparse.Namespace, pipe: Connection) -> None:
    """A load generator: warm up, then run each share main sends until it sends None."""
    warm = asyncio.run(run_share(url, 1, 0.0, args))[0][0]
    pipe.send(warm.error if warm.error or not warm.done else "")
    while (order := pipe.recv()) is not None:
        streams, start_at = order
        seen, used, lag = (
            asyncio.run(run_share(url, streams, start_at, args)) if streams else ([], 0.0, 0.0)
        )
        pipe.send(([asdict(one) for one in seen], used, lag))
    pipe.close()


class Clients:
    """``count`` load-generator processes; a level's streams are spread evenly over them."""

    def __init__(self, url: str, args: argparse.Namespace, count: int) -> None:
        spawn = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes = []
        for _ in range(count):
            mine, theirs = spawn.Pipe()
            process = spawn.Process(target=client_process, args=(url, args, theirs), daemon=True)
            process.start()
            theirs.close()
            self.pipes.append(mine)
            self.processes.append(process)
        for pipe in self.pipes:
            if not pipe.poll(STARTUP_TIMEOUT_S * 2):
                raise SystemExit("a load-generator process did not start")
            if problem := pipe.recv():
                raise SystemExit(f"the warm-up stream failed: {problem}")

    def run_level(
        self, streams: int, args: argparse.Namespace, server_pid: int
    ) -> tuple[list[Stream], float, Usage]:
        """Open ``streams`` streams at once; their results, the wall time and the CPU used."""
        count = len(self.pipes)
        shares = [streams // count + (1 if i < streams % count else 0) for i in range(count)]
        start_at = time.perf_counter() + START_AHEAD_S  # (CLOCK_MONOTONIC: one for all)
        for pipe, share in zip(self.pipes, shares, strict=True):
            pipe.send((share, start_at))
        cpu = (process_cpu(server_pid), machine_cpu())
        answers = [pipe.recv() for pipe in self.pipes]
        wall = time.perf_counter() - start_at
        served = process_cpu(server_pid) - cpu[0]
        # (the warm-up wait before start_at is idle for the server and the clients alike)
        usage = Usage(
            server=served / wall,
            client=sum(a[1] for a in answers) / wall,
            machine=(machine_cpu() - cpu[1]) / (wall + START_AHEAD_S),
            client_lag_ms=max(a[2] for a in answers) * 1000,
            busiest_client=max(a[1] for a in answers) / wall,
        )
        return [Stream(**seen) for a in answers for seen in a[0]], wall, usage

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(None)
        for process in self.processes:
            process.join(timeout=10)


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
    gaps = sorted(gap for s in good for gap in s.gaps)
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
        gap_p50_ms=percentile(gaps, 0.50) * 1000 if gaps else nan,
        gap_p99_ms=percentile(gaps, 0.99) * 1000 if gaps else nan,
        aggregate_tokens_per_s=sum(s.tokens for s in seen) / wall,
        server_us_per_token=usage.server * wall / max(1, sum(s.tokens for s in seen)) * 1e6,
        wall_s=wall,
        usage=usage,
        passed=complete and abs(p5 - 1) <= TOLERANCE and abs(p95 - 1) <= TOLERANCE,
        all_within=complete and all(abs(r - 1) <= TOLERANCE for r in ratios),
        first_error=errors[0] if errors else "",
        rates=[round(r, 4) for r in ratios],
    )


HEADER = (
    f"{'streams':>7} {'peak':>5} {'median':>6} {'p5':>6} {'p95':>6} {'min':>6} {'max':>6} "
    f"{'server':>6} {'gap50':>5} {'gap99':>5} {'tok/s':>6} {'srvCPU':>6} {'us/tok':>6} "
    f"{'cliCPU':>6} "
    f"{'1cli':>5} {'allCPU':>6} {'lag ms':>6} {'pass':>4} {'all':>4} {'load':>5}"
)


def row(level: Level) -> str:
    u = level.usage
    text = (
        f"{level.streams:>7} {level.peak:>5} {level.median:>6.3f} {level.p5:>6.3f} "
        f"{level.p95:>6.3f} {level.low:>6.3f} {level.high:>6.3f} {level.server_median:>6.3f} "
        f"{level.gap_p50_ms:>5.0f} {level.gap_p99_ms:>5.0f} "
        f"{level.aggregate_tokens_per_s:>6.0f} {u.server:>6.2f} "
        f"{level.server_us_per_token:>6.1f} {u.client:>6.2f} "
        f"{u.busiest_client:>5.2f} {u.machine:>6.2f} {u.client_lag_ms:>6.0f} "
        f"{'yes' if level.passed else 'NO':>4} {'yes' if level.all_within else 'no':>4} "
        f"{level.load_average:>5.2f}"
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
    parser.add_argument(
        "--clients", type=int, default=4, help="load-generator processes (default 4)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    args = parser.parse_args()
    if args.clients < 1 or args.clients > 64:
        parser.error("--clients must be in 1..64")
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
                f"clients: {args.clients} asyncio processes, the streams spread evenly; clients "
                f"and server share {os.cpu_count()} cores, so the figures are lower bounds"
            )
            print(f"load average before: {load_average()} (1, 5, 15 minutes)")
            print("rates: delivered tokens/s on the client's clock / the profile's; server:")
            print("median (eval_count - 1) / eval_duration reported by the server; gap50/gap99:")
            print("ms between two tokens of a stream; CPU in cores (1cli: the busiest client);")
            print("us/tok: the server's CPU time a token delivered (its cost, whatever the load);")
            print("peak: streams delivering at one moment; pass: every stream complete, peak =")
            print("streams, p5 and p95 within 5%; all: every stream within 5%; load: 1-min average")
            clients = Clients(url, args, args.clients)
            try:
                print(HEADER)
                failures = 0
                for streams in args.levels:
                    seen, wall, usage = clients.run_level(streams, args, process.pid)
                    level = summarize(streams, seen, wall, args, usage)
                    level.load_average = float(load_average().split()[0])
                    levels.append(level)
                    print(row(level), flush=True)
                    failures = 0 if level.passed else failures + 1
                    if failures >= 2 and not args.keep_going:
                        print("(stopped after two failing levels in a row)")
                        break
            finally:
                clients.close()
        finally:
            stop_server(process)
    best = max((lv.streams for lv in levels if lv.passed), default=0)
    every = max((lv.streams for lv in levels if lv.all_within), default=0)
    print(
        f"headline: {best} concurrent streams held {rate:g} tokens/s within 5% "
        f"(p5 and p95 streams; every single stream within 5% up to {every})"
    )
    costs = [lv.server_us_per_token for lv in levels if lv.streams >= 32]
    if costs:
        cost = statistics.median(costs)
        print(
            f"server cost: {cost:.1f} us of CPU a token (median over the levels of 32 streams "
            f"or more): one free core would serve {1e6 / cost / rate:.0f} streams at {rate:g} "
            "tokens/s (a projection, not a measurement)"
        )
    if args.json:
        results = {
            "tokens_per_s": rate,
            "tokens": args.tokens,
            "stagger": args.stagger,
            "cpu_count": os.cpu_count(),
            "clients": args.clients,
            "headline_streams": best,
            "levels": [asdict(lv) for lv in levels],
        }
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
