"""Whether the emulator slows a real model down: its stream against llama.cpp in-process.

One side is llama-cpp-python in this process: ``Llama(model_path, n_ctx, n_threads)`` and
``create_completion(prompt, stream=True)``, each chunk timed as it comes out. The other is
``llmperf serve --gguf NAME=PATH`` in its own process (the same n_ctx and thread count),
streaming ``POST /api/generate`` over loopback HTTP to a bare ``httpx.Client``, every NDJSON
line timed as it arrives. Both use the same prompt, sampling options, seed and num_predict
(temperature 0: greedy, so the two texts must be the same, which is checked), and both read
the prompt afresh every time (the in-process side resets its context first, as the emulator
does for each request).

For each stream: TTFT, from the call (or the request) to the first piece of text, and the
rate, (pieces - 1) / (last piece - first piece). After a warm-up on each side, every round
runs one stream on each side, the side that goes first alternating; a round's ratios are
emulator / in-process, and the figures are the medians over the rounds (p25-p75 and min-max
show the spread). Targets: rate ratio >= 0.90 and TTFT ratio <= 1.20.

    .venv/bin/python benchmarks/bench_real_model.py [--model PATH] [--rounds 15]
        [--tokens 256] [--threads N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from serving import llmperf_serve, process_cpu

from pytest_llmperf.emulator.backends import Job, Token
from pytest_llmperf.emulator.llamacpp import LlamaCppBackend, generation_steps

NAME = "stories"
FLOOR = "floor:latest"
SIDES = ("in_process", "steps", "emulator", "raw", "floor")
PROMPT = "Once upon a time"
TARGET_RATE = 0.90  # emulator / in-process tokens per second: at least
TARGET_TTFT = 1.20  # emulator / in-process time to first token: at most


@dataclass(frozen=True)
class Stream:
    """One timed stream: its text, its pieces, its TTFT and its rate."""

    text: str
    pieces: int
    ttft_s: float
    tokens_per_s: float
    cpu_s: float = 0.0  # CPU time of both processes (the emulator's and this one) meanwhile
    server_tokens_per_s: float = float("nan")  # the emulator's eval_count / eval_duration


def timed(pieces: list[tuple[float, str]], started: float) -> Stream:
    """A stream from its ``(arrival, text)`` pieces; ``started`` is when it was asked for."""
    if len(pieces) < 2:
        raise SystemExit(f"a stream gave {len(pieces)} pieces of text: too few to time")
    first, last = pieces[0][0], pieces[-1][0]
    return Stream(
        text="".join(text for _at, text in pieces),
        pieces=len(pieces),
        ttft_s=first - started,
        tokens_per_s=(len(pieces) - 1) / (last - first) if last > first else float("nan"),
    )


def with_cpu(side: InProcess | Steps | OverHTTP | RawHTTP, server_pid: int) -> Stream:
    """One stream of ``side``, with the CPU both processes used during it."""
    before = time.process_time(), process_cpu(server_pid)
    seen = side.stream()
    used = time.process_time() - before[0] + process_cpu(server_pid) - before[1]
    return replace(seen, cpu_s=used)


def floor_profile(directory: Path, tokens: int) -> Path:
    """A synthetic model that costs nothing: its stream is the HTTP path alone."""
    path = directory / "floor_profiles.toml"
    path.write_text(
        f"""[models."{FLOOR}"]
load_s = 0.0
prompt_tokens_per_s = 1000000000.0
first_token_s = 0.0
tokens_per_s = 1000000000.0
jitter = 0.0
response_tokens = [{tokens}, {tokens}]
""",
        encoding="utf-8",
    )
    return path


def sampling(args: argparse.Namespace) -> dict[str, Any]:
    """The sampling options both sides use, in Ollama's names."""
    return {
        "temperature": 0.0,
        "seed": 1,
        "top_k": 40,
        "top_p": 0.9,
        "repeat_penalty": 1.1,
        "num_predict": args.tokens,
    }


class InProcess:
    """llama-cpp-python in this process, as a program would use it without a server."""

    def __init__(self, path: Path, n_ctx: int, threads: int, options: dict[str, Any]) -> None:
        import llama_cpp

        self.llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        self.options = options

    def stream(self) -> Stream:
        o = self.options
        clock = time.perf_counter
        self.llm.reset()  # read the prompt afresh, as the emulator does for every request
        pieces: list[tuple[float, str]] = []
        started = clock()
        chunks = self.llm.create_completion(
            PROMPT,
            max_tokens=o["num_predict"],
            temperature=o["temperature"],
            top_k=o["top_k"],
            top_p=o["top_p"],
            repeat_penalty=o["repeat_penalty"],
            seed=o["seed"],
            stream=True,
        )
        for chunk in chunks:
            text = chunk["choices"][0]["text"]
            if text:
                pieces.append((clock(), text))
        return timed(pieces, started)


class Steps(InProcess):
    """The emulator's own generation steps in this process, with no server around them."""

    def stream(self) -> Stream:
        o = self.options
        clock = time.perf_counter
        job = Job(
            model=NAME,
            prompt=PROMPT,
            seed=o["seed"],
            num_predict=o["num_predict"],
            temperature=o["temperature"],
            top_k=o["top_k"],
            top_p=o["top_p"],
            repeat_penalty=o["repeat_penalty"],
        )
        pieces: list[tuple[float, str]] = []
        started = clock()
        for event in generation_steps(self.llm, self.llm.n_ctx(), job):
            if isinstance(event, Token):
                pieces.append((clock(), event.text))
        return timed(pieces, started)


class OverHTTP:
    """The emulator on a loopback port, read by a bare httpx client."""

    def __init__(self, url: str, model: str, options: dict[str, Any]) -> None:
        self.client = httpx.Client(base_url=url, timeout=120.0)
        self.body = {"model": model, "prompt": PROMPT, "stream": True, "options": options}
        self.final: dict[str, Any] = {}

    def stream(self) -> Stream:
        clock = time.perf_counter
        pieces: list[tuple[float, str]] = []
        buffer = b""
        started = clock()
        with self.client.stream("POST", "/api/generate", json=self.body) as response:
            if response.status_code != 200:
                response.read()
                raise SystemExit(f"the emulator answered {response.status_code}: {response.text}")
            for data in response.iter_raw():
                now = clock()
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    obj = json.loads(line)
                    if obj.get("done"):
                        self.final = obj
                    elif obj.get("response"):
                        pieces.append((now, obj["response"]))
        if not self.final:
            raise SystemExit("the emulator's stream ended without its final line")
        rate = self.final.get("eval_count", 0) / (self.final.get("eval_duration", 0) / 1e9 or 1)
        return replace(timed(pieces, started), server_tokens_per_s=rate)

    def close(self) -> None:
        self.client.close()


class RawHTTP:
    """The emulator read by the least an HTTP/1.1 client does: one kept-alive socket
    (TCP_NODELAY), the request written at once, the chunked NDJSON answer split by hand.
    Its TTFT is the emulator's and the loopback's, with almost none of a client library's."""

    def __init__(self, url: str, model: str, options: dict[str, Any]) -> None:
        host, _, port = url.split("//", 1)[1].rpartition(":")
        self.sock = socket.create_connection((host.strip("[]"), int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = json.dumps({"model": model, "prompt": PROMPT, "stream": True, "options": options})
        self.request = (
            f"POST /api/generate HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        ).encode()

    def stream(self) -> Stream:
        clock = time.perf_counter
        pieces: list[tuple[float, str]] = []
        started = clock()
        self.sock.sendall(self.request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += self._recv()
        head, data = data.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"the emulator answered {head[:40]!r}")
        while True:  # chunked: SIZE CRLF DATA CRLF, ending with a chunk of size 0
            while b"\r\n" not in data:
                data += self._recv()
            size_line, data = data.split(b"\r\n", 1)
            size = int(size_line, 16)
            while len(data) < size + 2:
                data += self._recv()
            now = clock()
            chunk, data = data[:size], data[size + 2 :]
            if size == 0:
                return timed(pieces, started)
            for line in chunk.splitlines():
                text = json.loads(line).get("response")
                if text:
                    pieces.append((now, text))

    def _recv(self) -> bytes:
        data = self.sock.recv(1 << 16)
        if not data:
            raise SystemExit("the emulator closed the connection mid-answer")
        return data

    def close(self) -> None:
        self.sock.close()


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p25, p50, p75 = (
        statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else ordered * 3
    )
    return {"median": p50, "p25": p25, "p75": p75, "min": ordered[0], "max": ordered[-1]}


def show(label: str, values: list[float], unit: str, scale: float = 1.0) -> str:
    s = {k: v * scale for k, v in spread(values).items()}
    return (
        f"{label:<28} median {s['median']:8.2f}{unit}  p25-p75 {s['p25']:.2f}-{s['p75']:.2f}  "
        f"min-max {s['min']:.2f}-{s['max']:.2f}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    default_model = os.environ.get(
        "LLMPERF_STORIES_GGUF",
        str(Path(__file__).resolve().parents[2] / "shared/models/stories260K.gguf"),
    )
    parser.add_argument("--model", type=Path, default=Path(default_model), help="GGUF file")
    parser.add_argument("--rounds", type=int, default=15, help="rounds (one stream a side)")
    parser.add_argument("--tokens", type=int, default=256, help="num_predict of every stream")
    parser.add_argument(
        "--threads", type=int, help="llama.cpp threads on both sides (default: the emulator's)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every round as JSON")
    args = parser.parse_args()
    if args.rounds < 1 or args.tokens < 2:
        parser.error("--rounds must be >= 1 and --tokens >= 2")
    if not args.model.is_file():
        parser.error(f"no model at {args.model} (give --model or set LLMPERF_STORIES_GGUF)")
    return args


def run_rounds(
    args: argparse.Namespace,
    backend: LlamaCppBackend,
    options: dict[str, Any],
    url: str,
    server_pid: int,
) -> list[dict[str, Stream]]:
    """The warm-up, the check that both sides write the same text, then the timed rounds."""
    local = InProcess(args.model, backend.n_ctx, backend.threads, options)
    steps = Steps(args.model, backend.n_ctx, backend.threads, options)
    remote = OverHTTP(url, NAME, options)
    raw = RawHTTP(url, NAME, options)
    floor = OverHTTP(url, FLOOR, options)
    try:
        warm = local.stream(), steps.stream(), remote.stream(), raw.stream(), floor.stream()
        seen_by = (("the emulator's steps", warm[1]), ("the emulator", warm[2]), ("raw", warm[3]))
        for name, seen in seen_by:
            if seen.text != warm[0].text:
                raise SystemExit(
                    f"{name} wrote another text than create_completion:\n"
                    f"  create_completion: {warm[0].text[:120]!r}\n  {name}: {seen.text[:120]!r}"
                )
        print(
            f"the same text from all four ({warm[0].pieces} pieces from create_completion, "
            f"{warm[2].pieces} from the emulator, eval_count {remote.final.get('eval_count')})"
        )
        rounds: list[dict[str, Stream]] = []
        sides = list(zip(SIDES, (local, steps, remote, raw, floor), strict=True))
        for number in range(args.rounds):
            first = number % len(sides)
            turn = sides[first:] + sides[:first]  # each side first in turn
            seen = {name: with_cpu(side, server_pid) for name, side in turn}
            rounds.append(seen)
        return rounds
    finally:
        remote.close()
        raw.close()
        floor.close()


def main() -> int:
    args = parse_args()
    backend = LlamaCppBackend(NAME, args.model, threads=args.threads)
    options = sampling(args)
    print(
        f"model {args.model.name}, prompt {PROMPT!r}, {args.tokens} tokens, temperature 0, "
        f"n_ctx {backend.n_ctx}, {backend.threads} llama.cpp thread(s) a side, "
        f"{os.cpu_count()} cores, {args.rounds} rounds"
    )
    serve = ["--gguf", f"{NAME}={args.model}", "--log-level", "warning"]
    serve += ["--gguf-threads", str(backend.threads)]
    rounds: list[dict[str, Stream]] = []
    with tempfile.TemporaryDirectory(prefix="llmperf-bench-") as tmp:
        serve += ["--profiles", str(floor_profile(Path(tmp), args.tokens))]
        with llmperf_serve(serve) as (url, process):
            print(f"emulator: {url} (pid {process.pid}); in-process: pid {os.getpid()}")
            rounds = run_rounds(args, backend, options, url, process.pid)
    print(f"{'':<28} (per stream; ratios per round, emulator / in-process)")
    for key, unit, scale in (("tokens_per_s", " tok/s", 1.0), ("ttft_s", " ms", 1000.0)):
        for side in SIDES:
            print(show(f"{side} {key}", [getattr(r[side], key) for r in rounds], unit, scale))
    served = [r["emulator"].server_tokens_per_s for r in rounds]
    print(show("emulator, its own eval rate", served, " tok/s"))
    cpu = {
        side: sum(r[side].cpu_s for r in rounds) / sum(r[side].pieces for r in rounds)
        for side in SIDES
    }
    print(
        "CPU a token (both processes, all rounds): "
        + ", ".join(f"{side} {cpu[side] * 1e6:.0f} us" for side in SIDES)
        + " (ticks of 10 ms)"
    )
    above = [(r["emulator"].ttft_s - r["floor"].ttft_s) * 1000 for r in rounds]
    print(show("emulator TTFT - floor's", above, " ms"))
    rate = [r["emulator"].tokens_per_s / r["in_process"].tokens_per_s for r in rounds]
    ttft = [r["emulator"].ttft_s / r["in_process"].ttft_s for r in rounds]
    print(show("ratio tokens/s", rate, "x"))
    print(show("ratio TTFT", ttft, "x"))
    bare = [r["raw"].ttft_s / r["in_process"].ttft_s for r in rounds]
    print(show("ratio TTFT, raw client", bare, "x"))
    alone = [r["emulator"].tokens_per_s / r["steps"].tokens_per_s for r in rounds]
    print(show("ratio tokens/s to its steps", alone, "x"))
    alone = [r["emulator"].ttft_s / r["steps"].ttft_s for r in rounds]
    print(show("ratio TTFT to its steps", alone, "x"))
    verdicts = [
        (f"tokens/s ratio >= {TARGET_RATE}", spread(rate)["median"] >= TARGET_RATE),
        (f"TTFT ratio <= {TARGET_TTFT}", spread(ttft)["median"] <= TARGET_TTFT),
        (f"TTFT ratio, raw client <= {TARGET_TTFT}", spread(bare)["median"] <= TARGET_TTFT),
    ]
    for target, passed in verdicts:
        print(f"{'PASS' if passed else 'FAIL'}: {target}")
    if args.json:
        every = [{name: asdict(s) | {"text": None} for name, s in r.items()} for r in rounds]
        results = {"args": {k: str(v) for k, v in vars(args).items()}, "rounds": every}
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0 if all(passed for _t, passed in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
