"""The HTML page in a real browser (headless Chromium, offline): the charts are drawn, the
tables are there, no script fails; and a screenshot to look at.

The screenshot is kept in the test's tmp dir and copied to ``.llmperf/report-screenshot.png``
under the rootdir (git-ignored), where a person or a CI artifact step finds it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from html_sample import sample

from pytest_llmperf.report import html as html_report

pytest.importorskip("plotly", reason="the html extra (plotly) is not installed")

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SCREENSHOT = Path(".llmperf") / "report-screenshot.png"
# Written first into the page's <head>: every script error and rejected promise lands on the
# <html> element, which the dumped DOM shows.
CATCH_ERRORS = """<script>
window.__errors = [];
function __note(message) {
  window.__errors.push(String(message));
  document.documentElement.setAttribute("data-script-errors", window.__errors.join(" | "));
}
window.addEventListener("error", function (e) { __note(e.message); });
window.addEventListener("unhandledrejection", function (e) { __note(e.reason); });
</script>"""
WIDTH, HEIGHT = 1280, 5200


@pytest.fixture(scope="module")
def browser() -> str:
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        message = "headless Chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; under CI this test must run", pytrace=False)
        pytest.skip(message)
    return found


def render_in(browser: str, page: Path, screenshot: Path, profile: Path) -> tuple[str, str]:
    """The DOM after the page's scripts ran, and Chromium's log; the screenshot is saved."""
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--hide-scrollbars",
            f"--window-size={WIDTH},{HEIGHT}",
            "--virtual-time-budget=10000",
            f"--screenshot={screenshot}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def test_the_page_draws_its_charts_and_tables_without_a_script_error(
    browser: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    page = tmp_path / "report.html"
    text = html_report.render(sample())
    page.write_text(text.replace("<head>", "<head>" + CATCH_ERRORS, 1), encoding="utf-8")
    screenshot = tmp_path / "report.png"
    dom, log = render_in(browser, page, screenshot, tmp_path / "profile")

    errors = re.search(r'data-script-errors="([^"]*)"', dom)
    assert errors is None, errors.group(1)
    assert "Uncaught" not in log, [line for line in log.splitlines() if "CONSOLE" in line]
    # plotly drew every chart: a plot container with its SVG in each figure's div
    assert dom.count('class="plot-container plotly"') == 5
    assert dom.count('class="main-svg"') >= 10
    for title in (
        "Latency per call, by model",
        "Time to first token against total time",
        "Cold against warm calls",
        "Slowest call per test, against its budget",
        "Optimizations: before and after",
        "time to first token (s)",
        "total time (s)",
    ):
        assert f">{title}</text>" in dom, title
    for section in ("summary", "models", "recommendations", "session", "optimizations", "tests"):
        assert f'<section id="{section}">' in dom, section
    assert "<td>llama3:8b</td>" in dom
    # a test id with markup in it is shown as written, in the tables and on the chart's axis
    assert dom.count("test_answer[&lt;b&gt;bold&lt;/b&gt;]</text>") == 1
    assert "test_answer[&lt;b&gt;bold&lt;/b&gt;]</code>" in dom

    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 50_000  # a page, not a blank
    keep = request.config.rootpath / SCREENSHOT
    keep.parent.mkdir(exist_ok=True)
    if not (keep.parent / ".gitignore").exists():  # as the report folder ignores itself
        (keep.parent / ".gitignore").write_text("*\n", encoding="utf-8")
    shutil.copyfile(screenshot, keep)
