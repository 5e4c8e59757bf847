"""Gating real runs against the emulator: the same code twice passes, a slower model fails.

Each run is a pytester run of a suite whose tests call two emulated models; the reports it
writes are compared by ``llmperf compare`` and by ``--llm-baseline`` inside a run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_llmperf import cli
from pytest_llmperf.emulator.profiles import default_profiles_path
from pytest_llmperf.report import schema

TESTS = 20
SUITE = f"""
import pytest

@pytest.mark.parametrize("n", range({TESTS}))
def test_answers(ollama_client, n):
    for tier in ("fast", "balanced"):
        ollama_client.generate(tier=tier, prompt=f"question {{n}}", options={{"num_predict": 8}})
"""
# the shipped delays at 1/5: a call takes 50-120 ms, far above loopback noise
RUN = ["--llm-emulator-time-scale", "0.2", "--llm-cache", "off", "-p", "no:cacheprovider"]
SLOWER = 1.3


def slower_profiles(folder: Path) -> Path:
    """The shipped profiles with llama3.2:3b 30% slower at every step."""
    text = default_profiles_path().read_text(encoding="utf-8")
    head, marker, rest = text.partition('[models."llama3.2:3b"]')
    section, nxt, tail = rest.partition("\n[")
    changes = {
        "load_s = 2.2": f"load_s = {2.2 * SLOWER:.3f}",
        "prompt_tokens_per_s = 90.0": f"prompt_tokens_per_s = {90.0 / SLOWER:.3f}",
        "first_token_s = 0.06": f"first_token_s = {0.06 * SLOWER:.3f}",
        "\ntokens_per_s = 14.0": f"\ntokens_per_s = {14.0 / SLOWER:.3f}",
    }
    for old, new in changes.items():
        assert section.count(old) == 1, old
        section = section.replace(old, new)
    path = folder / "slower.toml"
    path.write_text(head + marker + section + nxt + tail, encoding="utf-8")
    return path


def run_suite(pytester: pytest.Pytester, report: str, *extra: str) -> pytest.RunResult:
    return pytester.runpytest("--llm-report", report, *RUN, *extra)


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(data, schema())
    return data


def test_same_code_passes_and_a_30_percent_slower_model_fails_naming_it_and_its_tests(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    slower = slower_profiles(pytester.path)
    run_suite(pytester, "base.json").assert_outcomes(passed=TESTS)
    run_suite(pytester, "same.json").assert_outcomes(passed=TESTS)
    run_suite(pytester, "slow.json", "--llm-emulator-profiles", str(slower)).assert_outcomes(
        passed=TESTS
    )
    capsys.readouterr()
    base, same, slow = (
        str(pytester.path / name) for name in ("base.json", "same.json", "slow.json")
    )

    assert cli.main(["compare", base, same]) == 0
    assert capsys.readouterr().out.startswith("no LLM latency regression against the baseline")

    markdown = pytester.path / "summary.md"
    assert cli.main(["compare", base, slow, "--markdown", str(markdown)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("LLM latency regression against the baseline in model llama3.2:3b")
    regressed = {line.split()[2] for line in out.splitlines() if line.startswith("regression")}
    assert regressed == {"llama3.2:3b"}
    # every test calls the slower model; the table names them, the Markdown lists all
    assert re.search(r"llama3\.2:3b \(total_s\) grew in: test_suite\.py::test_answers\[", out)
    text = markdown.read_text(encoding="utf-8")
    listed = set(re.findall(r"- `(test_suite\.py::test_answers\[\d+\])`", text))
    assert len(listed) >= TESTS * 3 // 4
    assert "`llama3.2:1b`" not in text

    # --warn reports the same and exits 0
    assert cli.main(["compare", base, slow, "--warn"]) == 0
    assert "regression" in capsys.readouterr().out


def test_the_baseline_gate_inside_a_run(pytester: pytest.Pytester) -> None:
    """A baseline twice as fast as the emulator: the run passes its tests and still fails."""
    pytester.makepyfile(test_suite=SUITE)
    run_suite(pytester, "base.json").assert_outcomes(passed=TESTS)
    faster = load(pytester.path / "base.json")
    for test in faster["tests"]:
        for call in test["calls"]:
            call["total_s"] /= 2
            call["ttft_s"] /= 2
    (pytester.path / "faster.json").write_text(json.dumps(faster), encoding="utf-8")

    result = run_suite(
        pytester, "now.json", "--llm-baseline", "faster.json", "--llm-baseline-markdown", "g.md"
    )
    result.assert_outcomes(passed=TESTS)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "LLM latency regression against the baseline in models llama3.2:1b, llama3.2:3b *",
            "status * scope * name * metric *",
            "regression * model * llama3.2:1b * total *",
        ]
    )
    now = load(pytester.path / "now.json")
    assert now["baseline"]["regressions"] >= 2
    assert now["baseline"]["baseline"] == "faster.json"
    assert (pytester.path / "g.md").read_text(encoding="utf-8").startswith("### :x:")

    warned = run_suite(
        pytester, "now.json", "--llm-baseline", "faster.json", "--llm-baseline-mode", "warn"
    )
    warned.assert_outcomes(passed=TESTS)
    assert warned.ret == pytest.ExitCode.OK
    warned.stdout.fnmatch_lines(["LLM latency regression against the baseline *"])

    itself = run_suite(pytester, "again.json", "--llm-baseline", "base.json")
    assert itself.ret == pytest.ExitCode.OK
    itself.stdout.fnmatch_lines(["no LLM latency regression against the baseline *"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "the baseline report missing.json does not exist: make one with `pytest --llm-report missing.json`"),
        ("{not json", "the baseline report missing.json is not JSON (line 1, column 2: *"),
        ('{"tests": 3}', "the baseline report missing.json is not a pytest-llmperf validation report*"),
        ('{"schema_version": 7, "tests": []}', "*has schema_version 7; this version of pytest-llmperf reads version 1"),
    ],
)  # fmt: skip
def test_a_bad_baseline_stops_the_run_before_it_starts(
    pytester: pytest.Pytester, content: str | None, message: str
) -> None:
    if content is not None:
        (pytester.path / "missing.json").write_text(content, encoding="utf-8")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--llm-baseline", "missing.json", *RUN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --llm-baseline: {message}"])


def test_llmperf_compare_on_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.json"
    good.write_text('{"schema_version": 1, "tests": []}', encoding="utf-8")
    assert cli.main(["compare", str(good), str(tmp_path / "nope.json")]) == 2
    assert "the current report" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        cli.main(["compare", str(good), str(good), "--threshold", "ten"])
    assert exited.value.code == 2
    assert "'ten' is not a relative change; write 10% or 0.1" in capsys.readouterr().err
    blocked = tmp_path / "file"
    blocked.write_text("x", encoding="utf-8")
    code = cli.main(["compare", str(good), str(good), "--markdown", str(blocked / "out.md")])
    assert code == 2
    assert "cannot write the comparison to" in capsys.readouterr().err


def test_the_llmperf_command_runs_compare(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text('{"schema_version": 1, "tests": []}', encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest_llmperf.cli", "compare", str(good), str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("no LLM latency regression")
