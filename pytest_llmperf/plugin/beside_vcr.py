"""Beside pytest-recording: its vcrpy cassette leaves the LLM calls to ours.

A test with both ``@pytest.mark.vcr`` and our cassette would otherwise have vcrpy (which
wraps httpx's transports above our interception point) answer the LLM calls from its own
cassette, without their timing, and record them a second time. Through pytest-recording's
``pytest_recording_configure`` hook, its cassettes ignore a request to an LLM route while
one of our cassettes is in use: vcrpy passes such a request on to the real transport, where
our cassette replays or records it. Every other request stays vcrpy's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from pytest_llmperf.observe.point import POINT


def leave_llm_calls_to_ours(vcr: Any) -> None:
    """Make the cassettes of pytest-recording's ``vcr`` ignore what our cassettes hold."""
    merged = vcr.get_merged_config

    def get_merged_config(**kwargs: Any) -> Any:
        config = merged(**kwargs)
        config["before_record_request"] = _unless_ours(config["before_record_request"])
        return config

    vcr.get_merged_config = get_merged_config


def _unless_ours(before: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def before_record_request(request: Any) -> Any:
        if POINT.cassettes and POINT.routes().match(urlsplit(request.uri).path) is not None:
            return None  # one of our cassettes has this call, with its timing
        return before(request)

    return before_record_request
