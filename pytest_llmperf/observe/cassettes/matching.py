"""Which recorded request answers a new one: a key of method, path and JSON body.

The key leaves out what does not change the answer: the host and port (the embedded
emulator listens on a new port every run), ``keep_alive``, and ``stream`` where it only
restates the route's default (Ollama's ``/api`` routes stream unless told not to, OpenAI's
``/v1`` routes do not). Bodies compare as JSON, so key order and spacing do not matter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

IGNORED_FIELDS = frozenset({"keep_alive"})


def stream_default(path: str) -> bool:
    return not path.startswith("/v1/")


def normal_body(path: str, body: bytes | str | None) -> Any:
    """The body as the key sees it: parsed JSON without the ignored fields, or the text."""
    if body is None or body == b"" or body == "":
        return None
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if k not in IGNORED_FIELDS}
        if value.get("stream", stream_default(path)) == stream_default(path):
            value.pop("stream", None)
    return value


def target(uri: str) -> str:
    """Path and sorted query of a URI: what identifies it apart from the host."""
    split = urlsplit(uri)
    query = urlencode(sorted(parse_qsl(split.query, keep_blank_values=True)))
    return split.path + (f"?{query}" if query else "")


def key(method: str, uri: str, body: bytes | str | None) -> str:
    """The matching key of a request."""
    path = urlsplit(uri).path
    canonical = json.dumps(normal_body(path, body), sort_keys=True, separators=(",", ":"))
    return f"{method.upper()} {target(uri)} {canonical}"


def differences(recorded: Any, requested: Any, prefix: str = "") -> list[str]:
    """Human-readable differences between two normalised bodies, field by field."""
    if isinstance(recorded, Mapping) and isinstance(requested, Mapping):
        lines: list[str] = []
        for name in sorted(set(recorded) | set(requested)):
            where = f"{prefix}{name}"
            if name not in requested:
                lines.append(f"{where}: recorded {_short(recorded[name])}, not in the request")
            elif name not in recorded:
                lines.append(f"{where}: requested {_short(requested[name])}, not recorded")
            elif recorded[name] != requested[name]:
                lines.extend(differences(recorded[name], requested[name], f"{where}."))
        return lines
    if recorded == requested:
        return []
    where = prefix.rstrip(".") or "body"
    return [f"{where}: recorded {_short(recorded)} != requested {_short(requested)}"]


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."
