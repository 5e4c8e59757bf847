"""An interrupted run's report says so; the report replaces nothing but a regular file and
leaves no temporary file behind, whatever fails."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_llmperf import ConfigurationError
from pytest_llmperf.report.document import schema, write

FAST = ["--llm-emulator-time-scale", "0.02", "-p", "no:cacheprovider"]
STOPPING = """
import pytest

def test_first(ollama_client):
    ollama_client.generate(tier="fast", prompt="one")

def test_stopped(ollama_client):
    ollama_client.generate(tier="fast", prompt="two")
    {stop}

def test_never_reached(ollama_client):
    ollama_client.generate(tier="fast", prompt="three")
"""


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(data, schema())
    return data


@pytest.mark.parametrize(
    ("stop", "reason"),
    [
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
        ("pytest.exit('enough for today')", "pytest.exit: enough for today"),
    ],
)
def test_an_interrupted_run_says_so_and_names_the_test_that_was_running(
    pytester: pytest.Pytester, stop: str, reason: str
) -> None:
    pytester.makepyfile(test_stop=STOPPING.format(stop=stop))
    result = pytester.runpytest("--llm-report", "report.json", *FAST, no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    data = load(pytester.path / "report.json")
    assert data["run"]["interrupted"] == {
        "reason": reason,
        "running": ["test_stop.py::test_stopped"],
    }
    tests = {t["nodeid"].split("::")[1]: t for t in data["tests"]}
    assert sorted(tests) == ["test_first", "test_stopped"]
    assert tests["test_first"]["outcome"] == "passed"
    stopped = tests["test_stopped"]
    # the call it finished before the interrupt is kept, the verdict is not "passed"
    assert (stopped["outcome"], len(stopped["calls"])) == ("interrupted", 1)
    summary = data["summary"]
    assert (summary["passed"], summary["interrupted"], summary["calls"]) == (1, 1, 2)
    assert summary["success"] == "50% (1/2)"
    result.stdout.fnmatch_lines([f"interrupted ({reason}) while running test_stop.py::*"])


def test_a_run_that_ends_normally_has_no_interruption(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_stop=STOPPING.format(stop="pass"))
    pytester.runpytest("--llm-report", "report.json", "-x", *FAST).assert_outcomes(passed=3)
    data = load(pytester.path / "report.json")
    assert data["run"]["interrupted"] is None
    assert data["summary"]["interrupted"] == 0


def test_the_schema_refuses_an_interruption_without_the_running_tests(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_stop=STOPPING.format(stop="raise KeyboardInterrupt"))
    pytester.runpytest("--llm-report", "report.json", *FAST, no_reraise_ctrlc=True)
    data = load(pytester.path / "report.json")
    del data["run"]["interrupted"]["running"]
    with pytest.raises(jsonschema.ValidationError, match="'running' is a required property"):
        jsonschema.validate(data, schema())


def special(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "report.json"
    if kind == "symlink":
        (tmp_path / "elsewhere.json").write_text("keep me", encoding="utf-8")
        path.symlink_to(tmp_path / "elsewhere.json")
    elif kind == "dangling symlink":
        path.symlink_to(tmp_path / "missing.json")
    elif kind == "directory":
        path.mkdir()
    elif kind == "FIFO":
        os.mkfifo(path)
    elif kind == "device":
        try:
            os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # what /dev/null is
        except PermissionError:
            pytest.skip("making a device file needs root")
    return path


@pytest.mark.parametrize(
    ("kind", "shown"),
    [
        ("symlink", "a symlink"),
        ("dangling symlink", "a symlink"),
        ("directory", "a directory"),
        ("FIFO", "a FIFO"),
        ("device", "a device"),
    ],
)
def test_a_report_path_that_is_not_a_regular_file_is_refused_and_left_alone(
    tmp_path: Path, kind: str, shown: str
) -> None:
    path = special(tmp_path, kind)
    before = os.lstat(path)
    with pytest.raises(ConfigurationError) as caught:
        write(path, {"schema_version": 1})
    assert str(caught.value).startswith(
        f"cannot write the LLM validation report to {path}: it is {shown}, not a regular "
        "file, and was left as it is. Choose a writable place with --llm-report PATH"
    )
    after = os.lstat(path)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    if kind == "symlink":
        assert (tmp_path / "elsewhere.json").read_text(encoding="utf-8") == "keep me"
    assert list(tmp_path.glob(".*")) == []


def test_a_report_write_on_a_full_disk_leaves_the_old_report_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "report.json"
    path.write_text('{"old": true}', encoding="utf-8")

    def full(handle: int, *args: object, **kwargs: object) -> Any:
        os.close(handle)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("pytest_llmperf.files.os.fdopen", full)
    with pytest.raises(ConfigurationError, match="No space left on device"):
        write(path, {"schema_version": 1})
    assert path.read_text(encoding="utf-8") == '{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_report_larger_than_the_disk_leaves_the_old_report_and_no_temporary_file(
    tiny_disk: Path,
) -> None:
    path = tiny_disk / "report.json"
    path.write_text('{"old": true}', encoding="utf-8")
    with pytest.raises(ConfigurationError, match="No space left on device"):
        write(path, {"schema_version": 1, "padding": "x" * 100_000})
    assert path.read_text(encoding="utf-8") == '{"old": true}'
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["report.json"]
