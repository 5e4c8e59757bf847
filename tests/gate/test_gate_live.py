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
from pytest_llmperf.report.document import schema

TESTS = 10
SUITE = f"""
import pytest

@pytest.mark.parametrize("n", range({TESTS}))
def test_answers(ollama_client, n):
    for model in ("steady-small:1b", "steady-large:3b"):
        ollama_client.generate(model=model, prompt=f"question {{n}}")
"""
# Calls of 0.2-0.4 s that are mostly the emulator's timed waits: a busy machine adds a few
# milliseconds of CPU to each, far below the 10% threshold.
PROFILES = """
[server]
num_parallel = 1

[models."steady-small:1b"]
load_s = 0.02
first_token_s = 0.2
tokens_per_s = 200.0
jitter = 0.05
response_tokens = [4, 4]

[models."steady-large:3b"]
load_s = 0.02
first_token_s = {first}
tokens_per_s = {rate}
jitter = 0.05
response_tokens = [4, 4]
"""
SLOWER = 1.3


def profiles(folder: Path, slower: float = 1.0) -> Path:
    """Two steady models; the large one ``slower`` times slower at every step."""
    path = folder / f"profiles-{slower}.toml"
    text = PROFILES.format(first=0.3 * slower, rate=200.0 / slower)
    path.write_text(text, encoding="utf-8")
    return path


FAST_RUN = ["--llm-emulator-time-scale", "0.2", "--llm-cache", "off", "-p", "no:cacheprovider"]
RUN = ["--llm-cache", "off", "-p", "no:cacheprovider"]


def run_suite(pytester: pytest.Pytester, report: str, *extra: str) -> pytest.RunResult:
    return pytester.runpytest("--llm-report", report, *extra)


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(data, schema())
    return data


def scaled(folder: Path, source: str, target: str, factor: float) -> None:
    """Write ``target``: the report ``source`` with every call's times multiplied by ``factor``."""
    data = load(folder / source)
    for test in data["tests"]:
        for call in test["calls"]:
            call["total_s"] *= factor
            call["ttft_s"] *= factor
    (folder / target).write_text(json.dumps(data), encoding="utf-8")


def test_same_code_passes_and_a_30_percent_slower_model_fails_naming_it_and_its_tests(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    shipped = ["--llm-emulator-profiles", str(profiles(pytester.path)), *RUN]
    slower = ["--llm-emulator-profiles", str(profiles(pytester.path, SLOWER)), *RUN]
    run_suite(pytester, "base.json", *shipped).assert_outcomes(passed=TESTS)
    run_suite(pytester, "same.json", *shipped).assert_outcomes(passed=TESTS)
    run_suite(pytester, "slow.json", *slower).assert_outcomes(passed=TESTS)
    capsys.readouterr()
    base, same, slow = (
        str(pytester.path / name) for name in ("base.json", "same.json", "slow.json")
    )

    assert cli.main(["compare", base, same]) == 0
    assert capsys.readouterr().out.startswith("no LLM latency regression against the baseline")

    markdown = pytester.path / "summary.md"
    assert cli.main(["compare", base, slow, "--markdown", str(markdown)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("LLM latency regression against the baseline in model steady-large:3b")
    regressed = {line.split()[2] for line in out.splitlines() if line.startswith("regression")}
    assert regressed == {"steady-large:3b"}
    # every test calls the slower model; the table names some, the Markdown lists them all
    assert re.search(r"steady-large:3b \(total_s\) grew in: test_suite\.py::test_answers\[", out)
    text = markdown.read_text(encoding="utf-8")
    listed = set(re.findall(r"- `(test_suite\.py::test_answers\[\d+\])`", text))
    assert len(listed) >= TESTS * 3 // 4
    assert "`steady-small:1b`" not in text

    # --warn reports the same and exits 0
    assert cli.main(["compare", base, slow, "--warn"]) == 0
    assert "regression" in capsys.readouterr().out


def test_the_baseline_gate_inside_a_run(pytester: pytest.Pytester) -> None:
    """A baseline twice as fast as the emulator: the run passes its tests and still fails."""
    pytester.makepyfile(test_suite=SUITE)
    fast = ["--llm-emulator-profiles", str(profiles(pytester.path)), *FAST_RUN]
    run_suite(pytester, "base.json", *fast).assert_outcomes(passed=TESTS)
    scaled(pytester.path, "base.json", "faster.json", 0.5)

    result = run_suite(
        pytester,
        "now.json",
        "--llm-baseline",
        "faster.json",
        "--llm-baseline-markdown",
        "g.md",
        *fast,
    )
    result.assert_outcomes(passed=TESTS)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "LLM latency regression against the baseline in models steady-large:3b, "
            "steady-small:1b *",
            "status * scope * name * metric *",
            "regression * model * steady-large:3b * total *",
        ]
    )
    now = load(pytester.path / "now.json")
    assert now["baseline"]["regressions"] >= 2
    assert now["baseline"]["baseline"] == "faster.json"
    (pytester.path / "g.md").write_text("earlier steps\n", encoding="utf-8")
    warned = run_suite(
        pytester,
        "now.json",
        "--llm-baseline",
        "faster.json",
        "--llm-baseline-mode",
        "warn",
        "--llm-baseline-markdown",
        "g.md",
        *fast,
    )
    warned.assert_outcomes(passed=TESTS)
    assert warned.ret == pytest.ExitCode.OK
    warned.stdout.fnmatch_lines(["LLM latency regression against the baseline *"])
    # appended, as GitHub's job summary file expects
    assert (pytester.path / "g.md").read_text(encoding="utf-8").startswith("earlier steps\n### :x:")

    scaled(pytester.path, "base.json", "slower.json", 2.0)
    better = run_suite(pytester, "again.json", "--llm-baseline", "slower.json", *fast)
    assert better.ret == pytest.ExitCode.OK
    better.stdout.fnmatch_lines(["no LLM latency regression against the baseline *"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "the baseline report missing.json does not exist: make one with `pytest --llm-report missing.json`"),
        ("{not json", "the baseline report missing.json is not JSON (line 1, column 2: *"),
        ("binary", "the baseline report missing.json is not text (UTF-8); make one with *"),
        ('{"tests": 3}', "the baseline report missing.json is not a pytest-llmperf validation report*"),
        ('{"schema_version": 7, "tests": []}', "*has schema_version 7; this version of pytest-llmperf reads version 1"),
        ('{"schema_version": 1, "tests": [{"nodeid": "t", "calls": [{"model": "m", "total_s": "slow"}]}]}', "the baseline report missing.json is damaged: tests[[]0].calls[[]0] (t): total_s is 'slow', not a number of seconds; *"),
        ('{"schema_version": 1, "tests": [{"calls": []}]}', "*is damaged: tests[[]0] has no 'nodeid' string*"),
        ('{"schema_version": 1, "tests": [], "x": NaN}', "*is not JSON (NaN is not a number JSON allows)*"),
    ],
)  # fmt: skip
def test_a_bad_baseline_stops_the_run_before_it_starts(
    pytester: pytest.Pytester, content: str | None, message: str
) -> None:
    if content is not None:
        (pytester.path / "missing.json").write_text(content, encoding="utf-8")
    if content == "binary":
        (pytester.path / "missing.json").write_bytes(b"\xff\xfe\x00garbage")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--llm-baseline", "missing.json", *FAST_RUN)
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
    with pytest.raises(SystemExit):
        cli.main(["compare", str(good), str(good), "--threshold", "10"])
    assert "10 as a fraction is 1000%: write 10% if you mean that percentage" in (
        capsys.readouterr().err
    )
    damaged = tmp_path / "damaged.json"
    damaged.write_text('{"schema_version": 1, "tests": ["x"]}', encoding="utf-8")
    assert cli.main(["compare", str(good), str(damaged)]) == 2
    assert "the current report" in capsys.readouterr().err
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
    assert done.stdout.startswith("nothing to compare with the baseline")
