"""A soak: hundreds of concurrent streams against the emulator on a port for a bounded time.

The emulator runs in its own process (``llmperf serve`` on 127.0.0.1, port 0) with a
synthetic profile (a fixed answer length at a fixed rate). Client processes drive it for
``--seconds``: half of them through our ``AsyncOllamaClient``, half through the official
``ollama.AsyncClient``, each process keeping ``--streams`` calls in flight (most streamed,
every ``--whole-every``-th whole). A few calls ask for a fault (``X-Llmperf-Fault``: a 503, an
error line mid-stream, a connection cut mid-stream), chosen by the call's id.

Every call carries a unique id in its prompt, one token per digit; the emulator's answer
returns the prompt's token ids in ``context``, so the id that came back is read from the
answer itself. The run fails (exit status 1) when:

- a call was lost (sent, never answered nor failed) or duplicated (an id came back twice),
  or an answer carried another call's id or the wrong number of tokens;
- an error was not the one its fault asked for, or a call without a fault failed (every
  error is classified and counted in the summary either way);
- the emulator's own request counter (``GET /llmperf/stats``) did not grow by exactly the
  number of calls sent, or it still had requests in flight once every client had finished;
- the open file descriptors or the resident memory of any process (the server, each client)
  grew from the first third of the steady period to the last third (medians compared).

    .venv/bin/python benchmarks/bench_soak.py [--seconds 60] [--streams 150] [--processes 1]
        [--tokens 10] [--tokens-per-s 10] [--fault-every 50] [--whole-every 8] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

# (the stream benchmark beside this file: the same emulator process and synthetic profile)
from bench_emulator_streams import (
    MODEL,
    STARTUP_TIMEOUT_S,
    load_average,
    start_server,
    stop_server,
    write_profile,
)

SAMPLE_EVERY_S = 0.25
ID_DIGITS = 8
PROMPT_WORD = "soak"
FAULT_HEADER = "X-Llmperf-Fault"
# What a call asks for, chosen by its id; the error each client is expected to raise for it.
FAULTS = {
    "status-503": "status=503",
    "error-line": "error-line; after=3",
    "cut": "drop; after=3",
}
# (a whole answer's error line is a 500 with the error in the body, as Ollama's is)
EXPECTED = {"status-503": "http-503", "error-line": "error-line", "cut": "cut-stream"}
EXPECTED_WHOLE = {**EXPECTED, "error-line": "http-500"}


def expected_error(call_id: int, fault_every: int, whole_every: int) -> str:
    """The error class call ``call_id`` must end with ("" for none)."""
    fault = fault_of(call_id, fault_every)
    if not fault:
        return ""
    return (EXPECTED_WHOLE if is_whole(call_id, whole_every) else EXPECTED)[fault]


FD_SLACK = 8  # descriptors a process may gain between the thirds before it counts as growth
FD_SLACK_FRACTION = 0.05
RSS_SLACK_BYTES = 8 << 20
RSS_SLACK_FRACTION = 0.05
OFFICIAL_LANE = 16  # streams per official client


# --- ids in the prompt, read back from the answer ------------------------------------------


def token_ids(text: str) -> list[int]:
    """The emulator's token ids (``context``) for ``text``: its own function, so they agree."""
    from pytest_llmperf.emulator import text as emulator_text

    return emulator_text.token_ids(text)


def prompt_for(call_id: int) -> str:
    """``soak 0 0 0 1 2 3 4 5``: one token per digit, so the id can be read back from ids."""
    return PROMPT_WORD + " " + " ".join(f"{call_id:0{ID_DIGITS}d}")


class IdReader:
    """Reads the call id back from an answer's ``context`` (the prompt's tokens come first)."""

    def __init__(self) -> None:
        self.word = token_ids(PROMPT_WORD)
        self.digits = {token_ids(str(d))[0]: str(d) for d in range(10)}
        if len(self.digits) != 10:  # pragma: no cover - a property of the hash, checked once
            raise SystemExit("the emulator's token ids of the ten digits are not distinct")

    def __call__(self, context: Sequence[int] | None) -> int | None:
        if not context or list(context[: len(self.word)]) != self.word:
            return None
        digits = context[len(self.word) : len(self.word) + ID_DIGITS]
        if len(digits) != ID_DIGITS or any(d not in self.digits for d in digits):
            return None
        return int("".join(self.digits[d] for d in digits))


def fault_of(call_id: int, every: int) -> str:
    """The fault call ``call_id`` asks for ("" for none): every ``every``-th id, in turn."""
    if every <= 0 or call_id % every != every - 1:
        return ""
    kinds = list(FAULTS)
    return kinds[(call_id // every) % len(kinds)]


def is_whole(call_id: int, every: int) -> bool:
    return every > 0 and call_id % every == 0


# --- a client process ------------------------------------------------------------------------


@dataclass
class WorkerResult:
    """What one client process saw: per call id, what came back."""

    kind: str
    pid: int
    sent: list[int] = field(default_factory=list)
    returned: dict[int, list[int]] = field(default_factory=dict)  # sent id -> ids that came back
    errors: dict[int, str] = field(default_factory=dict)  # sent id -> error class
    bad_answers: dict[int, str] = field(default_factory=dict)  # sent id -> what was wrong
    first_messages: dict[str, str] = field(default_factory=dict)  # error class -> one message
    crash: str = ""


def classify(kind: str, exc: BaseException) -> str:
    """A short class for an error, the same for both clients when it is the same failure."""
    name = type(exc).__name__
    if kind == "ours":
        from pytest_llmperf.errors import (
            LLMConnectError,
            LLMServerError,
            LLMStreamError,
            LLMTimeoutError,
        )

        broke = "the connection broke" in str(exc)  # (after connecting: not a refusal)
        if isinstance(exc, LLMServerError):
            return f"http-{exc.status_code}"
        if isinstance(exc, (LLMStreamError, LLMConnectError)) and broke:
            return "cut-stream"
        if isinstance(exc, LLMStreamError):
            return "error-line"
        if isinstance(exc, LLMTimeoutError):
            return f"timeout-{exc.phase}"
        if isinstance(exc, LLMConnectError):
            return "connect"
        return f"other:{name}"
    import ollama

    if isinstance(exc, ollama.ResponseError):
        return f"http-{exc.status_code}" if exc.status_code > 0 else "error-line"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return "cut-stream"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    return f"other:{name}"


class Caller:
    """Makes one call with either client and returns (returned id, tokens, eval_count)."""

    def __init__(self, kind: str, url: str, streams: int, timeout_s: float) -> None:
        self.kind = kind
        self.clients: dict[str, Any] = {}
        if kind == "ours":
            from pytest_llmperf import AsyncOllamaClient, Limits

            self.limits = Limits(
                total=timeout_s, first_token=timeout_s, stall=timeout_s, connect=20
            )
            for fault, spec in {"": "", **FAULTS}.items():
                headers = {FAULT_HEADER: spec} if spec else None
                self.clients[fault] = AsyncOllamaClient(url, retries=0, headers=headers)
        else:
            import ollama

            # One client per OFFICIAL_LANE streams: httpcore's pool looks at every connection
            # it holds for each request, so one pool of hundreds costs the square (our client
            # spreads its calls over lanes the same way, see pytest_llmperf/client/lanes.py).
            # The clients that ask for faults, seldom used, keep no idle connection: their
            # pools would otherwise fill up slowly over the run, which reads as fd growth.
            size = min(streams, OFFICIAL_LANE)
            for lane in range(math.ceil(streams / OFFICIAL_LANE)):
                for fault, spec in {"": "", **FAULTS}.items():
                    headers = {FAULT_HEADER: spec} if spec else None
                    limits = httpx.Limits(
                        max_connections=size + 4, max_keepalive_connections=0 if spec else size
                    )
                    self.clients[f"{fault}/{lane}"] = ollama.AsyncClient(
                        url, headers=headers, timeout=timeout_s, limits=limits
                    )

    async def call(self, call_id: int, fault: str, whole: bool, lane: int) -> tuple[Any, int, int]:
        if self.kind == "official":
            return await self.official(call_id, fault, whole, lane)
        client = self.clients[fault]
        prompt = prompt_for(call_id)
        if whole:
            answer = await client.generate(MODEL, prompt, timeout=self.limits)
            return answer.get("context"), answer["eval_count"], answer["eval_count"]
        tokens, final = 0, None
        async for chunk in await client.generate(MODEL, prompt, stream=True, timeout=self.limits):
            if chunk.get("done"):
                final = chunk
            else:
                tokens += 1
        if final is None:
            return None, tokens, -1
        return final.get("context"), tokens, final.get("eval_count", -1)

    async def official(
        self, call_id: int, fault: str, whole: bool, lane: int
    ) -> tuple[Any, int, int]:
        client = self.clients[f"{fault}/{lane // OFFICIAL_LANE}"]
        prompt = prompt_for(call_id)
        if whole:
            answer = await client.generate(model=MODEL, prompt=prompt)
            return answer.context, answer.eval_count, answer.eval_count
        tokens, final = 0, None
        async for part in await client.generate(model=MODEL, prompt=prompt, stream=True):
            if part.done:
                final = part
            else:
                tokens += 1
        if final is None:
            return None, tokens, -1
        return final.context, tokens, final.eval_count or -1

    async def close(self) -> None:
        for client in self.clients.values():
            if self.kind == "ours":
                await client.aclose()
            else:
                await client.close()


async def drive(
    kind: str, url: str, args: dict[str, Any], first_id: int, pipe: Connection
) -> WorkerResult:
    result = WorkerResult(kind=kind, pid=os.getpid())
    read_id = IdReader()
    caller = Caller(kind, url, args["streams"], args["timeout_s"])
    loop = asyncio.get_running_loop()
    pipe.send(("ready", os.getpid()))
    deadline: float = await loop.run_in_executor(None, pipe.recv)
    next_id = first_id
    warm_left = args["streams"]
    warm = asyncio.Event()

    async def one_lane(lane: int) -> None:
        nonlocal next_id, warm_left
        first = True
        while time.monotonic() < deadline:
            call_id, next_id = next_id, next_id + 1
            fault = fault_of(call_id, args["fault_every"])
            result.sent.append(call_id)
            try:
                context, tokens, evals = await caller.call(
                    call_id, fault, is_whole(call_id, args["whole_every"]), lane
                )
            except Exception as exc:
                why = classify(kind, exc)
                result.errors[call_id] = why
                wanted = expected_error(call_id, args["fault_every"], args["whole_every"])
                key = why if why == wanted else f"{why} (expected {wanted or 'no error'})"
                result.first_messages.setdefault(key, f"{type(exc).__name__}: {exc}"[:240])
            else:
                came_back = read_id(context)
                result.returned.setdefault(call_id, []).append(
                    -1 if came_back is None else came_back
                )
                if tokens != args["tokens"] or evals != args["tokens"]:
                    result.bad_answers[call_id] = f"{tokens} tokens, eval_count {evals}"
            if first:
                first = False
                warm_left -= 1
                if warm_left == 0:
                    warm.set()

    async def say_warm() -> None:
        await warm.wait()
        pipe.send(("warm", time.monotonic()))

    herald = asyncio.create_task(say_warm())
    await asyncio.gather(*(one_lane(lane) for lane in range(args["streams"])))
    if not warm.is_set():  # (a run too short for every lane to finish a call)
        warm.set()
    await herald
    await caller.close()
    return result


def worker(kind: str, url: str, args: dict[str, Any], first_id: int, pipe: Connection) -> None:
    """A client process: drive the emulator until the deadline main sends, then report."""
    try:
        result = asyncio.run(drive(kind, url, args, first_id, pipe))
    except BaseException:
        result = WorkerResult(kind=kind, pid=os.getpid(), crash=traceback.format_exc())
    pipe.send(("done", asdict(result)))
    pipe.close()


# --- the server and the samples ---------------------------------------------------------------


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Sample:
    at: float  # time.monotonic()
    fds: dict[str, int]
    rss: dict[str, int]
    in_flight: int  # the emulator's requests in flight (from /llmperf/stats)


class Sampler(threading.Thread):
    """Samples every process's descriptors and memory, and the server's in-flight count."""

    def __init__(self, pids: dict[str, int], url: str) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.pids = pids
        self.url = url
        self.samples: list[Sample] = []
        self.stop = threading.Event()
        self.problems: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.wait(SAMPLE_EVERY_S):
                try:
                    fds = {name: open_fds(pid) for name, pid in self.pids.items()}
                    rss = {name: rss_bytes(pid) for name, pid in self.pids.items()}
                    in_flight = client.get("/llmperf/stats").json()["in_flight"]
                except (OSError, httpx.HTTPError) as exc:
                    self.problems.append(f"sampling failed: {type(exc).__name__}: {exc}")
                    continue
                self.samples.append(Sample(time.monotonic(), fds, rss, in_flight))


def stats(url: str) -> dict[str, Any]:
    response = httpx.get(url + "/llmperf/stats", timeout=30)
    response.raise_for_status()
    return dict(response.json())


# --- the verdict ---------------------------------------------------------------------------------


@dataclass
class Growth:
    process: str
    metric: str  # "fds" or "rss"
    first: float  # median over the first third
    last: float  # median over the last third
    allowed: float

    @property
    def grew(self) -> bool:
        return self.last - self.first > self.allowed


def growth(samples: Sequence[Sample], start: float, end: float) -> list[Growth]:
    """Per process and metric: the first third's median against the last third's."""
    third = (end - start) / 3
    first = [s for s in samples if start <= s.at < start + third]
    last = [s for s in samples if end - third <= s.at <= end]
    if not first or not last:
        return []
    found = []
    for name in first[0].fds:
        for metric, slack, fraction in (
            ("fds", FD_SLACK, FD_SLACK_FRACTION),
            ("rss", RSS_SLACK_BYTES, RSS_SLACK_FRACTION),
        ):
            before = statistics.median(getattr(s, metric)[name] for s in first)
            after = statistics.median(getattr(s, metric)[name] for s in last)
            found.append(Growth(name, metric, before, after, max(slack, fraction * before)))
    return found


def result_problems(
    result: WorkerResult, fault_every: int, whole_every: int, unexpected: Counter[str]
) -> list[str]:
    """What went wrong with one client's calls; its errors nobody asked for go to ``unexpected``."""
    kind = result.kind
    problems = []
    lost = [i for i in result.sent if i not in result.returned and i not in result.errors]
    if lost:
        problems.append(f"{kind}: {len(lost)} calls lost (neither answered nor failed), {lost[:5]}")
    both = [i for i in result.errors if i in result.returned]
    if both:
        problems.append(f"{kind}: {len(both)} calls both answered and failed: {both[:5]}")
    for call_id, came_back in result.returned.items():
        if len(came_back) != 1:
            problems.append(f"{kind}: call {call_id} answered {len(came_back)} times")
        elif came_back[0] != call_id:
            other = "no readable id" if came_back[0] < 0 else came_back[0]
            problems.append(f"{kind}: call {call_id} got the answer of {other}")
        if wanted := fault_of(call_id, fault_every):
            problems.append(f"{kind}: call {call_id} asked for {wanted} but was answered")
    problems += [f"{kind}: call {i}'s answer had {why}" for i, why in result.bad_answers.items()]
    for call_id, why in result.errors.items():
        wanted = expected_error(call_id, fault_every, whole_every)
        if wanted != why:
            unexpected[f"{kind} {why} (expected {wanted or 'no error'})"] += 1
    return problems


def call_violations(
    results: Sequence[WorkerResult], fault_every: int, whole_every: int, server_requests: int
) -> tuple[list[str], Counter[str], Counter[str]]:
    """What went wrong with the calls; the errors by class, and the errors nobody asked for."""
    problems: list[str] = []
    errors: Counter[str] = Counter()
    unexpected: Counter[str] = Counter()
    seen_ids: Counter[int] = Counter()
    for result in results:
        if result.crash:
            problems.append(f"the {result.kind} client {result.pid} crashed:\n{result.crash}")
            continue
        seen_ids.update(result.sent)
        problems += result_problems(result, fault_every, whole_every, unexpected)
        errors.update(f"{result.kind} {why}" for why in result.errors.values())
    duplicated = [i for i, n in seen_ids.items() if n > 1]
    if duplicated:
        problems.append(
            f"{len(duplicated)} ids sent twice (a bug of this script): {duplicated[:5]}"
        )
    messages = {f"{r.kind} {k}": m for r in results for k, m in r.first_messages.items()}
    for what, count in sorted(unexpected.items()):
        problems.append(f"{count} unexpected errors: {what}, e.g. {messages.get(what, '?')}")
    sent_total = sum(seen_ids.values())
    if server_requests != sent_total:
        problems.append(
            f"the emulator counted {server_requests} requests, the clients sent {sent_total}"
        )
    return problems, errors, unexpected


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to drive (60)")
    parser.add_argument(
        "--streams", type=int, default=150, help="calls each client process keeps in flight (150)"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="client processes per client kind (1)"
    )
    parser.add_argument("--tokens", type=int, default=10, help="tokens in every answer (10)")
    parser.add_argument("--tokens-per-s", type=float, default=10.0, help="profile rate (10)")
    parser.add_argument(
        "--fault-every", type=int, default=50, help="every N-th call asks for a fault (50; 0: none)"
    )
    parser.add_argument(
        "--whole-every", type=int, default=8, help="every N-th call is not streamed (8; 0: none)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="each call's limit (60 s)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.streams < 1 or args.processes < 1 or args.tokens < 4:
        parser.error("--seconds must be > 0, --streams and --processes >= 1, --tokens >= 4")
    return args


@dataclass
class Run:
    """What one soak gathered: the clients' results, the samples and the server's counts."""

    url: str
    server_pid: int
    results: list[WorkerResult]
    samples: list[Sample]
    sampling_problems: list[str]
    started: float  # time.monotonic()
    warm_at: float  # every lane had finished its first call
    deadline: float
    finished: float
    served: int  # the growth of the emulator's request counter
    left_in_flight: int
    load_average: tuple[str, str]  # before and after


def start_clients(
    kinds: list[str], url: str, settings: dict[str, Any]
) -> tuple[list[Connection], list[Any]]:
    spawn = multiprocessing.get_context("spawn")
    pipes: list[Connection] = []
    processes = []
    for index, kind in enumerate(kinds):
        mine, theirs = spawn.Pipe()
        first_id = (index + 1) * 10 ** (ID_DIGITS - 2)
        process = spawn.Process(
            target=worker, args=(kind, url, settings, first_id, theirs), daemon=True
        )
        process.start()
        theirs.close()
        pipes.append(mine)
        processes.append(process)
    return pipes, processes


def soak(args: argparse.Namespace, url: str, server_pid: int) -> Run:
    """Drive the emulator at ``url`` with every client process until the deadline."""
    kinds = [k for k in ("ours", "official") for _ in range(args.processes)]
    settings = {
        "streams": args.streams,
        "tokens": args.tokens,
        "fault_every": args.fault_every,
        "whole_every": args.whole_every,
        "timeout_s": args.timeout,
    }
    httpx.post(
        url + "/api/generate", json={"model": MODEL, "prompt": "go"}, timeout=60
    ).raise_for_status()
    before = stats(url)
    pipes, processes = start_clients(kinds, url, settings)
    pids = {"server": server_pid}
    for index, (kind, pipe) in enumerate(zip(kinds, pipes, strict=True)):
        if not pipe.poll(STARTUP_TIMEOUT_S * 2):
            raise SystemExit(f"the {kind} client process did not start")
        pids[kind + (str(index % args.processes) if args.processes > 1 else "")] = pipe.recv()[1]
    load_before = load_average()
    started = time.monotonic()
    deadline = started + args.seconds
    for pipe in pipes:
        pipe.send(deadline)
    sampler = Sampler(pids, url)
    sampler.start()
    warm_at = started
    results: list[WorkerResult] = []
    for pipe in pipes:
        while (message := pipe.recv())[0] == "warm":  # every client says "warm", then "done"
            warm_at = max(warm_at, message[1])
        results.append(WorkerResult(**message[1]))
    finished = time.monotonic()
    load_after = load_average()
    sampler.stop.set()
    sampler.join()
    for process in processes:
        process.join(timeout=30)
    settle = time.monotonic() + 30
    while (after := stats(url))["in_flight"] and time.monotonic() < settle:
        time.sleep(0.05)
    return Run(
        url=url,
        server_pid=server_pid,
        results=results,
        samples=sampler.samples,
        sampling_problems=sampler.problems,
        started=started,
        warm_at=warm_at,
        deadline=deadline,
        finished=finished,
        served=after["requests"] - before["requests"],
        left_in_flight=after["in_flight"],
        load_average=(load_before, load_after),
    )


def judge(run: Run, args: argparse.Namespace) -> tuple[list[str], Counter[str], list[Growth]]:
    """Every violation; the errors by class; the growth of each process's descriptors and memory."""
    problems, errors, _unexpected = call_violations(
        run.results, args.fault_every, args.whole_every, run.served
    )
    if run.left_in_flight:
        problems.append(f"the emulator still had {run.left_in_flight} requests in flight")
    problems += run.sampling_problems
    steady_end = min(run.deadline, run.finished)
    grown = growth(run.samples, run.warm_at, steady_end)
    if steady_end - run.warm_at < 3 * SAMPLE_EVERY_S * 2 or not grown:
        problems.append(
            f"too short a steady period to compare thirds ({steady_end - run.warm_at:.1f} s "
            "after every lane's first call): raise --seconds"
        )
    problems += [
        f"{g.process} {g.metric} grew from {g.first:.0f} to {g.last:.0f} (allowed +{g.allowed:.0f})"
        for g in grown
        if g.grew
    ]
    return problems, errors, grown


def summary(run: Run, args: argparse.Namespace, errors: Counter[str], grown: list[Growth]) -> None:
    results = run.results
    per_kind = {"ours": "pytest_llmperf.AsyncOllamaClient", "official": "ollama.AsyncClient"}
    print(
        f"server: {run.url}, own process (pid {run.server_pid}); {MODEL}: {args.tokens} tokens "
        f"at {args.tokens_per_s:g} tokens/s"
    )
    for kind in ("ours", "official"):
        calls = sum(len(r.sent) for r in results if r.kind == kind)
        print(
            f"{kind}: {args.processes} process(es) x {args.streams} calls in flight through "
            f"{per_kind[kind]}: {calls} calls"
        )
    print(
        f"ran {run.finished - run.started:.1f} s (asked {args.seconds:g} s); steady from "
        f"{run.warm_at - run.started:.1f} s; load average {run.load_average[0]} before, "
        f"{run.load_average[1]} after, {os.cpu_count()} cores"
    )
    if steady := steady_in_flight(run):
        print(
            f"server in flight over the steady period: median {statistics.median(steady):.0f}, "
            f"min {min(steady)}, max {max(steady)} ({len(steady)} samples)"
        )
    print(
        f"calls: {sum(len(r.sent) for r in results)} sent, "
        f"{sum(len(r.returned) for r in results)} answered, {sum(errors.values())} failed; "
        f"the emulator counted {run.served}"
    )
    messages = {f"{r.kind} {k}": m for r in results for k, m in r.first_messages.items()}
    for what, count in sorted(errors.items()):
        print(f"  error {what}: {count}  (e.g. {messages.get(what, '?')})")
    for g in grown:
        unit, label = (1, "open fds") if g.metric == "fds" else (1 << 20, "RSS MiB")
        print(
            f"  {g.process:>9} {label}: first third {g.first / unit:.1f}, last third "
            f"{g.last / unit:.1f} (allowed +{g.allowed / unit:.1f})"
        )


def steady_in_flight(run: Run) -> list[int]:
    end = min(run.deadline, run.finished)
    return [s.in_flight for s in run.samples if run.warm_at <= s.at <= end]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    parallel = args.streams * 2 * args.processes + 16
    with tempfile.TemporaryDirectory(prefix="llmperf-soak-") as tmp:
        profile = write_profile(Path(tmp), args.tokens_per_s, args.tokens, parallel)
        server, url = start_server(profile, parallel)
        try:
            run = soak(args, url, server.pid)
        finally:
            stop_server(server)
    problems, errors, grown = judge(run, args)
    summary(run, args, errors, grown)
    if args.json:
        results = {
            "seconds": run.finished - run.started,
            "steady_from_s": run.warm_at - run.started,
            "sent": sum(len(r.sent) for r in run.results),
            "answered": sum(len(r.returned) for r in run.results),
            "served": run.served,
            "errors": dict(errors),
            "in_flight": steady_in_flight(run),
            "growth": [asdict(g) for g in grown],
            "load_average": list(run.load_average),
            "problems": problems,
        }
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    if problems:
        print(f"FAIL: {len(problems)} problems")
        for line in problems[:50]:
            print(f"  {line}")
        return 1
    print("PASS: no call lost or duplicated, every error the one asked for, no growth")
    return 0


if __name__ == "__main__":
    sys.exit(main())
