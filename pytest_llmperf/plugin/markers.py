"""The names of the plugin's markers (kept apart so the plugin loads without its heavy parts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

SETTINGS = "llm_settings"
BUDGET = "llm_budget"
CASSETTE = "llm_cassette"
UNMEASURED = "llm_unmeasured"
NAMES = frozenset({SETTINGS, BUDGET, CASSETTE, UNMEASURED})


def on(node: pytest.Item) -> set[str]:
    """The names of our markers on ``node`` or a node above it (usually none: a quick look)."""
    return {
        mark.name
        for parent in node.iter_parents()
        for mark in parent.own_markers
        if mark.name in NAMES
    }
