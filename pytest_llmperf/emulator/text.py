"""Deterministic content for the synthetic backend: words, JSON answers, tool arguments, vectors.

Everything here is a pure function of its inputs, so the same model, prompt and seed always
give the same answer, and a recorded cassette matches a later live run.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import struct
from collections.abc import Mapping, Sequence
from typing import Any

_STORY = (
    "once upon a time there was a little robot named Pip who loved to count the stars "
    "every night it climbed the hill behind the old mill and wrote numbers in a blue book "
    "one evening a cloud came and hid the sky so Pip asked the wind for help the wind "
    "laughed and blew the cloud away then the stars came back brighter than before and "
    "Pip learned that friends make hard work light the end"
)
_WORDS = tuple(_STORY.split())
_TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")


def rng(*parts: object) -> random.Random:
    """A random generator seeded by a stable hash of ``parts`` (not Python's salted hash)."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def count_tokens(text: str) -> int:
    """A tokenizer stand-in: one token per word or punctuation mark."""
    return len(_TOKEN_PATTERN.findall(text))


def token_ids(text: str, vocabulary: int = 32000) -> list[int]:
    """Stable token ids for ``text`` (what Ollama returns as ``context``)."""
    return [
        int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=4).digest(), "big") % vocabulary
        for tok in _TOKEN_PATTERN.findall(text)
    ]


def sentence_tokens(generator: random.Random, count: int) -> list[str]:
    """``count`` tokens of plain text, each a word with its leading space (the first without)."""
    start = generator.randrange(len(_WORDS))
    words = [_WORDS[(start + i) % len(_WORDS)] for i in range(count)]
    if words:
        words[0] = words[0].capitalize()
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def json_document(generator: random.Random, schema: Any) -> Any:
    """A JSON value that fits ``schema`` (a JSON Schema subset), or a small object for "json"."""
    if not isinstance(schema, Mapping):
        return {"answer": " ".join(sentence_tokens(generator, 4)).replace("  ", " ")}
    kind = schema.get("type")
    if schema.get("enum"):
        return generator.choice(list(schema["enum"]))
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {name: json_document(generator, sub) for name, sub in props.items()}
    if kind == "array":
        return [json_document(generator, schema.get("items", {})) for _ in range(2)]
    if kind == "integer":
        return generator.randrange(0, 100)
    if kind == "number":
        return round(generator.uniform(0, 100), 2)
    if kind == "boolean":
        return generator.random() < 0.5
    if kind == "null":
        return None
    return "".join(sentence_tokens(generator, 2))


def json_tokens(document: Any) -> list[str]:
    """Split a JSON document's compact text into token-sized pieces that join back to it."""
    text = json.dumps(document, separators=(", ", ": "))
    return re.findall(r'\s*(?:"[^"]{0,12}|[^"\s]{1,12}|")', text) or [text]


def tool_arguments(generator: random.Random, tool: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments for a tool call that fit the tool's parameter schema."""
    function = tool.get("function", {})
    parameters = function.get("parameters", {}) if isinstance(function, Mapping) else {}
    value = json_document(generator, parameters if parameters else {"type": "object"})
    return value if isinstance(value, dict) else {}


def embedding(model: str, text: str, dimensions: int, normalize: bool = True) -> list[float]:
    """A deterministic vector for ``text``: the same input always gives the same vector."""
    raw = hashlib.shake_256(f"{model}\0{text}".encode()).digest(4 * dimensions)
    values = [(v / 0xFFFFFFFF) * 2.0 - 1.0 for v in struct.unpack(f">{dimensions}I", raw)]
    return unit(values) if normalize else values


def unit(vector: Sequence[float]) -> list[float]:
    """``vector`` scaled to length 1 (Ollama normalises /api/embed vectors, also when cut)."""
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def render_messages(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text a chat answer depends on: every message's role and content, in order."""
    return "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in messages)
