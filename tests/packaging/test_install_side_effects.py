"""Installing pytest-llmperf changes nothing for a suite that makes no LLM calls.

A required dependency that is itself a pytest plugin activates in every suite of the
environment: pytest-benchmark prints its header, and pytest-asyncio (0.24 and later) warns in
its ``pytest_configure`` that ``asyncio_default_fixture_loop_scope`` is unset, which pytest's
warnings plugin turns into an INTERNALERROR under ``filterwarnings = error``. Both are extras.
"""

from __future__ import annotations

import re
import subprocess
import sys

import plain_install
import pytest

OPTIONAL_PLUGINS = {"pytest-asyncio": "asyncio", "pytest-benchmark": "benchmark"}


def test_no_optional_pytest_plugin_comes_with_a_plain_install() -> None:
    brought = plain_install.closure(plain_install.OURS)
    assert brought.isdisjoint(OPTIONAL_PLUGINS)
    for name, extra in OPTIONAL_PLUGINS.items():
        assert name in plain_install.required(plain_install.OURS, frozenset({extra}))
        assert name in plain_install.required(plain_install.OURS, frozenset({"dev"}))


BLOCKS_THE_OPTIONAL_PLUGINS = """
import importlib, pkgutil, sys

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"pytest_asyncio", "pytest_benchmark"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Absent())
import pytest_llmperf

for module in pkgutil.walk_packages(pytest_llmperf.__path__, "pytest_llmperf."):
    importlib.import_module(module.name)
print("imported", module.name)
"""


def test_every_module_imports_without_the_optional_plugins() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKS_THE_OPTIONAL_PLUGINS],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("imported pytest_llmperf.")


def comparable(lines: list[str]) -> list[str]:
    """The output without what may differ between two runs: timing and the plugins line."""
    kept = [line for line in lines if not line.startswith("plugins:")]
    return [re.sub(r" in \d+\.\d+s( \([^)]*\))? ", " in Ts ", line) for line in kept]


PLAIN_SUITE = """
import pytest

def test_plain():
    assert True

@pytest.mark.parametrize("n", [1, 2])
def test_parametrized(n):
    assert n
"""


@pytest.fixture(params=["ini", "command line"])
def plain_suite(
    request: pytest.FixtureRequest, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """A suite that makes no LLM call, warnings as errors; the arguments that run it."""
    monkeypatch.delenv("PYTEST_ADDOPTS")  # inner_runs.LEFT_OUT: this test keeps every plugin
    pytester.makepyfile(PLAIN_SUITE)
    if request.param == "ini":
        pytester.makeini("[pytest]\nfilterwarnings = error\n")
        return ["-p", "no:cacheprovider"]
    pytester.makeini("[pytest]\n")
    return ["-p", "no:cacheprovider", "-W", "error"]


def with_and_without_us(pytester: pytest.Pytester, args: list[str]) -> pytest.RunResult:
    """Run the suite with the plugin and under ``-p no:llmperf``: the same, or fail."""
    with_plugin = pytester.runpytest_subprocess(*args)
    without = pytester.runpytest_subprocess(*args, "-p", "no:llmperf")
    assert with_plugin.ret == without.ret
    assert comparable(with_plugin.outlines) == comparable(without.outlines)
    assert with_plugin.errlines == without.errlines
    return with_plugin


def test_a_plain_install_leaves_a_plain_suite_as_it_was(
    pytester: pytest.Pytester, plain_suite: list[str]
) -> None:
    # The dev extras installed here are left out: only the plugins a plain install brings.
    args = list(plain_suite)
    for name in sorted(plain_install.plugins_a_plain_install_leaves_out()):
        args += ["-p", f"no:{name}"]
    with_plugin = with_and_without_us(pytester, args)
    assert with_plugin.ret == pytest.ExitCode.OK, with_plugin.outlines[-20:]
    with_plugin.assert_outcomes(passed=3)
    assert with_plugin.errlines == []
    assert any(line.startswith("plugins:") and "llmperf" in line for line in with_plugin.outlines)
    assert not any(line.startswith("benchmark:") for line in with_plugin.outlines)


def test_beside_the_optional_plugins_a_plain_suite_runs_as_without_us(
    pytester: pytest.Pytester, plain_suite: list[str]
) -> None:
    """With pytest-asyncio and pytest-benchmark installed, whatever they do to the suite
    (pytest-asyncio 0.24+ stops it with an INTERNALERROR unless its loop scope is set), it
    is what they do without us."""
    with_and_without_us(pytester, plain_suite)
