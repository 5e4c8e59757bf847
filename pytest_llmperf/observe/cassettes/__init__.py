"""Cassettes: record LLM traffic once, replay it offline with its timing."""

from __future__ import annotations

from pytest_llmperf.observe.cassettes.scrub import Scrubber
from pytest_llmperf.observe.cassettes.session import (
    MODES,
    CassetteCutShortError,
    CassetteMismatchError,
    CassetteSession,
    parse_timing,
    patched,
)
from pytest_llmperf.observe.cassettes.store import Cassette, CassetteError, Interaction

__all__ = [
    "MODES",
    "Cassette",
    "CassetteCutShortError",
    "CassetteError",
    "CassetteMismatchError",
    "CassetteSession",
    "Interaction",
    "Scrubber",
    "parse_timing",
    "patched",
]
