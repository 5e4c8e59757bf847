"""``llmperf report REPORT.json [--html OUT.html]``: the page, and one clear line for bad input."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from html_sample import sample

from pytest_llmperf import cli
from pytest_llmperf.errors import ConfigurationError
from pytest_llmperf.report import html as html_report


@pytest.fixture
def report_file(tmp_path: Path) -> Path:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(sample()), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, list[str], list[str]]:
    status = cli.main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err.splitlines()


def test_without_html_it_prints_the_summary_the_run_ended_with(
    capsys: pytest.CaptureFixture[str], report_file: Path
) -> None:
    status, out, err = run(capsys, "report", report_file)
    assert (status, err) == (0, [])
    assert out[0].split() == [
        "model",
        "calls",
        "p50",
        "s",
        "p95",
        "s",
        "TTFT",
        "p95",
        "tok/s",
        "cache",
        "over",
    ]
    assert out[-1] == "tests 67% (2/3), 6 LLM calls (and 2 outside any test), 2 budget violations"


def test_html_writes_the_page_readable_by_all(
    capsys: pytest.CaptureFixture[str], report_file: Path, tmp_path: Path
) -> None:
    pytest.importorskip("plotly", reason="the html extra (plotly) is not installed")
    page = tmp_path / "pages" / "run.html"  # its folder is made
    status, out, err = run(capsys, "report", report_file, "--html", page)
    assert (status, out, err) == (0, [f"llmperf: wrote {page}"], [])
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert page.stat().st_mode & 0o777 == 0o644
    assert os.listdir(page.parent) == ["run.html"]


def test_without_the_extra_it_says_what_to_install(
    capsys: pytest.CaptureFixture[str],
    report_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)  # import plotly raises ImportError
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    status, out, err = run(capsys, "report", report_file, "--html", tmp_path / "run.html")
    assert (status, out) == (2, [])
    assert err == [f"llmperf: error: {html_report.NEEDS_PLOTLY}"]
    assert "pip install 'pytest-llmperf[html]'" in err[0]
    assert not (tmp_path / "run.html").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "the validation report {path} does not exist: make one with `pytest --llm-report"),
        ("<html>", "the validation report {path} is not JSON (line 1, column 1: Expecting value)"),
        (b"\xff\xfe", "the validation report {path} is not text (UTF-8)"),
        ("[1, 2]", "the validation report {path} is not a pytest-llmperf validation report"),
        ('{"tests": [], "schema_version": 2}', "the validation report {path} has schema_version 2"),
        (
            '{"tests": [], "schema_version": 1, "run": {}, "models": {}}',
            "the validation report {path} is damaged: it has no 'summary' object",
        ),
    ],
)
@pytest.mark.parametrize("html", [False, True])
def test_bad_input_is_one_clear_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    content: str | bytes | None,
    message: str,
    html: bool,
) -> None:
    if html:
        pytest.importorskip("plotly", reason="the html extra (plotly) is not installed")
    path = tmp_path / "report.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    page = tmp_path / "run.html"
    status, out, err = run(capsys, "report", path, *(["--html", page] if html else []))
    assert (status, out, len(err)) == (2, [], 1)
    assert err[0].startswith(f"llmperf: error: {message.format(path=path)}")
    assert not page.exists()


@pytest.mark.parametrize("where", ["a folder", "under a file"])
def test_a_page_that_cannot_be_written_is_one_clear_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], report_file: Path, tmp_path: Path, where: str
) -> None:
    pytest.importorskip("plotly", reason="the html extra (plotly) is not installed")
    page = tmp_path / "out"
    page.mkdir()
    if where == "under a file":
        (page / "file").write_text("", encoding="utf-8")
        page = page / "file" / "run.html"
    status, out, err = run(capsys, "report", report_file, "--html", page)
    assert (status, out, len(err)) == (2, [], 1)
    assert err[0].startswith(f"llmperf: error: cannot write the HTML page to {page}: ")
    assert err[0].endswith("; choose a writable path with --html PATH")


def test_the_page_is_replaced_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "run.html"
    page.write_text("the old page", encoding="utf-8")

    def fail(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(ConfigurationError, match="No space left on device"):
        html_report.write(page, "the new page")
    assert page.read_text(encoding="utf-8") == "the old page"
    assert os.listdir(tmp_path) == ["run.html"]  # no temporary file left behind
