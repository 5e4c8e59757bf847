"""Ollama's ``keep_alive`` values: Go duration strings, numbers of seconds, negative = forever."""

from __future__ import annotations

import math
import re
from typing import Any

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")

FOREVER = math.inf


def parse_go_duration(text: str) -> float:
    """Parse a Go ``time.ParseDuration`` string (``"10m"``, ``"1h30m"``, ``"-1s"``) to seconds."""
    body = text.strip()
    sign = -1.0 if body.startswith("-") else 1.0
    body = body.lstrip("+-")
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f'time: invalid duration "{text}"')
    position, total = 0, 0.0
    while position < len(body):
        match = _PART.match(body, position)
        if match is None:
            if re.fullmatch(r"[\d.]+", body[position:]):
                raise ValueError(f'time: missing unit in duration "{text}"')
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    return sign * total


def parse_keep_alive(value: Any) -> float:
    """Seconds a model stays loaded: ``math.inf`` for a negative value, 0 to unload now.

    A number is seconds; a string must carry a unit (``"3600"`` is refused, as by Ollama).
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"keep_alive must be a duration string or a number, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = parse_go_duration(value)
    else:
        raise ValueError(f"keep_alive must be a duration string or a number, got {value!r}")
    return FOREVER if seconds < 0 else seconds
