"""The README's Python examples run, so the README cannot lie."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import own_loop
import pytest

from pytest_llmperf.plugin.settings import MOVED, OPTIONS
from pytest_llmperf.report.document import schema

FAST = ["--llm-emulator-time-scale", "0.02", "-p", "no:cacheprovider"]

README = Path(__file__).resolve().parents[1] / "README.md"


def all_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def is_test(block: str) -> bool:
    return block.lstrip().startswith(("def test_", "@pytest.mark"))


def is_conftest(block: str) -> bool:
    return "def pytest_" in block


def python_blocks() -> list[str]:
    return [block for block in all_blocks() if not (is_test(block) or is_conftest(block))]


def test_readme_python_examples_run() -> None:
    namespace: dict[str, object] = {}
    blocks = python_blocks()
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    tags = own_loop.run(namespace["in_process"]())  # type: ignore[operator]
    assert [m["name"] for m in tags["models"]] == ["llama3.2:1b", "llama3.2:3b", "llama3:8b"]


def test_fixture_example_in_readme_runs_in_examples() -> None:
    blocks = [block for block in all_blocks() if is_test(block)]
    example = (README.parent / "examples" / "test_readme_example.py").read_text(encoding="utf-8")
    assert len(blocks) >= 3
    assert all(block in example for block in blocks)


def test_conftest_examples_in_readme_are_in_the_examples_conftest() -> None:
    blocks = [block for block in all_blocks() if is_conftest(block)]
    conftest = (README.parent / "examples" / "conftest.py").read_text(encoding="utf-8")
    assert blocks
    assert all(block in conftest for block in blocks)


def test_the_report_hook_example_adds_to_the_report(pytester: pytest.Pytester) -> None:
    [hook] = [block for block in all_blocks() if "def pytest_llmperf_report" in block]
    pytester.makeconftest(hook)
    pytester.makepyfile(
        """
        def test_one(ollama_client):
            ollama_client.generate(tier="fast", prompt="hi")
        """
    )
    result = pytester.runpytest("--llm-report", "r.json", "-m", "not slow", *FAST)
    result.assert_outcomes(passed=1)
    data = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, schema())
    assert data["extra"] == {"selected": "not slow"}


def test_the_network_block_example_runs_with_the_block_on(pytester: pytest.Pytester) -> None:
    [example] = [block for block in all_blocks() if "def test_nothing_but_the_emulator" in block]
    pytester.makepyfile(f"import socket\n\nimport pytest\n\nimport pytest_llmperf\n\n\n{example}")
    pytester.runpytest("--llm-block-network", "on", *FAST).assert_outcomes(passed=1)
    # the example checks what it says: with another host allowed, its raises fails
    allowed = ["--llm-block-network", "on", "--llm-allowed-host", "127.0.0.1"]
    pytester.runpytest(*allowed, *FAST).assert_outcomes(failed=1)


def section(title: str) -> str:
    """The README's text under the heading ``title``, to the next heading."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n### {title}\n")
    return text[start : text.index("\n#", start + 1)]


def test_the_settings_table_spells_every_option_as_the_plugin_does() -> None:
    rows = [line for line in section("Settings").splitlines() if line.startswith("| ")]
    for option in OPTIONS:
        [row] = [row for row in rows if f"`{option.ini}`" in row]
        assert f"`{option.env}`" in row and f"`{option.flag}" in row, row


def test_what_moved_lists_every_old_spelling_with_its_new_one() -> None:
    rows = [line for line in section("What moved").splitlines() if line.startswith("| ")]
    moved = rows[2:]  # past the header and its rule
    assert len(moved) == len(MOVED)
    for old in MOVED:
        assert f"| {old.what.replace('option', 'key')} `{old.old}` | `{old.new}` |" in moved


def test_the_readme_has_no_relative_links_which_pypi_would_show_dead() -> None:
    """Links only: the page's screenshot is an image, which PyPI will not show until the
    project has a public home to point it at (the wheel's metadata has no URLs yet)."""
    text = README.read_text(encoding="utf-8")
    relative = re.findall(r"(?<!!)\[[^\]]*\]\((?!https?://|#)([^)]+)\)", text)
    assert relative == []
