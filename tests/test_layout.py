"""The package's layout rules: which folder may import which (each folder's ``__init__`` says).

Every import counts, at the top of a module, inside a function or under ``TYPE_CHECKING``, and
so does a module named in a string to :func:`importlib.import_module`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_llmperf"

# folder (or top-level module) -> the parts of the package it must never import
FORBIDDEN = {
    "client": {"plugin", "report", "judge", "emulator", "cli"},
    "observe": {"plugin", "report", "judge", "emulator", "cli"},
    "judge": {"plugin", "report", "emulator", "cli"},
    "report": {"plugin", "emulator", "cli"},
    "emulator": {"plugin", "report", "judge", "client", "observe", "cli"},
    "errors": {"client", "observe", "judge", "report", "plugin", "emulator", "cli"},
    "files": {"client", "observe", "judge", "report", "plugin", "emulator", "cli"},
    "stats": {"client", "observe", "judge", "report", "plugin", "emulator", "cli"},
    "plugin": {"cli"},
}


def _part(module: str) -> str | None:
    """``pytest_llmperf.client.calls`` -> ``client``; None outside the package."""
    names = module.split(".")
    if names[0] != "pytest_llmperf":
        return None
    return names[1] if len(names) > 1 else ""


def _imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "pytest_llmperf":
                for alias in node.names:
                    yield node.lineno, f"pytest_llmperf.{alias.name}"
            else:
                yield node.lineno, node.module
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("pytest_llmperf.")
            and " " not in node.value
        ):
            yield node.lineno, node.value


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _owner(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_module_imports_only_what_its_folder_may(path: Path) -> None:
    owner = _owner(path)
    forbidden = FORBIDDEN.get(owner, set())
    broken = [
        f"line {line}: {module}"
        for line, module in _imports(ast.parse(path.read_text(encoding="utf-8")))
        if _part(module) in forbidden
    ]
    assert not broken, f"{owner}/ must not import {sorted(forbidden)}: {broken}"


def test_every_folder_says_what_it_is_and_what_it_may_import() -> None:
    for folder in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()):
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text(encoding="utf-8")))
        assert doc, f"{folder.name}/__init__.py has no docstring"
        assert "import" in doc, f"{folder.name}/__init__.py does not say what it may import"


def test_the_rules_see_a_forbidden_import(tmp_path: Path) -> None:
    source = "def f():\n    from pytest_llmperf.plugin import hooks\n"
    found = [_part(m) for _, m in _imports(ast.parse(source))]
    assert "plugin" in found


LONGEST = 60  # lines a function of the package may take, its docstring and decorators included


def test_no_function_is_longer_than_a_screen() -> None:
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                assert node.end_lineno is not None
                if node.end_lineno - first + 1 > LONGEST:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert not long, f"functions over {LONGEST} lines: {long}"
