"""``llmperf --version`` names the installed version, as other commands do."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from pytest_llmperf.cli import main


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"llmperf {metadata.version('pytest-llmperf')}\n"


def test_the_installed_command_answers_version() -> None:
    command = shutil.which("llmperf", path=str(Path(sys.executable).parent))
    assert command is not None, "the llmperf console script is not installed beside python"
    done = subprocess.run(
        [command, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"llmperf {metadata.version('pytest-llmperf')}\n"
