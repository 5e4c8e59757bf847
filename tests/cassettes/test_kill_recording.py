"""SIGINT, SIGTERM and SIGKILL in the middle of a stream, in every record mode: each cassette
stays byte for byte as it was, nothing is left beside it, and the report (when the process
lived to write one) says the run was interrupted and which test was running.

A real pytest process records (or replays) against an emulator on a loopback port whose
model stalls for minutes after its third chunk; the test writes a marker file once the
stream is flowing, which is when the signal is sent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import jsonschema
import pytest
from inner_runs import LEFT_OUT

from pytest_llmperf import EmulatorServer
from pytest_llmperf.emulator import Catalogue, EmulatorApp
from pytest_llmperf.emulator.faults import parse_fault_header
from pytest_llmperf.emulator.profiles import ModelProfile
from pytest_llmperf.observe.cassettes import Cassette
from pytest_llmperf.report.document import schema

MODEL = "story:latest"
HEALTHY = ModelProfile(
    name=MODEL,
    load_s=0.0,
    first_token_s=0.0,
    tokens_per_s=500.0,
    prompt_tokens_per_s=100_000.0,
    response_tokens=(12, 12),
    jitter=0.0,
)
STALLING = replace(HEALTHY, faults=parse_fault_header("stall; after=3; seconds=600"))
NODEID = "test_tales.py::test_story"
CASSETTE = Path("cassettes") / "test_tales" / "test_story.yaml"

INNER = """
import os
from pathlib import Path

import pytest


@pytest.mark.llm_cassette
def test_story(ollama_client):
    stream = ollama_client.generate(tier="fast", prompt=os.environ["PROMPT"], stream=True)
    for number, chunk in enumerate(stream):
        if number == 1:
            Path(os.environ["STREAMING"]).write_text("streaming", encoding="utf-8")
"""


def inner_run(folder: Path, url: str, mode: str, prompt: str, *extra: str) -> subprocess.Popen[str]:
    """pytest on ``folder``'s test, its client on ``url``, in its own process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "LLMPERF_"))}
    env.update(PROMPT=prompt, STREAMING=str(folder / "streaming"))
    limits = "fast: total=900 first_token=900 stall=900"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *LEFT_OUT]
    command += ["-p", "no:rerunfailures", "--llm-host", url, "--llm-tier", f"fast={MODEL}"]
    command += ["--llm-timeout", limits, "--llm-adaptive-timeouts", "off"]
    command += ["--llm-record-mode", mode, "--llm-report", "report.json", *extra]
    return subprocess.Popen(
        command,
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_interruptible,
    )


def _interruptible() -> None:
    """SIGINT with its default action in the run, so that Python turns it into Ctrl-C's
    KeyboardInterrupt: a suite started in the background (``cmd &`` in a script, nohup) has
    it ignored, and a child inherits that, which would leave these runs deaf to SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# How long a step of a run may take before the test calls it hung (each takes seconds)
PATIENCE_S = 120.0


def finished(run: subprocess.Popen[str], timeout: float = PATIENCE_S) -> tuple[int, str]:
    try:
        output, _ = run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.kill()  # a hung run must not hold the stalling emulator for the tests after it
        run.communicate()
        raise
    return run.returncode, output


@dataclass
class Recordings:
    """The cassettes of a healthy run, to start each case from."""

    story: bytes  # the very request the interrupted run makes
    other: bytes  # another request: the interrupted one is a new episode to it


def started(catalogue: Catalogue) -> EmulatorServer:
    return EmulatorServer(EmulatorApp(catalogue)).start()


@pytest.fixture(scope="module")
def stalling() -> Iterator[EmulatorServer]:
    server = started(Catalogue(models={MODEL: STALLING}))
    yield server
    server.kill()  # its stalled streams with it


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Recordings:
    healthy = started(Catalogue(models={MODEL: HEALTHY}))
    found = {}
    try:
        for prompt in ("story", "other"):
            folder = tmp_path_factory.mktemp(f"healthy-{prompt}")
            (folder / "test_tales.py").write_text(INNER, encoding="utf-8")
            code, output = finished(inner_run(folder, healthy.url, "once", prompt))
            assert code == 0, output
            found[prompt] = (folder / CASSETTE).read_bytes()
    finally:
        healthy.stop()
    return Recordings(**found)


def slowed_replay(recorded: bytes, folder: Path) -> bytes:
    """The recording with its chunks after the second due minutes later: a replay at the
    recorded timing stalls there."""
    path = folder / CASSETTE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(recorded)
    cassette = Cassette.load(path)
    [story] = cassette.interactions
    story.headers_at = 0.0
    story.chunks = [(0.0 if n < 2 else 600.0, size) for n, (_, size) in enumerate(story.chunks)]
    cassette.save()
    return path.read_bytes()


def wait_for(condition: Callable[[], bool], run: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        if run.poll() is not None:
            output = run.stdout.read() if run.stdout else ""
            pytest.fail(f"the run ended before {what}:\n{output}")
        if time.monotonic() > deadline:
            run.kill()
            pytest.fail(f"no {what} within {PATIENCE_S:.0f} s")
        time.sleep(0.02)


SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
# what each mode finds before the run: no cassette (once records one that does not exist),
# another request's cassette (new_episodes adds this one), or this request's
EXISTING = {"none": "story", "once": None, "new_episodes": "other", "all": "story"}
EXISTING["rewrite"] = "story"


@pytest.mark.parametrize("name", list(SIGNALS))
@pytest.mark.parametrize("mode", list(EXISTING))
def test_a_signal_mid_stream_leaves_every_cassette_as_it_was(
    tmp_path: Path, stalling: EmulatorServer, recordings: Recordings, mode: str, name: str
) -> None:
    (tmp_path / "test_tales.py").write_text(INNER, encoding="utf-8")
    cassette = tmp_path / CASSETTE
    extra: tuple[str, ...] = ()
    before: bytes | None = None
    existing = EXISTING[mode]
    if mode == "none":  # a replay, held up by a recorded stall
        before = slowed_replay(recordings.story, tmp_path)
        extra = ("--llm-replay-timing", "recorded")
    elif existing is not None:
        cassette.parent.mkdir(parents=True)
        before = getattr(recordings, existing)
        cassette.write_bytes(before)
    run = inner_run(tmp_path, stalling.url, mode, "story", *extra)
    wait_for((tmp_path / "streaming").exists, run, "stream")
    run.send_signal(SIGNALS[name])
    code, output = finished(run)

    if before is None:
        assert not cassette.parent.exists(), output
    else:
        assert cassette.read_bytes() == before, output
        assert [p.name for p in cassette.parent.iterdir()] == [cassette.name]
    report = tmp_path / "report.json"
    if name == "SIGKILL":
        assert code == -signal.SIGKILL
        assert not report.exists()
        assert list(tmp_path.glob(".*.tmp")) == []  # no half-written report either
        return
    assert code == pytest.ExitCode.INTERRUPTED, output
    data = json.loads(report.read_text(encoding="utf-8"))
    jsonschema.validate(data, schema())
    reason = "SIGTERM" if name == "SIGTERM" else "KeyboardInterrupt"
    assert data["run"]["interrupted"] == {"reason": reason, "running": [NODEID]}
    [test] = data["tests"]
    assert (test["nodeid"], test["outcome"]) == (NODEID, "interrupted")
    assert (data["summary"]["passed"], data["summary"]["interrupted"]) == (0, 1)
    assert f"interrupted ({reason}) while running {NODEID}" in output


def test_the_same_run_left_alone_records_and_replays(
    tmp_path: Path, recordings: Recordings
) -> None:
    """The cases above would pass for a run that never wrote anything: this one writes."""
    healthy = started(Catalogue(models={MODEL: HEALTHY}))
    try:
        (tmp_path / "test_tales.py").write_text(INNER, encoding="utf-8")
        cassette = tmp_path / CASSETTE
        cassette.parent.mkdir(parents=True)
        cassette.write_bytes(recordings.other)
        code, output = finished(inner_run(tmp_path, healthy.url, "new_episodes", "story"))
        assert code == 0, output
        found = Cassette.load(cassette).interactions
        prompts = [json.loads(str(i.request_body))["prompt"] for i in found]
        assert prompts == ["other", "story"]
        data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
        assert data["run"]["interrupted"] is None
    finally:
        healthy.stop()
