"""Replaying cassettes of 100, 1,000 and 5,000 interactions: ours, vcrpy, MockTransport.

Each cassette holds N distinct ``POST /api/generate`` requests (``stream: false``) and their
answers, written by our cassette layer (vcrpy's layout, which vcrpy reads too). The same
N requests are replayed through ``httpx.Client``:

- **ours**: ``CassetteSession(path, "none")``, matching on method, path and the JSON body;
- **vcrpy**: ``vcr.VCR(record_mode="none")`` matching on method, scheme, host, port, path,
  query and body (LLM traffic needs the body: only it tells prompts apart). vcrpy scans
  every recorded interaction per request, so at 1,000 and 5,000 it replays an evenly spread
  sample of ``--vcr-sample`` requests and its total is the sample's mean times N;
- **MockTransport**: httpx's ``MockTransport`` answering from a dict, no cassette at all.

Loading (reading and indexing the file) is timed apart from replaying. Targets: our time per
request stays flat as N grows (linear total), ours is >= 100x faster than vcrpy at 5,000
and within 3x of MockTransport, and loading 5,000 interactions takes < 0.5 s.

    .venv/bin/python benchmarks/bench_cassette_replay.py [--sizes 100,1000,5000]
        [--vcr-sample 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import vcr

from pytest_llmperf.observe.cassettes import Cassette, CassetteSession, Interaction, patched

URL = "http://127.0.0.1:11434/api/generate"


def body(i: int) -> str:
    return json.dumps(
        {
            "model": "llama3.2:1b",
            "prompt": f"question {i}: why is the sky blue?",
            "stream": False,
            "options": {"seed": i},
        }
    )


def answer(i: int) -> bytes:
    return json.dumps(
        {
            "model": "llama3.2:1b",
            "created_at": "2026-11-29T00:00:00.000000Z",
            "response": f"answer {i}: " + "blue light scatters more " * 4,
            "done": True,
            "done_reason": "stop",
            "total_duration": 123456789,
            "eval_count": 20,
            "eval_duration": 98765432,
        }
    ).encode()


def write_cassette(path: Path, n: int) -> None:
    interactions = [
        Interaction(
            method="POST",
            uri=URL,
            request_headers={"content-type": ["application/json"]},
            request_body=body(i),
            status=200,
            reason="OK",
            headers={"content-type": ["application/json; charset=utf-8"]},
            body=answer(i),
            headers_at=0.01,
            chunks=[(0.01, len(answer(i)))],
        )
        for i in range(n)
    ]
    Cassette(path, interactions).save()


def replay(client: httpx.Client, indices: list[int]) -> float:
    began = time.perf_counter()
    for i in indices:
        response = client.post(URL, content=body(i).encode())
        if response.status_code != 200 or b'"done": true' not in response.content:
            raise SystemExit(f"request {i}: a wrong answer {response.content[:80]!r}")
    return time.perf_counter() - began


def ours(path: Path, n: int) -> tuple[float, float]:
    began = time.perf_counter()
    session = CassetteSession(path, "none")
    load = time.perf_counter() - began
    with patched(session), httpx.Client() as client:
        total = replay(client, list(range(n)))
    return load, total


def vcrpy(path: Path, n: int, sample: int) -> tuple[float, float, int]:
    recorder = vcr.VCR(
        record_mode="none",
        match_on=["method", "scheme", "host", "port", "path", "query", "body"],
    )
    indices = list(range(n)) if n <= sample else list(range(0, n, n // sample))[:sample]
    began = time.perf_counter()
    with recorder.use_cassette(str(path)):
        load = time.perf_counter() - began
        with httpx.Client() as client:
            total = replay(client, indices)
    return load, total / len(indices) * n, len(indices)


def mock(n: int) -> float:
    answers = {body(i).encode(): answer(i) for i in range(n)}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=answers[request.content])

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        return replay(client, list(range(n)))


def main(args: argparse.Namespace) -> int:
    sizes = [int(size) for size in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for n in sizes:
            path = Path(folder, f"c{n}.yaml")
            write_cassette(path, n)
            mocked = statistics.median(mock(n) for _ in range(3))
            runs = [ours(path, n) for _ in range(3)]
            load = statistics.median(r[0] for r in runs)
            total = statistics.median(r[1] for r in runs)
            vcr_load, vcr_total, sampled = vcrpy(path, n, args.vcr_sample)
            rows.append((n, load, total, vcr_load, vcr_total, sampled, mocked))
    print(
        f"{'N':>6} {'ours load s':>11} {'ours replay s':>13} {'us/req':>7} "
        f"{'vcrpy load s':>12} {'vcrpy replay s':>14} {'(sampled)':>9} "
        f"{'mock s':>7} {'vcrpy/ours':>10} {'ours/mock':>9}"
    )
    for n, load, total, vcr_load, vcr_total, sampled, mocked in rows:
        print(
            f"{n:>6} {load:>11.3f} {total:>13.3f} {total / n * 1e6:>7.1f} {vcr_load:>12.3f} "
            f"{vcr_total:>14.2f} {sampled:>9} {mocked:>7.3f} {vcr_total / total:>10.0f} "
            f"{total / mocked:>9.2f}"
        )
    first, last = rows[0], rows[-1]
    growth = (last[2] / last[0]) / (first[2] / first[0])
    checks = [
        (growth <= 1.5, f"ours per request at {last[0]} / at {first[0]}: {growth:.2f} (<= 1.5)"),
        (last[4] / last[2] >= 100, f"vcrpy / ours at {last[0]}: {last[4] / last[2]:.0f}x (>= 100)"),
        (
            last[2] / last[6] <= 3,
            f"ours / MockTransport at {last[0]}: {last[2] / last[6]:.2f}x (<= 3)",
        ),
        (last[1] < 0.5, f"loading {last[0]} interactions: {last[1]:.3f} s (< 0.5)"),
    ]
    for ok, text in checks:
        print(("PASS: " if ok else "FAIL: ") + text)
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--vcr-sample", type=int, default=100)
    sys.exit(main(parser.parse_args()))
