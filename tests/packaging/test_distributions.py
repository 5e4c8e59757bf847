"""The sdist and the wheel, built as a release builds them: the licence travels in both."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.parser import HeaderParser
from importlib import metadata
from pathlib import Path

import pytest

import pytest_llmperf

REPO = Path(__file__).resolve().parents[2]
CLASSIFIERS = {
    "Development Status :: 3 - Alpha",
    "Framework :: Pytest",
    "Intended Audience :: Developers",
    "License :: OSI Approved :: MIT License",
    "Operating System :: OS Independent",
}


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist, then the wheel built from it (hatchling of the dev extra, no download)."""
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


def test_the_wheel_carries_the_licence(dists: dict[str, Path]) -> None:
    version = metadata.version("pytest-llmperf")
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        text = wheel.read(f"pytest_llmperf-{version}.dist-info/licenses/LICENSE").decode()
        fields = HeaderParser().parsestr(
            wheel.read(f"pytest_llmperf-{version}.dist-info/METADATA").decode()
        )
    assert text == (REPO / "LICENSE").read_text(encoding="utf-8")
    assert fields["License-Expression"] == "MIT"
    assert fields.get_all("License-File") == ["LICENSE"]


def test_the_sdist_carries_the_licence(dists: dict[str, Path]) -> None:
    version = metadata.version("pytest-llmperf")
    with tarfile.open(dists["sdist"]) as sdist:
        member = sdist.extractfile(f"pytest_llmperf-{version}/LICENSE")
        assert member is not None
        text = member.read().decode()
    assert text == (REPO / "LICENSE").read_text(encoding="utf-8")


def test_the_licence_is_mit_for_the_developers() -> None:
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n\nCopyright (c) 2026 pytest-llmperf developers\n")


def test_the_metadata_has_the_usual_classifiers_and_keywords() -> None:
    fields = metadata.metadata("pytest-llmperf")
    assert set(fields.get_all("Classifier") or []) >= CLASSIFIERS
    assert {"pytest", "llm", "ollama"} <= set((fields["Keywords"] or "").split(","))


def test_the_package_version_is_the_distributions() -> None:
    assert pytest_llmperf.__version__ == metadata.version("pytest-llmperf")
