"""Cassettes: record LLM traffic once, replay it offline with its timing."""

from __future__ import annotations

from pytest_llmperf.cassettes.scrub import Scrubber
from pytest_llmperf.cassettes.session import (
    MODES,
    CassetteCutShortError,
    CassetteMismatchError,
    CassetteSession,
    parse_timing,
    patched,
)
from pytest_llmperf.cassettes.store import Cassette, CassetteError, Interaction

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
