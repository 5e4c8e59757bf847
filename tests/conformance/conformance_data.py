"""Requests both conformance suites send: the model, a tool and a JSON schema."""

from __future__ import annotations

from typing import Any

MODEL = "llama3.2:1b"
FAULT_HEADER = "X-Llmperf-Fault"
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
