"""Reports written where they cannot be, and ``llmperf compare`` / ``report`` / ``serve`` and
``--llm-baseline`` given every kind of bad file or number: one line on stderr saying what and
where, exit status 2 (a usage error under pytest), no traceback, and the tests' results
unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_llmperf.cli import main

FAST = ["--llm-emulator-time-scale", "0.02", "-p", "no:cacheprovider"]
ONE_CALL = """
def test_call(ollama_client):
    ollama_client.generate(tier="fast", prompt="hi", options={"temperature": 0})
"""
CANNOT = "llmperf: cannot write the LLM validation report to {path}: {why}. Choose a writable place with --llm-report PATH or the llm_report_dir ini option; the test results themselves are not affected"


def special(root: Path, kind: str) -> tuple[Path, str]:
    """A report path of ``kind`` and why it cannot take a report."""
    if kind == "folder":
        (root / "folder").mkdir()
        return root / "folder", "it is a directory, not a regular file, and was left as it is"
    if kind == "fifo":
        os.mkfifo(root / "fifo")
        return root / "fifo", "it is a FIFO, not a regular file, and was left as it is"
    if kind == "under-a-file":
        (root / "afile").write_text("x")
        return root / "afile" / "r.json", f"{root / 'afile'} is a file, not a folder"
    if kind == "device":
        return Path("/dev/null"), "it is a device, not a regular file, and was left as it is"
    assert kind == "read-only-system"
    return Path("/proc/llmperf-report.json"), "*"


@pytest.mark.parametrize("kind", ["folder", "fifo", "under-a-file", "device", "read-only-system"])
def test_a_report_path_that_cannot_be_written_is_said_and_changes_no_result(
    pytester: pytest.Pytester, kind: str
) -> None:
    path, why = special(pytester.path, kind)
    before = path.stat().st_mode if path.exists() else None
    pytester.makepyfile(ONE_CALL)
    result = pytester.runpytest(*FAST, "--llm-report", str(path))
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([CANNOT.format(path=path, why=why)])
    assert "Traceback" not in result.stdout.str()
    assert (path.stat().st_mode if path.exists() else None) == before  # left as it was
    leftovers = (
        [p.name for p in path.parent.glob(f".{path.name}.*")] if path.parent.is_dir() else []
    )
    assert leftovers == []


REPORT = {"schema_version": 1, "tests": [{"nodeid": "t.py::t", "calls": []}]}


def bad_report(root: Path, kind: str) -> Path:
    path = root / f"{kind}.json"
    texts = {
        "empty": "",
        "truncated": json.dumps(REPORT)[:20],
        "not-utf8": "\udcff\udcfe",
        "a-list": "[1, 2]",
        "no-tests": '{"schema_version": 1}',
        "schema-2": '{"schema_version": 2, "tests": []}',
        "nan": '{"schema_version": 1, "tests": [{"nodeid": "a", "calls": [{"model": "m", "total_s": NaN}]}]}',
        "wrong-field": '{"schema_version": 1, "tests": [{"nodeid": "a", "calls": [{"model": "m", "total_s": "x"}]}]}',
        "no-nodeid": '{"schema_version": 1, "tests": [{"calls": []}]}',
        "calls-not-a-list": '{"schema_version": 1, "tests": [{"nodeid": "a", "calls": 3}]}',
        "deep": "[" * 100_000,
        "a-cassette": '{"version": 1, "interactions": []}',
    }
    if kind == "missing":
        return path
    if kind == "folder":
        path.mkdir()
        return path
    if kind == "fifo":
        os.mkfifo(path)
        return path
    path.write_bytes(texts[kind].encode("utf-8", errors="surrogateescape"))
    return path


BAD_REPORTS = {
    "missing": "the {role} report {path} does not exist: make one with `pytest --llm-report {path}`",
    "folder": "the {role} report {path} is not a regular file; make one with",
    "fifo": "the {role} report {path} is not a regular file; make one with",
    "empty": "the {role} report {path} is not JSON (line 1, column 1: Expecting value); make one",
    "truncated": "the {role} report {path} is not JSON (line 1, column ",
    "not-utf8": "the {role} report {path} is not text (UTF-8); make one with",
    "a-list": "the {role} report {path} is not a pytest-llmperf validation report (it has no 'tests' list)",
    "no-tests": "the {role} report {path} is not a pytest-llmperf validation report (it has no 'tests' list)",
    "a-cassette": "the {role} report {path} is not a pytest-llmperf validation report (it has no 'tests' list)",
    "schema-2": "the {role} report {path} has schema_version 2; this version of pytest-llmperf reads version 1",
    "nan": "the {role} report {path} is not JSON (NaN is not a number JSON allows)",
    "wrong-field": "the {role} report {path} is damaged: tests[0].calls[0] (a): total_s is 'x', not a number of seconds",
    "no-nodeid": "the {role} report {path} is damaged: tests[0] has no 'nodeid' string",
    "calls-not-a-list": "the {role} report {path} is damaged: tests[0] (a): 'calls' is not a list",
    "deep": "the {role} report {path} is not JSON (it is nested too deeply)",
}


@pytest.mark.parametrize("side", ["baseline", "current"])
@pytest.mark.parametrize("kind", sorted(BAD_REPORTS))
def test_compare_on_a_bad_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, side: str
) -> None:
    bad = bad_report(tmp_path, kind)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(REPORT))
    args = [str(bad), str(good)] if side == "baseline" else [str(good), str(bad)]
    assert main(["compare", *args]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    expected = "llmperf: error: " + BAD_REPORTS[kind].format(role=side, path=bad)
    assert err.startswith(expected), err
    assert err.count("\n") == 1


@pytest.mark.parametrize("kind", ["missing", "truncated", "deep", "fifo"])
def test_llmperf_report_on_a_bad_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    bad = bad_report(tmp_path, kind)
    assert main(["report", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(
        "llmperf: error: " + BAD_REPORTS[kind].format(role="validation", path=bad)
    ), err
    assert err.count("\n") == 1


@pytest.mark.parametrize("kind", ["missing", "truncated", "schema-2", "fifo"])
def test_a_bad_baseline_stops_the_run_before_it_starts(
    pytester: pytest.Pytester, kind: str
) -> None:
    bad = bad_report(pytester.path, kind)
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "no:cacheprovider", "--llm-baseline", str(bad))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    expected = "ERROR: --llm-baseline: " + BAD_REPORTS[kind].format(role="baseline", path=bad)
    assert result.stderr.lines[0].startswith(expected), result.stderr.lines[0]
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threshold", "fast"], "argument --threshold: 'fast' is not a relative change"),
        (["--threshold=-5%"], "argument --threshold: must be above 0 and at most 1000%"),
        (["--alpha", "2"], "argument --alpha: must be between 0 and 1 (e.g. 0.01), got 2"),
        (["--alpha", "nan"], "argument --alpha: "),
    ],
)
def test_compare_with_a_bad_number_is_refused_by_its_parser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(REPORT))
    with pytest.raises(SystemExit) as caught:
        main(["compare", str(good), str(good), *args])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"llmperf compare: error: {message}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("option", ["--markdown", "--json"])
def test_compare_output_that_cannot_be_written_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(REPORT))
    (tmp_path / "out").mkdir()
    assert main(["compare", str(good), str(good), option, str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmperf: error: cannot write ") and str(tmp_path / "out") in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "99999"], "argument --port: must be a port number from 0 to 65535"),
        (["--port", "http"], "argument --port: must be a port number from 0 to 65535"),
        (["--time-scale", "fast"], "argument --time-scale: "),
        (["--profiles", "/no/such/profiles.toml"], "/no/such/profiles.toml"),
        (["--gguf", "no-equals-sign"], "--gguf takes NAME=PATH"),
    ],
)
def test_serve_with_a_bad_argument_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    command = [sys.executable, "-m", "pytest_llmperf.cli", "serve", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert "OverflowError" not in done.stderr
