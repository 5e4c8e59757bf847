"""Fault injection: what can go wrong with a request, set per model or per request.

A request asks for faults with the ``X-Llmperf-Fault`` header: faults separated by commas,
each a kind followed by ``;key=value`` parameters::

    X-Llmperf-Fault: status=503
    X-Llmperf-Fault: error-line; after=3; message=CUDA error: out of memory
    X-Llmperf-Fault: stall; after=2; seconds=1.5, drop; after=6
    X-Llmperf-Fault: slow-first-token; seconds=2
    X-Llmperf-Fault: unknown-model

A profile lists the same faults as tables (``{kind = "stall", after = 2, seconds = 1.5}``),
optionally with ``every = N`` to hit only every N-th request to that model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pytest_llmperf.errors import FaultSpecError

FAULT_HEADER = "x-llmperf-fault"


class FaultKind(str, Enum):
    STATUS = "status"
    ERROR_LINE = "error-line"
    STALL = "stall"
    DROP = "drop"
    SLOW_FIRST_TOKEN = "slow-first-token"
    UNKNOWN_MODEL = "unknown-model"


DEFAULT_MESSAGES = {
    400: "invalid request",
    404: "not found",
    429: "too many requests",
    499: "request canceled",
    500: "an error was encountered while running the model: internal error",
    503: "server busy, please try again.  maximum pending requests exceeded",
}
ERROR_LINE_MESSAGE = "an error was encountered while running the model: unexpected EOF"

_PARAMETERS: dict[FaultKind, set[str]] = {
    FaultKind.STATUS: {"status", "message"},
    FaultKind.ERROR_LINE: {"after", "message"},
    FaultKind.STALL: {"after", "seconds"},
    FaultKind.DROP: {"after"},
    FaultKind.SLOW_FIRST_TOKEN: {"seconds"},
    FaultKind.UNKNOWN_MODEL: set(),
}


@dataclass(frozen=True)
class FaultSpec:
    """One fault: its kind, after how many output chunks it strikes, and its parameters."""

    kind: FaultKind
    after: int = 0
    seconds: float = 0.0
    status: int = 500
    message: str = ""
    every: int = 1

    @property
    def error_message(self) -> str:
        if self.message:
            return self.message
        if self.kind is FaultKind.ERROR_LINE:
            return ERROR_LINE_MESSAGE
        return DEFAULT_MESSAGES.get(self.status, f"injected error with status {self.status}")


def parse_fault_header(value: str) -> tuple[FaultSpec, ...]:
    """Parse the ``X-Llmperf-Fault`` header value into fault specs."""
    faults = []
    for entry in value.split(","):
        if not entry.strip():
            continue
        head, *params = [part.strip() for part in entry.split(";")]
        fields: dict[str, Any] = {}
        if "=" in head:  # "status=503" is a shorthand for "status; status=503"
            kind, _, first = head.partition("=")
            head = kind.strip()
            fields[head] = first.strip()
        for param in params:
            key, sep, val = param.partition("=")
            if not sep:
                raise FaultSpecError(
                    f"fault parameter {param!r} in {entry.strip()!r} needs key=value"
                )
            fields[key.strip()] = val.strip()
        faults.append(_build(head, fields, origin=f"header {FAULT_HEADER}: {entry.strip()!r}"))
    return tuple(faults)


def parse_fault_table(table: Mapping[str, Any]) -> FaultSpec:
    """Parse one fault table from a profile file."""
    fields = dict(table)
    kind = fields.pop("kind", None)
    if not isinstance(kind, str):
        raise FaultSpecError(f"a fault needs kind = one of {_kinds()}, got {kind!r}")
    every = fields.pop("every", 1)
    spec = _build(kind, fields, origin=f"fault {dict(table)!r}")
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise FaultSpecError(
            f"fault {spec.kind.value!r}: every must be a whole number >= 1 (1: every request), "
            f"got {every!r} (in fault {dict(table)!r})"
        )
    return FaultSpec(spec.kind, spec.after, spec.seconds, spec.status, spec.message, every)


def active_faults(faults: Iterable[FaultSpec], request_number: int) -> tuple[FaultSpec, ...]:
    """The faults that strike the ``request_number``-th request (1-based) to a model."""
    return tuple(f for f in faults if request_number % f.every == 0)


def _kinds() -> list[str]:
    return [k.value for k in FaultKind]


def _build(kind_name: str, fields: Mapping[str, Any], origin: str) -> FaultSpec:
    try:
        kind = FaultKind(kind_name)
    except ValueError:
        raise FaultSpecError(
            f"unknown fault kind {kind_name!r} in {origin}; kinds: {_kinds()}"
        ) from None
    unknown = set(fields) - _PARAMETERS[kind]
    if unknown:
        raise FaultSpecError(
            f"fault {kind.value!r} takes {sorted(_PARAMETERS[kind]) or 'no parameters'}, "
            f"not {sorted(unknown)} (in {origin})"
        )
    after = _whole(kind, fields, "after", 0, 0, None, "a whole number of chunks >= 0", origin)
    seconds = _seconds(kind, fields, origin)
    status = _whole(kind, fields, "status", 500, 400, 599, "an HTTP error status 400-599", origin)
    message = fields.get("message", "")
    if not isinstance(message, str):
        raise FaultSpecError(
            f"fault {kind.value!r}: message must be a string, got {message!r} (in {origin})"
        )
    return FaultSpec(kind, after, seconds, status, message)


def _whole(
    kind: FaultKind,
    fields: Mapping[str, Any],
    name: str,
    default: int,
    least: int,
    most: int | None,
    allowed: str,
    origin: str,
) -> int:
    """A whole-number parameter: an int in a profile, its digits in a header."""
    value = fields.get(name, default)
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value)
    if number is None or number < least or (most is not None and number > most):
        raise FaultSpecError(
            f"fault {kind.value!r}: {name} must be {allowed}, got {value!r} (in {origin})"
        )
    return number


def _seconds(kind: FaultKind, fields: Mapping[str, Any], origin: str) -> float:
    value = fields.get("seconds", 0.0)
    number = math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and value.strip():
        number = _float_or_nan(value)
    if not math.isfinite(number) or number < 0:
        raise FaultSpecError(
            f"fault {kind.value!r}: seconds must be a number of seconds >= 0, got {value!r} "
            f"(in {origin})"
        )
    return number


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan
