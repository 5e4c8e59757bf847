"""Where reports go by default: a folder of our own that git ignores, newest kept."""

from __future__ import annotations

import json

import pytest

FAST = ["--llm-emulator-time-scale", "0.02", "-p", "no:cacheprovider"]
ONE_CALL = """
def test_one(ollama_client):
    assert ollama_client.generate(tier="fast", prompt="hi").response
"""


def test_reports_go_to_a_folder_that_ignores_itself_with_the_latest_at_a_fixed_name(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_one=ONE_CALL)
    for _ in range(3):
        pytester.runpytest(*FAST, "--llm-report-keep", "2").assert_outcomes(passed=1)
    folder = pytester.path / ".llmperf"
    kept = sorted(folder.glob("llm_validation_*.json"))
    assert len(kept) == 2  # the newest two of three
    latest = json.loads((folder / "latest.json").read_text(encoding="utf-8"))
    assert latest == json.loads(kept[-1].read_text(encoding="utf-8"))
    assert (folder / ".gitignore").read_text(encoding="utf-8").splitlines()[-1] == "*"
    assert not list(pytester.path.glob("llm_validation_*.json"))  # none beside the code
    assert not [p for p in folder.iterdir() if p.name.startswith(".llm")]  # no temporary left


def test_a_folder_the_user_names_is_not_made_to_ignore_itself_if_it_existed(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "reports").mkdir()
    pytester.makepyfile(test_one=ONE_CALL)
    pytester.runpytest(*FAST, "--llm-report-dir", "reports").assert_outcomes(passed=1)
    assert (pytester.path / "reports" / "latest.json").is_file()
    assert not (pytester.path / "reports" / ".gitignore").exists()


def test_a_report_path_that_is_a_folder_is_refused_and_nothing_is_left(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "taken").mkdir()
    pytester.makepyfile(test_one=ONE_CALL)
    result = pytester.runpytest(*FAST, "--llm-report", "taken")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "llmperf: cannot write the LLM validation report to taken: it is a directory, not a regular file*"
        ]
    )
    assert list((pytester.path / "taken").iterdir()) == []
