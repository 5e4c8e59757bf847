"""``llmperf serve`` on a free loopback port in its own process, for the benchmarks."""

from __future__ import annotations

import ipaddress
import math
import os
import selectors
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

LISTENING = "llmperf emulator listening on "


def no_delay_model(name: str, tokens: int) -> str:
    """A profile's TOML table for a synthetic model with no delays: ``tokens`` tokens an
    answer, so what is timed or counted is the HTTP path and the client."""
    return f"""[models."{name}"]
load_s = 0.0
prompt_tokens_per_s = 1e9
first_token_s = 0.0
tokens_per_s = 1e9
jitter = 0.0
response_tokens = [{tokens}, {tokens}]
"""


STARTUP_TIMEOUT_S = 60.0


@contextmanager
def llmperf_serve(options: list[str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run ``llmperf serve --host 127.0.0.1 --port 0 OPTIONS``; yield its URL and process."""
    llmperf = Path(sys.executable).with_name("llmperf")
    command = [str(llmperf), "serve", "--host", "127.0.0.1", "--port", "0", *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout=STARTUP_TIMEOUT_S)
        line = process.stdout.readline() if ready else ""
        if not line.startswith(LISTENING):
            raise SystemExit(f"the emulator did not start: {line!r}")
        url = line[len(LISTENING) :].strip()
        if not ipaddress.ip_address(urlsplit(url).hostname or "").is_loopback:
            raise SystemExit(f"the emulator is not on a loopback address: {url}")
        yield url, process
    finally:
        stop(process)


def stop(process: subprocess.Popen[str]) -> None:
    """Terminate ``process`` (kill it if it has not ended within 10 s)."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; NaN elsewhere), in 10 ms ticks."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
