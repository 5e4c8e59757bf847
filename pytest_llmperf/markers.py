"""The names of the plugin's markers (kept apart so the plugin loads without its heavy parts)."""

from __future__ import annotations

SETTINGS = "llm_settings"
BUDGET = "llm_budget"
CASSETTE = "llm_cassette"
