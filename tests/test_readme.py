"""The README's Python examples run, so the README cannot lie."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def all_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def is_test(block: str) -> bool:
    return block.lstrip().startswith(("def test_", "@pytest.mark"))


def python_blocks() -> list[str]:
    return [block for block in all_blocks() if not is_test(block)]


def test_readme_python_examples_run() -> None:
    namespace: dict[str, object] = {}
    blocks = python_blocks()
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    tags = asyncio.run(namespace["in_process"]())  # type: ignore[operator]
    assert [m["name"] for m in tags["models"]] == ["llama3.2:1b", "llama3.2:3b", "llama3:8b"]


def test_fixture_example_in_readme_runs_in_examples() -> None:
    blocks = [block for block in all_blocks() if is_test(block)]
    example = (README.parent / "examples" / "test_readme_example.py").read_text(encoding="utf-8")
    assert len(blocks) >= 3
    assert all(block in example for block in blocks)
