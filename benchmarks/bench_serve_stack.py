"""What a streamed request costs the emulator's server process, on each uvicorn stack.

The emulator runs in a process of its own under valgrind's callgrind (which counts the same
instructions for the same work, however loaded the machine is), on one of uvicorn's HTTP
parsers and event loops: h11 and asyncio (what the emulator in a test process always uses),
httptools and asyncio, httptools and uvloop (what ``llmperf serve`` takes when the ``serve``
extra is installed). A bare socket sends it ``--requests`` and then 3x ``--requests``
streamed ``POST /api/generate`` calls in two runs of the server (keep-alive, one connection);
the difference over 2x ``--requests`` is the count per request, start-up left out. The model
is synthetic with no delays and ``--tokens`` tokens an answer, so the count is the server's
HTTP, routing and streaming work.

    .venv/bin/python benchmarks/bench_serve_stack.py [--requests 20] [--tokens 8]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from serving import no_delay_model

STACKS = (("h11", "asyncio"), ("httptools", "asyncio"), ("httptools", "uvloop"))
MODEL = "stack:latest"


def profiles(folder: Path, tokens: int) -> Path:
    path = folder / "stack_profiles.toml"
    path.write_text(no_delay_model(MODEL, tokens), encoding="utf-8")
    return path


def child(http: str, loop: str, profile: str) -> None:
    """The server: ``llmperf serve``'s app and config, on the stack asked for."""
    import uvicorn

    from pytest_llmperf.emulator.runner import build_app
    from pytest_llmperf.emulator.server import _config, bind, url_of

    app = build_app(Path(profile))
    sock = bind("127.0.0.1", 0)
    config = _config(app, "warning", own_process=True)
    config.http, config.loop = http, loop
    print(url_of(sock), flush=True)
    uvicorn.Server(config).run(sockets=[sock])


def count(stack: tuple[str, str], profile: Path, requests: int) -> int:
    """Callgrind's count for one server process that answers ``requests`` streamed calls."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, __file__, "--child", *stack, str(profile)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    if not url.startswith("http://"):
        server.kill()
        raise SystemExit(f"the server did not start: {server.communicate()[1][-2000:]}")
    host, port = url.removeprefix("http://").rsplit(":", 1)
    body = json.dumps({"model": MODEL, "prompt": "hi", "stream": True}).encode()
    request = (
        b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )
    with socket.create_connection((host, int(port))) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(requests):
            client.sendall(request)
            seen = b""
            while not seen.endswith(b"\r\n0\r\n\r\n"):  # the chunked body's end
                data = client.recv(1 << 16)
                if not data:
                    raise SystemExit("the server closed the connection mid-answer")
                seen += data
    server.terminate()  # uvicorn shuts down gracefully; callgrind then prints its count
    _, err = server.communicate(timeout=300)
    found = re.search(r"Collected : (\d+)", err)
    if found is None:
        raise SystemExit(f"no count from callgrind:\n{err[-2000:]}")
    return int(found.group(1))


def main(args: argparse.Namespace) -> int:
    rows: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as folder:
        profile = profiles(Path(folder), args.tokens)
        for stack in STACKS:
            if not all(importlib.util.find_spec(name) for name in stack if name != "asyncio"):
                print(f"{' / '.join(stack)}: not installed (pip install 'pytest-llmperf[serve]')")
                continue
            once = count(stack, profile, args.requests)
            more = count(stack, profile, 3 * args.requests)
            rows[stack] = (more - once) / (2 * args.requests)
    base = rows.get(STACKS[0])
    print(f"server instructions per streamed request ({args.tokens} tokens, callgrind)")
    for stack, per in rows.items():
        against = f"  {per / base:.2f}x h11/asyncio" if base else ""
        print(f"{' / '.join(stack):<22} {per:>12,.0f}{against}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--child", nargs=3, metavar=("HTTP", "LOOP", "PROFILES"))
    parsed = parser.parse_args()
    if parsed.child:
        child(*parsed.child)
        sys.exit(0)
    sys.exit(main(parsed))
