"""The wire formats the client speaks: Ollama's JSON / NDJSON and OpenAI's JSON / SSE.

Pure functions, no I/O: host strings to base URLs, call arguments to request bodies, lines of
a stream to Ollama-shaped chunks, chunks to a whole answer, and the server's statistics.
Answers from an OpenAI-compatible server are translated to Ollama's shape, so code reads
``answer["response"]`` or ``answer["message"]["content"]`` whichever server it called.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pytest_llmperf.errors import ConfigurationError

Kind = Literal["generate", "chat", "embed"]
Api = Literal["ollama", "openai"]

DEFAULT_HOST = "http://127.0.0.1:11434"

ROUTES: Mapping[Api, Mapping[Kind, str]] = {
    "ollama": {"generate": "/api/generate", "chat": "/api/chat", "embed": "/api/embed"},
    "openai": {
        "generate": "/v1/completions",
        "chat": "/v1/chat/completions",
        "embed": "/v1/embeddings",
    },
}

# The statistics Ollama puts in a ``done`` chunk (durations in nanoseconds).
STATISTICS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)

# Fields that do not change the answer: left out of cache keys.
NOT_IN_KEY = frozenset({"stream", "keep_alive"})


def parse_host(value: str | None) -> str:
    """A base URL from a host string, with ``OLLAMA_HOST`` semantics.

    ``1.2.3.4`` → ``http://1.2.3.4:11434``; ``:56789`` → ``http://127.0.0.1:56789``;
    ``http://x`` → port 80; ``https://x`` → port 443; a path is kept; IPv6 is bracketed.
    """
    text = (value or "").strip()
    if not text:
        return DEFAULT_HOST
    explicit = "://" in text
    try:
        split = urlsplit(text if explicit else f"http://{text}")
    except ValueError as exc:  # an unclosed [ of an IPv6 address
        raise ConfigurationError(
            f"cannot use host {value!r}: {exc}; write it as http://HOST:PORT (IPv6 in "
            "brackets: http://[::1]:11434)"
        ) from None
    if split.scheme not in ("http", "https"):
        raise ConfigurationError(
            f"cannot use host {value!r}: the scheme must be http or https, as in "
            "http://127.0.0.1:11434"
        )
    try:
        port = split.port
    except ValueError:
        raise ConfigurationError(
            f"cannot use host {value!r}: the port is not a number from 0 to 65535"
        ) from None
    if port is None:
        port = {"http": 80, "https": 443}[split.scheme] if explicit else 11434
    hostname = split.hostname or "127.0.0.1"
    if ":" in hostname:
        hostname = f"[{hostname}]"
    return _usable(f"{split.scheme}://{hostname}:{port}", split.path.rstrip("/"), value)


def _usable(base: str, path: str, value: str | None) -> str:
    """``base`` and ``path`` as one URL, if httpx can call it."""
    if path and not path.startswith("/"):  # "http:://": the netloc went into the path
        raise ConfigurationError(
            f"cannot use host {value!r}: write it as http://HOST:PORT or http://HOST:PORT/PATH"
        )
    url = base + path
    if not (url.isascii() and url.isprintable()):  # rare: ask httpx, which will call it
        import httpx

        try:
            httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ConfigurationError(f"cannot use host {value!r}: {exc}") from None
    return url


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_identity(route: str, request: Mapping[str, Any]) -> str:
    """The text that determines an answer: the route and the body without stream/keep_alive."""
    kept = {key: value for key, value in request.items() if key not in NOT_IN_KEY}
    return route + "\n" + _CANONICAL.encode(kept)


def repeatable(kind: Kind, request: Mapping[str, Any]) -> bool:
    """Whether the same request gives the same answer: embeddings, temperature 0, or a seed.

    Ollama samples at temperature 0.8 unless told otherwise, so a request that sets neither a
    temperature of 0 nor a seed can answer differently each time.
    """
    if kind == "embed":
        return True
    options = request.get("options") or {}
    return options.get("seed") is not None or options.get("temperature") == 0


# --- OpenAI-compatible servers ----------------------------------------------------------


def to_openai(kind: Kind, request: Mapping[str, Any], stream: bool) -> dict[str, Any]:
    """Translate an Ollama request body to the OpenAI route's body."""
    options = dict(request.get("options") or {})
    out: dict[str, Any] = {"model": request["model"]}
    if kind == "embed":
        out["input"] = request.get("input", "")
        if "dimensions" in request:
            out["dimensions"] = request["dimensions"]
        return out
    if kind == "chat":
        out["messages"] = [_openai_message(m) for m in request.get("messages", [])]
        if request.get("tools"):
            out["tools"] = request["tools"]
    else:
        prompt = request.get("prompt", "")
        system = request.get("system")
        out["prompt"] = f"{system}\n\n{prompt}" if system else prompt
    for ollama_name, openai_name in (
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("seed", "seed"),
        ("stop", "stop"),
        ("num_predict", "max_tokens"),
        ("frequency_penalty", "frequency_penalty"),
        ("presence_penalty", "presence_penalty"),
    ):
        if options.get(ollama_name) is not None:
            out[openai_name] = options[ollama_name]
    if request.get("format") == "json":
        out["response_format"] = {"type": "json_object"}
    out["stream"] = stream
    if stream:
        out["stream_options"] = {"include_usage": True}
    return out


def _openai_message(message: Mapping[str, Any]) -> dict[str, Any]:
    out = {key: value for key, value in message.items() if key != "tool_calls"}
    calls = message.get("tool_calls")
    if calls:
        out["tool_calls"] = [
            {
                "id": f"call_{index}",
                "type": "function",
                "function": {
                    "name": call["function"]["name"],
                    "arguments": json.dumps(call["function"].get("arguments", {})),
                },
            }
            for index, call in enumerate(calls)
        ]
    return out


def _created_at(seconds: Any) -> str:
    stamp = seconds if isinstance(seconds, (int, float)) else time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def _tool_calls(calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for call in calls:
        function = call.get("function") or {}
        arguments = function.get("arguments") or "{}"
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        except ValueError:
            parsed = {"_raw": arguments}
        out.append({"function": {"name": function.get("name", ""), "arguments": parsed}})
    return out


def from_openai(kind: Kind, answer: Mapping[str, Any]) -> dict[str, Any]:
    """Translate a whole OpenAI answer to Ollama's shape."""
    if kind == "embed":
        data = sorted(answer.get("data", []), key=lambda item: item.get("index", 0))
        return {"model": answer.get("model", ""), "embeddings": [d["embedding"] for d in data]}
    choice = (answer.get("choices") or [{}])[0]
    out: dict[str, Any] = {"model": answer.get("model", ""), "created_at": _created_at(None)}
    if kind == "chat":
        message = choice.get("message") or {}
        out["message"] = {"role": "assistant", "content": message.get("content") or ""}
        if message.get("tool_calls"):
            out["message"]["tool_calls"] = _tool_calls(message["tool_calls"])
    else:
        out["response"] = choice.get("text") or ""
    out["done"] = True
    out["done_reason"] = choice.get("finish_reason") or "stop"
    out.update(_usage(answer.get("usage")))
    return out


def _usage(usage: Any) -> dict[str, int]:
    if not isinstance(usage, Mapping):
        return {}
    return {
        "prompt_eval_count": int(usage.get("prompt_tokens") or 0),
        "eval_count": int(usage.get("completion_tokens") or 0),
    }


class OpenAIStream:
    """Turns the data lines of an OpenAI event stream into Ollama-shaped chunks.

    Text arrives in ``choices[0].delta``; the finish reason and the usage (when
    ``include_usage`` is on) come in later events; ``data: [DONE]`` ends the stream, and
    that is when the final ``done`` chunk is made.
    """

    def __init__(self, kind: Kind, model: str) -> None:
        self.kind = kind
        self.model = model
        self.reason = "stop"
        self.usage: dict[str, int] = {}
        # tool calls arrive in pieces keyed by index: the name once, the arguments in parts
        self.calls: dict[int, dict[str, str]] = {}

    def feed(self, line: str) -> dict[str, Any] | None:
        """One line in; a chunk out, or ``None`` for lines that carry no chunk; an event of a
        shape this does not read is an ``error`` chunk saying so."""
        if not line.startswith("data:"):
            return None
        data = line[5:].strip()
        try:
            return self._event(data)
        except (AttributeError, TypeError, ValueError, KeyError, IndexError):
            return {"error": f"an event of the stream has an unexpected shape: {data[:80]!r}"}

    def _event(self, data: str) -> dict[str, Any] | None:
        if data == "[DONE]":
            return self._final()
        try:
            event = json.loads(data)
        except ValueError:
            return {"error": f"an event of the stream is not JSON: {data[:80]!r}"}
        if not isinstance(event, dict):
            return {"error": f"an event of the stream is not a JSON object: {data[:80]!r}"}
        if "error" in event:
            return {"error": _error_text(event["error"])}
        self.usage.update(_usage(event.get("usage")))
        choices = event.get("choices") or []
        if not choices:
            return None
        choice = choices[0]
        if choice.get("finish_reason"):
            self.reason = choice["finish_reason"]
        if self.kind == "chat":
            delta = choice.get("delta") or {}
            for piece in delta.get("tool_calls") or []:
                self._gather(piece)
            text = delta.get("content") or ""
            if not text:
                return None
            return self._chunk({"message": {"role": "assistant", "content": text}})
        text = choice.get("text") or ""
        return self._chunk({"response": text}) if text else None

    def _gather(self, piece: Mapping[str, Any]) -> None:
        index = piece.get("index", len(self.calls))
        call = self.calls.setdefault(index, {"name": "", "arguments": ""})
        function = piece.get("function") or {}
        call["name"] += function.get("name") or ""
        arguments = function.get("arguments")
        call["arguments"] += (
            arguments if isinstance(arguments, str) else json.dumps(arguments or {})
        )

    def _chunk(self, fields: dict[str, Any]) -> dict[str, Any]:
        return {"model": self.model, "created_at": _created_at(None), **fields, "done": False}

    def final_chunk(self) -> dict[str, Any]:
        """The ``done`` chunk: what the stream said of its end and usage so far."""
        return self._final()

    def _final(self) -> dict[str, Any]:
        if self.kind == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": ""}
            if self.calls:
                whole = [
                    {"function": {"name": c["name"], "arguments": c["arguments"] or "{}"}}
                    for _, c in sorted(self.calls.items())
                ]
                message["tool_calls"] = _tool_calls(whole)
            fields: dict[str, Any] = {"message": message}
        else:
            fields = {"response": ""}
        final = self._chunk(fields)
        final.update(done=True, done_reason=self.reason, **self.usage)
        return final


def error_text(payload: Any) -> str:
    """The message of an error body, Ollama's ``{"error": "..."}`` or OpenAI's nested one."""
    if isinstance(payload, Mapping) and "error" in payload:
        return _error_text(payload["error"])
    return str(payload)


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        return str(error.get("message", error))
    return str(error)


# --- chunks and answers -----------------------------------------------------------------


def chunk_problem(chunk: Mapping[str, Any]) -> str | None:
    """What in an Ollama chunk (or whole answer) is not of the shape the client reads."""
    response = chunk.get("response")
    if response is not None and not isinstance(response, str):
        return f"'response' is {type(response).__name__}, not text"
    message = chunk.get("message")
    if message is not None:
        if not isinstance(message, Mapping):
            return f"'message' is {type(message).__name__}, not an object"
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            return f"'message.content' is {type(content).__name__}, not text"
        calls = message.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            return f"'message.tool_calls' is {type(calls).__name__}, not a list"
    for name in STATISTICS:
        value = chunk.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"'{name}' is {type(value).__name__}, not a number"
    return None


def chunk_text(chunk: Mapping[str, Any]) -> str:
    """The text a chunk carries (generate ``response``, chat ``message.content``)."""
    text = chunk.get("response")
    if text is None:
        message = chunk.get("message")
        text = message.get("content") if message else None
    return text or ""


def merge(chunks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The whole answer a stream of chunks adds up to (a one-chunk stream is its own answer)."""
    if len(chunks) == 1:
        return dict(chunks[0])
    whole = dict(chunks[-1])
    if "message" in whole:
        message = dict(whole["message"])
        message["content"] = "".join((c.get("message") or {}).get("content") or "" for c in chunks)
        calls = [call for c in chunks for call in (c.get("message") or {}).get("tool_calls", [])]
        if calls:
            message["tool_calls"] = calls
        whole["message"] = message
    elif "response" in whole:
        whole["response"] = "".join(c.get("response") or "" for c in chunks)
    return whole


@dataclass(slots=True)
class ServerStats:
    """The statistics in a final chunk, in seconds (the wire has nanoseconds)."""

    total_s: float | None = None
    load_s: float | None = None
    prompt_eval_count: int | None = None
    prompt_eval_s: float | None = None
    eval_count: int | None = None
    eval_s: float | None = None

    @property
    def tokens_per_s(self) -> float | None:
        """Generation speed as Ollama defines it: ``eval_count / eval_duration``."""
        if self.eval_count and self.eval_s:
            return self.eval_count / self.eval_s
        return None

    @classmethod
    def of(cls, final: Mapping[str, Any]) -> ServerStats:
        get = final.get
        total, load = get("total_duration"), get("load_duration")
        prompt, generation = get("prompt_eval_duration"), get("eval_duration")
        return cls(
            None if total is None else total / 1e9,
            None if load is None else load / 1e9,
            get("prompt_eval_count"),
            None if prompt is None else prompt / 1e9,
            get("eval_count"),
            None if generation is None else generation / 1e9,
        )
