"""Requests both conformance suites send: the model, a tool (the validation scenarios') and a
JSON schema."""

from __future__ import annotations

from typing import Any

from pytest_llmperf.validate.suite.conftest import WEATHER_TOOL

__all__ = ["FAULT_HEADER", "MODEL", "PERSON_SCHEMA", "WEATHER_TOOL"]

MODEL = "llama3.2:1b"
FAULT_HEADER = "X-Llmperf-Fault"
PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
