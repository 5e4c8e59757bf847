"""The soak benchmark, short: so it cannot rot, and so its checks are known to catch faults.

The full run is by hand (``benchmarks/bench_soak.py``, 60 s and 300 streams by default, see the
README); here it runs for a few seconds with fewer streams, and its verdict functions are fed
made-up results with a call lost, one answered twice, one given another's answer, an error
nobody asked for and a process that grows, to show each is caught.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_soak.py"


@pytest.fixture(scope="module")
def soak() -> ModuleType:
    """The script as a module (it imports the stream benchmark beside it)."""
    spec = importlib.util.spec_from_file_location("bench_soak", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(SCRIPT.parent))
        patch.setitem(sys.modules, "bench_soak", module)  # (dataclasses look it up)
        spec.loader.exec_module(module)
    return module


def test_a_short_soak_passes_with_every_fault_accounted_for(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    command = [sys.executable, str(SCRIPT), "--seconds", "6", "--streams", "24"]
    command += ["--fault-every", "6", "--json", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "PASS: no call lost or duplicated" in run.stdout
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["problems"] == []
    assert result["sent"] == result["served"] > 0
    assert result["answered"] + sum(result["errors"].values()) == result["sent"]
    # each injected fault came back as its own error, through both clients
    for kind in ("ours", "official"):
        for error in ("http-503", "error-line", "cut-stream"):
            assert result["errors"].get(f"{kind} {error}", 0) > 0, (kind, error, result["errors"])
    processes = {g["process"] for g in result["growth"]}
    assert processes == {"server", "ours", "official"}
    assert max(result["in_flight"]) >= 2 * 24 * 0.8  # the streams really ran side by side


def test_the_ids_in_the_prompt_come_back_from_the_emulators_context(soak: ModuleType) -> None:
    from pytest_llmperf.emulator import text

    read = soak.IdReader()
    prompt = soak.prompt_for(1_234_567)
    assert read(text.token_ids(prompt) + text.token_ids(" Once upon a time")) == 1_234_567
    assert read(text.token_ids("soak 1 2")) is None  # too few digits
    assert read(text.token_ids("other 0 0 0 0 0 0 0 1")) is None
    assert read(None) is None


def test_the_verdict_catches_lost_repeated_swapped_and_unasked_for_calls(
    soak: ModuleType,
) -> None:
    every = 10  # call 9 asks for a fault, 19 for the next kind, ...
    fine = soak.WorkerResult(kind="ours", pid=1, sent=[0, 1, 9], returned={0: [0], 1: [1]})
    fine.errors = {9: soak.expected_error(9, every, 0)}
    problems, errors, unexpected = soak.call_violations([fine], every, 0, 3)
    assert problems == [] and not unexpected
    assert errors == {f"ours {soak.expected_error(9, every, 0)}": 1}

    broken = soak.WorkerResult(kind="official", pid=2, sent=[0, 1, 2, 3, 4, 9])
    broken.returned = {0: [0, 0], 1: [2], 2: [-1], 9: [9]}  # 3 lost; 4 failed unasked
    broken.errors = {4: "cut-stream"}
    problems, _errors, unexpected = soak.call_violations([broken], every, 0, 5)
    text = "\n".join(problems)
    assert "1 calls lost" in text and "[3]" in text
    assert "call 0 answered 2 times" in text
    assert "call 1 got the answer of 2" in text
    assert "call 2 got the answer of no readable id" in text
    assert "call 9 asked for" in text and "but was answered" in text
    assert unexpected == {"official cut-stream (expected no error)": 1}
    assert "the emulator counted 5 requests, the clients sent 6" in text


def test_the_verdict_catches_growth_between_the_first_and_last_thirds(soak: ModuleType) -> None:
    def samples(fds: list[int], rss_mib: list[int]) -> list[object]:
        return [
            soak.Sample(at=float(i), fds={"p": f}, rss={"p": r << 20}, in_flight=0)
            for i, (f, r) in enumerate(zip(fds, rss_mib, strict=True))
        ]

    steady = samples([100] * 9, [50] * 9)
    assert not any(g.grew for g in soak.growth(steady, 0.0, 9.0))
    leaking = samples([100, 100, 100, 110, 120, 130, 140, 150, 160], [50] * 9)
    [fds] = [g for g in soak.growth(leaking, 0.0, 9.0) if g.grew]
    assert (fds.metric, fds.first, fds.last) == ("fds", 100, 150)
    swelling = samples([100] * 9, [50, 50, 50, 55, 60, 65, 70, 75, 80])
    [rss] = [g for g in soak.growth(swelling, 0.0, 9.0) if g.grew]
    assert rss.metric == "rss"
