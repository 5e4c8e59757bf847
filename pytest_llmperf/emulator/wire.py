"""The shapes of answers on the wire: Ollama's NDJSON and OpenAI's JSON / server-sent events.

Each shape turns the engine's events into bytes for one route family, so the HTTP layer
serves generate, chat and both OpenAI routes with one loop.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from json.encoder import encode_basestring
from typing import Any, Protocol

from pytest_llmperf.emulator.backends import Token, ToolCall
from pytest_llmperf.emulator.engine import Done, describe

NDJSON = "application/x-ndjson"
JSON = "application/json"
SSE = "text/event-stream"

Chunk = Token | ToolCall


def now_rfc3339() -> str:
    """Ollama's ``created_at``: RFC 3339 in UTC with microseconds and a ``Z``.

    Every streamed chunk carries one, so the part up to the second is formatted once a second.
    """
    micros = time.time_ns() // 1000
    seconds, fraction = divmod(micros, 1_000_000)
    if seconds != _second[0]:
        moment = datetime.fromtimestamp(seconds, timezone.utc)
        _second[:] = [seconds, moment.strftime("%Y-%m-%dT%H:%M:%S")]
    return f"{_second[1]}.{fraction:06d}Z"


_second: list[Any] = [None, ""]  # the second last formatted, and its text


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def ollama_error(message: str) -> dict[str, Any]:
    return {"error": message}


def openai_error(status: int, message: str) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class Shape(Protocol):
    """How one family of routes writes an answer."""

    stream_media_type: str

    def chunk(self, event: Chunk) -> bytes: ...

    def final(self, done: Done) -> bytes: ...

    def error_line(self, message: str) -> bytes: ...

    def whole(self, chunks: Sequence[Chunk], done: Done) -> dict[str, Any]: ...

    def error_body(self, status: int, message: str) -> dict[str, Any]: ...


class OllamaGenerate:
    """``/api/generate``: ``response`` pieces, then the statistics and ``context``."""

    stream_media_type = NDJSON

    def __init__(self, model: str) -> None:
        self.model = model
        # A streamed chunk is written from pieces: its keys and the model's name never change.
        self._head = '{"model":' + encode_basestring(model) + ',"created_at":"'

    def _base(self) -> dict[str, Any]:
        return {"model": self.model, "created_at": now_rfc3339()}

    def chunk(self, event: Chunk) -> bytes:
        text = event.text if isinstance(event, Token) else ""
        return self._text_chunk("response", text)

    def _text_chunk(self, key: str, text: str) -> bytes:
        """``{"model":...,"created_at":...,KEY:"text","done":false}``, as :func:`dumps` would."""
        value = encode_basestring(text)
        if key == "message":
            value = '{"role":"assistant","content":' + value + "}"
        line = f'{self._head}{now_rfc3339()}","{key}":{value},"done":false}}\n'
        return line.encode()

    def final(self, done: Done) -> bytes:
        return dumps(self._final(done, "")) + b"\n"

    def _final(self, done: Done, response: str) -> dict[str, Any]:
        body: dict[str, Any] = {**self._base(), "response": response, "done": True}
        body["done_reason"] = done.reason
        if done.stats.context:
            body["context"] = done.stats.context
        body.update(describe(done.stats))
        return body

    def error_line(self, message: str) -> bytes:
        return dumps(ollama_error(message)) + b"\n"

    def whole(self, chunks: Sequence[Chunk], done: Done) -> dict[str, Any]:
        return self._final(done, "".join(c.text for c in chunks if isinstance(c, Token)))

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return ollama_error(message)


class OllamaChat(OllamaGenerate):
    """``/api/chat``: ``message`` pieces; tool calls as a message with ``tool_calls``."""

    def chunk(self, event: Chunk) -> bytes:
        if isinstance(event, Token):
            return self._text_chunk("message", event.text)
        return dumps({**self._base(), "message": _message(event), "done": False}) + b"\n"

    def _final(self, done: Done, response: str) -> dict[str, Any]:
        body: dict[str, Any] = {**self._base()}
        body["message"] = {"role": "assistant", "content": response}
        body["done_reason"] = done.reason
        body["done"] = True
        body.update(describe(done.stats))
        return body

    def whole(self, chunks: Sequence[Chunk], done: Done) -> dict[str, Any]:
        body = self._final(done, "".join(c.text for c in chunks if isinstance(c, Token)))
        calls = [_ollama_tool_call(c) for c in chunks if isinstance(c, ToolCall)]
        if calls:
            body["message"]["tool_calls"] = calls
        return body


def _ollama_tool_call(call: ToolCall) -> dict[str, Any]:
    return {"function": {"name": call.name, "arguments": call.arguments}}


def _message(event: Chunk) -> dict[str, Any]:
    if isinstance(event, ToolCall):
        return {"role": "assistant", "content": "", "tool_calls": [_ollama_tool_call(event)]}
    return {"role": "assistant", "content": event.text}


class OpenAIChat:
    """``/v1/chat/completions``: ``chat.completion`` or a stream of ``chat.completion.chunk``."""

    stream_media_type = SSE
    object_name = "chat.completion"
    id_prefix = "chatcmpl-"

    def __init__(self, model: str, include_usage: bool = False) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = f"{self.id_prefix}{uuid.uuid4().int % 1000}"
        self.created = int(time.time())
        self._tool_index = 0

    def _envelope(self, obj: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_ollama",
        }

    def _delta(self, event: Chunk) -> dict[str, Any]:
        delta: dict[str, Any] = {"role": "assistant"}
        if isinstance(event, ToolCall):
            delta["content"] = ""
            delta["tool_calls"] = [self._tool_call(event)]
        else:
            delta["content"] = event.text
        return delta

    def _tool_call(self, call: ToolCall) -> dict[str, Any]:
        index = self._tool_index
        self._tool_index += 1
        return {
            "id": f"call_{uuid.uuid4().hex[:8]}",
            "index": index,
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
        }

    def _choice_chunk(self, event: Chunk) -> dict[str, Any]:
        return {"index": 0, "delta": self._delta(event), "finish_reason": None}

    def chunk(self, event: Chunk) -> bytes:
        body = {
            **self._envelope(f"{self.object_name}.chunk"),
            "choices": [self._choice_chunk(event)],
        }
        return sse(body)

    def _finish_reason(self, done: Done) -> str:
        if self._tool_index:
            return "tool_calls"
        return "length" if done.reason == "length" else "stop"

    def _final_choice(self, done: Done) -> dict[str, Any]:
        return {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "finish_reason": self._finish_reason(done),
        }

    def final(self, done: Done) -> bytes:
        out = sse(
            {**self._envelope(f"{self.object_name}.chunk"), "choices": [self._final_choice(done)]}
        )
        if self.include_usage:
            out += sse(
                {**self._envelope(f"{self.object_name}.chunk"), "choices": [], "usage": usage(done)}
            )
        return out + b"data: [DONE]\n\n"

    def error_line(self, message: str) -> bytes:
        return sse(openai_error(500, message))

    def whole(self, chunks: Sequence[Chunk], done: Done) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(c.text for c in chunks if isinstance(c, Token)),
        }
        calls = [self._tool_call(c) for c in chunks if isinstance(c, ToolCall)]
        if calls:
            message["tool_calls"] = calls
        choice = {"index": 0, "message": message, "finish_reason": self._finish_reason(done)}
        return {**self._envelope(self.object_name), "choices": [choice], "usage": usage(done)}

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return openai_error(status, message)


class OpenAICompletion(OpenAIChat):
    """``/v1/completions``: ``text_completion`` objects with ``choices[].text``."""

    object_name = "text_completion"
    id_prefix = "cmpl-"

    def chunk(self, event: Chunk) -> bytes:
        text = event.text if isinstance(event, Token) else ""
        choice = {"text": text, "index": 0, "finish_reason": None}
        return sse({**self._envelope(self.object_name), "choices": [choice]})

    def final(self, done: Done) -> bytes:
        choice = {"text": "", "index": 0, "finish_reason": self._finish_reason(done)}
        out = sse({**self._envelope(self.object_name), "choices": [choice]})
        if self.include_usage:
            out += sse({**self._envelope(self.object_name), "choices": [], "usage": usage(done)})
        return out + b"data: [DONE]\n\n"

    def whole(self, chunks: Sequence[Chunk], done: Done) -> dict[str, Any]:
        text = "".join(c.text for c in chunks if isinstance(c, Token))
        choice = {"text": text, "index": 0, "finish_reason": self._finish_reason(done)}
        return {**self._envelope(self.object_name), "choices": [choice], "usage": usage(done)}


def usage(done: Done) -> dict[str, int]:
    prompt, completion = done.stats.prompt_eval_count, done.stats.eval_count
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def sse(obj: Mapping[str, Any]) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"
