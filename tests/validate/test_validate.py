"""``llmperf validate`` as a user runs it: a separate process, its files, its exit status."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_llmperf.report.document import schema

SCALE = ["--time-scale", "0.05"]  # the emulator 20x faster than its profiles
COLD_COMPLEX = "test_performance.py::test_complex_tier_cold_under_a_tight_budget"
LISTENING = "llmperf emulator listening on "


@dataclass
class Validated:
    status: int
    output: str
    folder: Path

    def file(self, pattern: str) -> Path:
        [found] = sorted(self.folder.glob(pattern))
        return found

    @property
    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            self.file("llm_dev_validation_*.json").read_text(encoding="utf-8")
        )
        return data

    @property
    def recommendations(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            (self.folder / "performance_recommendations.json").read_text(encoding="utf-8")
        )
        return data

    def scenario(self, nodeid: str) -> dict[str, Any]:
        [found] = [s for s in self.report["scenarios"]["items"] if s["nodeid"] == nodeid]
        return found

    def group(self, name: str) -> dict[str, Any]:
        [found] = [g for g in self.report["scenarios"]["groups"] if g["name"] == name]
        return found


def validate(folder: Path, *args: str) -> Validated:
    done = subprocess.run(
        [sys.executable, "-m", "pytest_llmperf.cli", "validate", "--out", str(folder), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return Validated(done.returncode, done.stdout + done.stderr, folder)


@pytest.fixture(scope="module")
def on_the_emulator(tmp_path_factory: pytest.TempPathFactory) -> Validated:
    return validate(tmp_path_factory.mktemp("emulator"), "--html", *SCALE)


def test_validate_on_the_emulator_passes_and_writes_both_files(on_the_emulator: Validated) -> None:
    assert on_the_emulator.status == 0, on_the_emulator.output
    report = on_the_emulator.report
    jsonschema.validate(report, schema())
    assert report["scenarios"]["ok"] is True
    assert {g["name"] for g in report["scenarios"]["groups"]} == {
        "architecture",
        "functionality",
        "performance",
    }
    assert all(g["failed"] == 0 and g["ran"] > 0 for g in report["scenarios"]["groups"])
    page = on_the_emulator.file("llm_dev_validation_*.html").read_text(encoding="utf-8")
    assert 'id="plot-optimizations"' in page and '<section id="scenarios">' in page
    assert '<span class="outcome xfailed">xfailed</span>' in page
    # finding out about the target (its models, its fault injection) is nobody's call
    assert report["session"]["calls"] == []


def test_the_cold_complex_tier_is_an_expected_failure(on_the_emulator: Validated) -> None:
    scenario = on_the_emulator.scenario(COLD_COMPLEX)
    assert scenario["outcome"] == "xfailed" and scenario["required"] is False
    assert scenario["message"].startswith("expected to fail")
    performance = on_the_emulator.group("performance")
    assert performance["expected_failures"] == 1
    assert performance["passed"] == performance["ran"] - 1
    [test] = [t for t in on_the_emulator.report["tests"] if t["nodeid"] == COLD_COMPLEX]
    assert test["outcome"] == "xfailed"
    assert [v["budget"] for v in test["violations"]] == ["total"]
    assert "(1 expected to fail)" in on_the_emulator.output


def test_recommendations_come_with_their_evidence_and_scenarios(
    on_the_emulator: Validated,
) -> None:
    alone = on_the_emulator.recommendations
    report = on_the_emulator.report
    assert alone["recommendations"] == report["recommendations"]
    assert alone["report"] == on_the_emulator.file("llm_dev_validation_*.json").name
    items = alone["recommendations"]
    assert items and all(item["evidence"] for item in items)
    cold = [i for i in items if i["id"] == "cold-load" and i["evidence"]["model"] == "llama3:8b"]
    assert cold, [i["id"] for i in items]
    assert COLD_COMPLEX in cold[0]["scenarios"]
    # the scenario that injects a stall on purpose is no evidence of anything
    stall = "test_performance.py::test_stall_caught_by_the_adaptive_timeout"
    assert not any(stall in item["scenarios"] for item in items)
    assert on_the_emulator.scenario(stall)["evidence"] is False


def test_the_optimization_table_is_measured_before_and_after(
    on_the_emulator: Validated,
) -> None:
    rows = on_the_emulator.report["optimizations"]
    names = [row["optimization"] for row in rows]
    for wanted in ("warm-up (complex", "response cache", "concurrency (5", "concurrency (50"):
        assert any(name.startswith(wanted) for name in names), names
    assert any(name.startswith("faster tier") for name in names)
    assert any(name.startswith("balancing (2 hosts") for name in names)  # two emulators
    for row in rows:
        assert row["before_s"] > 0 and row["after_s"] >= 0
        assert row["improvement"] == pytest.approx(row["before_s"] / row["after_s"])
        assert on_the_emulator.scenario(row["scenario"])["outcome"] == "passed"
    cache = next(r for r in rows if r["optimization"].startswith("response cache"))
    assert cache["after_s"] < cache["before_s"]


def test_the_summary_fits_a_screen_and_names_the_files(on_the_emulator: Validated) -> None:
    lines = on_the_emulator.output.splitlines()
    [summary] = [line for line in lines if line.startswith("architecture ")]
    assert "functionality 100% (6/6)" in summary
    assert summary.endswith(f"{len(on_the_emulator.report['recommendations'])} recommendations")
    at = lines.index(summary)
    assert len(lines) - at < 30
    for name in ("report:", "recommendations:", "page:"):
        assert any(line.startswith(name) for line in lines[at:]), lines[at:]
    progress = [line for line in lines[:at] if line.startswith("[")]
    assert len(progress) == len(on_the_emulator.report["scenarios"]["items"])


def test_a_baseline_gates_the_run(on_the_emulator: Validated, tmp_path: Path) -> None:
    """The same scenarios on an emulator five times slower: budgets scale, latency does not."""
    baseline = on_the_emulator.file("llm_dev_validation_*.json")
    slower = validate(tmp_path, "--baseline", str(baseline), "--time-scale", "0.25")
    assert slower.status == 1, slower.output
    assert slower.report["scenarios"]["ok"] is True
    comparison = slower.report["baseline"]
    assert comparison["baseline"] == str(baseline) and comparison["regressions"] > 0
    assert f"baseline {baseline}: {comparison['regressions']} regressions" in slower.output
    assert "  regression: model llama3.2:1b total_s: median +" in slower.output


class Served:
    """``llmperf serve`` on a free port, as a user starts it."""

    def __init__(self, *args: str) -> None:
        command = [sys.executable, "-m", "pytest_llmperf.cli", "serve", "--port", "0", *args]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith(LISTENING):
            self.stop()
            raise AssertionError(f"llmperf serve did not start: {line!r}")
        self.url = line[len(LISTENING) :].strip()

    def stop(self) -> None:
        self.process.terminate()
        self.process.communicate(timeout=10)


@pytest.fixture
def served() -> Iterator[Served]:
    server = Served("--time-scale", "0.05", "--num-parallel", "4", "--log-level", "warning")
    yield server
    server.stop()


def test_a_target_url_gets_the_same_scenarios(
    served: Served, on_the_emulator: Validated, tmp_path: Path
) -> None:
    remote = validate(tmp_path, "--target", served.url, *SCALE)
    assert remote.status == 0, remote.output
    jsonschema.validate(remote.report, schema())
    ids = [s["nodeid"] for s in remote.report["scenarios"]["items"]]
    assert ids == [s["nodeid"] for s in on_the_emulator.report["scenarios"]["items"]]
    assert remote.report["scenarios"]["target"]["hosts"] == [served.url]
    assert remote.scenario(COLD_COMPLEX)["outcome"] == "xfailed"
    # one host: nothing to balance over
    balanced = remote.scenario("test_performance.py::test_balanced_over_hosts")
    assert balanced["outcome"] == "skipped" and "several targets" in balanced["message"]


def test_a_missing_tier_model_fails_the_architecture_group(tmp_path: Path) -> None:
    missing = validate(tmp_path, "--tier", "complex=llama3:70b", *SCALE)
    assert missing.status == 1, missing.output
    assert "ollama pull llama3:70b" in missing.output
    jsonschema.validate(missing.report, schema())
    architecture = missing.group("architecture")
    assert architecture["ok"] is False and architecture["failed"] == 1
    failed = missing.scenario("test_architecture.py::test_tier_model_exists[complex]")
    assert failed["outcome"] == "failed" and "ollama pull llama3:70b" in failed["message"]
    # what needs the model is skipped, saying why, not failed a second time
    cold = missing.scenario(COLD_COMPLEX)
    assert cold["outcome"] == "skipped" and "llama3:70b" in cold["message"]
    assert missing.group("performance")["failed"] == 0


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--target", "emulator", "--target", "http://127.0.0.1:1"], "cannot be mixed"),
        (["--target", "http://127.0.0.1:1", "--gguf", "x=y.gguf"], "--gguf serves a model"),
        (["--gguf", "stories=/nowhere/model.gguf"], "does not exist"),
        (["--gguf", "stories"], "NAME=PATH"),
        (["--tier", "fast"], "fast"),
        (["--baseline", "/nowhere/baseline.json"], "/nowhere/baseline.json"),
        (["--time-scale", "0"], "above 0"),
        (["--time-scale", "fast"], "--time-scale"),
    ],
)
def test_bad_arguments_say_what_is_wrong(tmp_path: Path, args: list[str], said: str) -> None:
    bad = validate(tmp_path / "out", *args)
    assert bad.status == 2, bad.output
    assert said in bad.output
    assert "Traceback" not in bad.output
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


STORIES = os.environ.get("LLMPERF_STORIES_GGUF", "")


@pytest.mark.skipif(
    not (STORIES and Path(STORIES).is_file()),
    reason="set LLMPERF_STORIES_GGUF to the stories260K.gguf model to validate a real model",
)
@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed: pip install 'pytest-llmperf[llama]'",
)
def test_a_real_gguf_model_is_validated(tmp_path: Path) -> None:
    real = validate(tmp_path, "--gguf", f"stories={STORIES}", *SCALE)
    assert real.status == 0, real.output
    report = real.report
    jsonschema.validate(report, schema())
    assert report["scenarios"]["target"]["tiers"]["fast"] == "stories"
    assert report["scenarios"]["target"]["real_models"] == ["stories:latest"]
    functional = [s for s in report["scenarios"]["items"] if s["group"] == "functionality"]
    passed = {s["title"] for s in functional if s["outcome"] == "passed"}
    assert {"Generate completes a prompt", "Chat answers a conversation"} <= passed
    assert "Streaming gives the answer chunk by chunk" in passed
    # the fast tier's figures are the model's own: llama.cpp loaded it, and wrote the tokens
    stats = report["models"]["stories"]
    assert stats["calls"] > 10 and stats["tokens_per_s"]
    warm_up = next(
        r for r in report["optimizations"] if r["optimization"].startswith("warm-up (fast")
    )
    assert "stories" in warm_up["optimization"]
    # budgets on the real model's tier are real time; the emulated tiers' are scaled
    budgets = {s["nodeid"]: s["budget"] for s in report["scenarios"]["items"]}
    assert budgets["test_functionality.py::test_generate"] == {"total": 10.0}
    assert budgets[COLD_COMPLEX] == {"total": pytest.approx(2.0 * 0.05)}
