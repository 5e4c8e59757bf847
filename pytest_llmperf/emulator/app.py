"""The emulator as an ASGI application: Ollama's routes and its OpenAI-compatible ones.

Run it in-process with ``httpx.ASGITransport(app=EmulatorApp(...))`` or on a loopback port
with :class:`pytest_llmperf.emulator.server.EmulatorServer` (``llmperf serve`` runs
:func:`~pytest_llmperf.emulator.server.serve_forever`).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from pytest_llmperf.emulator import wire
from pytest_llmperf.emulator.backends import Backend, Job, Token, ToolCall
from pytest_llmperf.emulator.engine import (
    Done,
    DropConnection,
    Engine,
    ErrorLine,
    InjectedStatus,
    ModelNotFound,
    QueueFull,
    Stats,
    describe,
)
from pytest_llmperf.emulator.faults import FAULT_HEADER, FaultSpec, parse_fault_header
from pytest_llmperf.emulator.keepalive import parse_keep_alive
from pytest_llmperf.emulator.parts import PartsError, ollama_message
from pytest_llmperf.emulator.profiles import Catalogue, load_catalogue, normalize_model_name
from pytest_llmperf.emulator.text import render_messages, unit
from pytest_llmperf.errors import FaultSpecError

OLLAMA_VERSION = "0.5.1"
BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"
PULL_MISSING = "pull model manifest: file does not exist"

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]


class HTTPError(Exception):
    """An error answered before any output, in the route family's own error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def not_found_message(model: str) -> str:
    return f'model "{model}" not found, try pulling it first'


class Request:
    """What a handler needs of an HTTP request: method, path, headers and the JSON body."""

    def __init__(self, scope: Scope, body: bytes) -> None:
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
        }
        self.body = body
        self.started_ns = time.perf_counter_ns()

    def json(self) -> dict[str, Any]:
        if not self.body.strip():
            raise HTTPError(400, "missing request body")
        try:
            data = json.loads(self.body)
        except json.JSONDecodeError as exc:
            raise HTTPError(400, f"invalid JSON in request body: {exc}") from None
        if not isinstance(data, dict):
            raise HTTPError(400, "request body must be a JSON object")
        return data

    def faults(self) -> tuple[FaultSpec, ...]:
        value = self.headers.get(FAULT_HEADER, "")
        try:
            return parse_fault_header(value) if value else ()
        except FaultSpecError as exc:
            raise HTTPError(400, str(exc)) from None


# A part of a streamed body that comes within this long of the previous write waits with the
# others that follow it, and they go out together when this long has passed since that write.
GATHER_S = 0.005


class Responder:
    """Writes one HTTP response through ASGI ``send``.

    A part of a streamed body that finds the stream idle goes out at once. The parts that
    follow it closely (a fast model's tokens) are gathered and go out together, at most one
    write every :data:`GATHER_S`: a burst then costs a few writes, and a few wake-ups of the
    client, instead of one per token, and no part waits longer than that.
    """

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.finished = False  # the last part of the body has gone out
        self.hung_up = False  # the client hung up before the answer was complete
        self._loop = asyncio.get_running_loop()
        self._sent_at = -math.inf  # when the last part of the body went out, loop clock
        self._gathered: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None

    async def start(self, status: int, media_type: str) -> None:
        self.started = True
        headers = [(b"content-type", media_type.encode())]
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, data: bytes, more: bool = False) -> None:
        self.finished = not more
        if more and (self._gathered or self._loop.time() - self._sent_at < GATHER_S):
            self._gathered.append(data)
            if self._timer is None:
                self._timer = self._loop.call_at(self._sent_at + GATHER_S, self._write_gathered)
            return
        await self.flush()
        self._sent_at = self._loop.time()
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def flush(self) -> None:
        """Send what has been gathered now (after a write under way)."""
        if self._gathered:
            self._write_gathered()
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    def close(self) -> None:
        """The request is over: drop what has not gone out (its client has hung up)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._gathered = []

    def _write_gathered(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        data, self._gathered = b"".join(self._gathered), []
        message = {"type": "http.response.body", "body": data, "more_body": True}
        self._sent_at = self._loop.time()
        self._writing = self._loop.create_task(_write(self._send, message, self._writing))
        self._writing.add_done_callback(_retrieved)

    async def whole(self, status: int, media_type: str, data: bytes) -> None:
        await self.start(status, media_type)
        await self.body(data)

    async def json(self, obj: Any, status: int = 200) -> None:
        await self.whole(status, wire.JSON, wire.dumps(obj))


async def _write(send: Send, message: Mapping[str, Any], after: asyncio.Task[None] | None) -> None:
    if after is not None:
        await after
    await send(message)


def _retrieved(task: asyncio.Task[None]) -> None:
    """A gathered write that fails is seen by the next ``flush``; none may follow it."""
    if not task.cancelled():
        task.exception()


Handler = Callable[["EmulatorApp", Request, Responder], Awaitable[None]]


class EmulatorApp:
    """An Ollama server in a box. ``engine`` holds its models and their state."""

    def __init__(
        self, catalogue: Catalogue | None = None, extra_backends: Iterable[Backend] = ()
    ) -> None:
        self.engine = Engine(catalogue or load_catalogue(), extra_backends)
        self.in_flight = 0  # HTTP requests being answered now
        self.answered = 0  # HTTP requests answered (or given up by their client) so far

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":  # pragma: no cover - websockets are not served
            return
        request = Request(scope, await _read_body(receive))
        responder = Responder(send)
        task = asyncio.current_task()
        assert task is not None
        watch = asyncio.get_running_loop().create_task(_hang_up(receive, responder, task))
        self.in_flight += 1
        try:
            await self._answer(request, responder)
        except asyncio.CancelledError:
            if not responder.hung_up:
                raise
            if hasattr(task, "uncancel"):  # (3.11+) the cancel was ours, and is over
                task.uncancel()
        finally:
            watch.cancel()
            responder.close()
            self.in_flight -= 1
            self.answered += 1

    async def _answer(self, request: Request, responder: Responder) -> None:
        handler, family = _route(request.method, request.path)
        try:
            await handler(self, request, responder)
        except HTTPError as exc:
            if responder.started:  # pragma: no cover - handlers raise before output only
                raise
            body = family(exc.status, exc.message) if family else None
            if body is None:
                await responder.whole(exc.status, "text/plain; charset=utf-8", exc.message.encode())
            else:
                await responder.json(body, exc.status)

    # --- information routes -------------------------------------------------------------

    async def root(self, request: Request, out: Responder) -> None:
        await out.whole(200, "text/plain; charset=utf-8", b"Ollama is running")

    async def version(self, request: Request, out: Responder) -> None:
        await out.json({"version": OLLAMA_VERSION})

    async def tags(self, request: Request, out: Responder) -> None:
        await out.json({"models": [_model_entry(b) for b in self.engine.available()]})

    async def ps(self, request: Request, out: Responder) -> None:
        models = []
        for loaded in self.engine.scheduler.loaded():
            entry = _model_entry(loaded.backend)
            del entry["modified_at"]
            entry["expires_at"] = wire.rfc3339(loaded.expires_at)
            entry["size_vram"] = loaded.backend.profile.vram
            entry["context_length"] = loaded.backend.profile.context_length
            models.append(entry)
        await out.json({"models": models})

    async def stats(self, request: Request, out: Responder) -> None:
        """``GET /llmperf/stats``: the emulator's own counters (not an Ollama route)."""
        engine = self.engine
        await out.json(
            {
                "requests": engine.requests_served,
                "requests_by_model": engine.requests_by_model(),
                "http_requests": self.answered,
                "in_flight": self.in_flight - 1,  # (not counting this request)
                "loaded_models": [m.backend.profile.name for m in engine.scheduler.loaded()],
            }
        )

    async def show(self, request: Request, out: Responder) -> None:
        body = request.json()
        model = body.get("model") or body.get("name")
        if not model:
            raise HTTPError(400, "model is required")
        try:
            backend = self.engine.backend(str(model))
        except ModelNotFound:
            raise HTTPError(404, f"model '{model}' not found") from None
        await out.json(_show(backend))

    async def pull(self, request: Request, out: Responder) -> None:
        body = request.json()
        model = body.get("model") or body.get("name")
        if not model:
            raise HTTPError(400, "model is required")
        name = normalize_model_name(str(model))
        stream = body.get("stream", True) is not False
        if name not in self.engine.backends:
            if not stream:
                raise HTTPError(500, PULL_MISSING)
            await out.start(200, wire.NDJSON)  # Ollama reports a pull failure in the stream
            await out.body(wire.dumps({"status": "pulling manifest"}) + b"\n", more=True)
            await out.body(wire.dumps(wire.ollama_error(PULL_MISSING)) + b"\n")
            return
        self.engine.mark_pulled(name)
        size = self.engine.backends[name].profile.size
        digest = "sha256:" + self.engine.backends[name].profile.digest
        steps: list[dict[str, Any]] = [{"status": "pulling manifest"}]
        steps += [
            {
                "status": f"pulling {digest[7:19]}",
                "digest": digest,
                "total": size,
                "completed": size * i // 4,
            }
            for i in range(5)
        ]
        steps += [{"status": s} for s in ("verifying sha256 digest", "writing manifest", "success")]
        if not stream:
            await out.json({"status": "success"})
            return
        await out.start(200, wire.NDJSON)
        for step in steps:
            await out.body(wire.dumps(step) + b"\n", more=True)
        await out.body(b"")

    # --- generation routes --------------------------------------------------------------

    async def generate(self, request: Request, out: Responder) -> None:
        await self._generation(request, out, _generate_job, stream=True)

    async def chat(self, request: Request, out: Responder) -> None:
        await self._generation(request, out, _chat_job, stream=True)

    async def openai_chat(self, request: Request, out: Responder) -> None:
        await self._generation(request, out, _openai_chat_job, stream=False)

    async def openai_completion(self, request: Request, out: Responder) -> None:
        await self._generation(request, out, _openai_completion_job, stream=False)

    # --- embeddings ---------------------------------------------------------------------

    async def embed(self, request: Request, out: Responder) -> None:
        _body, backend, vectors, stats = await self._embed_texts(request)
        await out.json({"model": backend.profile.name, "embeddings": vectors, **describe(stats)})

    async def embeddings(self, request: Request, out: Responder) -> None:
        body = request.json()
        backend, keep_alive, _faults = self._prepare(request, body)
        prompt = str(body.get("prompt") or "")
        if not prompt:
            await out.json({"embedding": []})
            return
        vectors, _stats = await self._embed(backend, [prompt], keep_alive, request, normalize=False)
        await out.json({"embedding": vectors[0]})

    async def openai_embeddings(self, request: Request, out: Responder) -> None:
        body, _backend, vectors, stats = await self._embed_texts(request)
        data = [{"object": "embedding", "embedding": v, "index": i} for i, v in enumerate(vectors)]
        tokens = stats.prompt_eval_count
        await out.json(
            {
                "object": "list",
                "data": data,
                "model": str(body["model"]),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def openai_models(self, request: Request, out: Responder) -> None:
        prefix = "/v1/models/"
        if request.path.startswith(prefix):
            name = request.path[len(prefix) :]
            try:
                backend = self.engine.backend(name)
            except ModelNotFound:
                raise HTTPError(404, f"model '{name}' not found") from None
            await out.json(_openai_model(backend))
            return
        await out.json(
            {"object": "list", "data": [_openai_model(b) for b in self.engine.available()]}
        )

    # --- the shared steps ---------------------------------------------------------------

    def _prepare(
        self, request: Request, body: Mapping[str, Any]
    ) -> tuple[Backend, float, tuple[FaultSpec, ...]]:
        """Validate the common fields; apply the faults that strike before any output."""
        model = body.get("model")
        if not model or not isinstance(model, str):
            raise HTTPError(400, "model is required")
        header_faults = request.faults()
        keep_alive = self.engine.catalogue.server.keep_alive_s
        if body.get("keep_alive") is not None:
            try:
                keep_alive = parse_keep_alive(body["keep_alive"])
            except ValueError as exc:
                raise HTTPError(400, str(exc)) from None
        try:
            backend = self.engine.backend(model, header_faults)
        except ModelNotFound:
            raise HTTPError(404, not_found_message(model)) from None
        if body.get("think") and "thinking" not in backend.profile.capabilities:
            raise HTTPError(400, f'"{model}" does not support thinking')
        try:
            faults = self.engine.request_faults(backend, header_faults)
        except InjectedStatus as exc:
            raise HTTPError(exc.status, exc.message) from None
        return backend, keep_alive, faults

    async def _generation(
        self, request: Request, out: Responder, read: JobReader, *, stream: bool
    ) -> None:
        """A generation route: ``read`` makes the job of its body (``stream``: whether the
        answer streams when the body does not say)."""
        body = request.json()
        backend, keep_alive, faults = self._prepare(request, body)
        job, shape = read(backend, body)
        if job is None:
            await self._load_only(backend, keep_alive, request, out, shape)
            return
        streams = body.get("stream", stream)
        await self._serve(backend, job, keep_alive, faults, request, out, shape, streams)

    async def _embed_texts(
        self, request: Request
    ) -> tuple[dict[str, Any], Backend, list[list[float]], Stats]:
        """The body of an embedding route that takes ``input`` (and ``dimensions``), its
        backend, the vectors (normalized, cut to ``dimensions``) and the statistics."""
        body = request.json()
        backend, keep_alive, _faults = self._prepare(request, body)
        texts = _texts(body.get("input"))
        vectors, stats = await self._embed(backend, texts, keep_alive, request, normalize=True)
        return body, backend, _truncate(vectors, body.get("dimensions")), stats

    async def _load_only(
        self,
        backend: Backend,
        keep_alive: float,
        request: Request,
        out: Responder,
        shape: wire.Shape,
    ) -> None:
        try:
            stats = await self.engine.load_only(backend, keep_alive, request.started_ns)
        except QueueFull:
            raise HTTPError(503, BUSY_MESSAGE) from None
        reason = "unload" if keep_alive == 0 else "load"
        body = shape.whole([], Done(reason, stats))
        for key in ("total_duration", "load_duration"):
            body.pop(key, None)
        await out.json(body)

    async def _embed(
        self,
        backend: Backend,
        texts: list[str],
        keep_alive: float,
        request: Request,
        normalize: bool,
    ) -> tuple[list[list[float]], Stats]:
        try:
            return await self.engine.embed(
                backend, texts, keep_alive, normalize, request.started_ns
            )
        except QueueFull:
            raise HTTPError(503, BUSY_MESSAGE) from None

    async def _serve(
        self,
        backend: Backend,
        job: Job,
        keep_alive: float,
        faults: tuple[FaultSpec, ...],
        request: Request,
        out: Responder,
        shape: wire.Shape,
        stream: Any,
    ) -> None:
        events = self.engine.generate(backend, job, keep_alive, faults, request.started_ns)
        try:
            first = await events.__anext__()
        except QueueFull:
            raise HTTPError(503, BUSY_MESSAGE) from None
        except DropConnection:
            await out.start(200, shape.stream_media_type if stream else wire.JSON)
            raise
        if stream is False:
            await _answer_whole(first, events, out, shape)
        else:
            await _answer_stream(first, events, out, shape)


async def _answer_stream(
    first: Any, events: AsyncIterator[Any], out: Responder, shape: wire.Shape
) -> None:
    await out.start(200, shape.stream_media_type)
    event = first
    while True:
        if isinstance(event, (Token, ToolCall)):
            await out.body(shape.chunk(event), more=True)
        elif isinstance(event, ErrorLine):
            await out.body(shape.error_line(event.message))
            return
        elif isinstance(event, Done):
            await out.body(shape.final(event))
            return
        try:
            event = await events.__anext__()
        except DropConnection:
            await out.flush()  # the chunks before the drop reach the client
            raise


async def _answer_whole(
    first: Any, events: AsyncIterator[Any], out: Responder, shape: wire.Shape
) -> None:
    chunks: list[Token | ToolCall] = []
    event = first
    try:
        while True:
            if isinstance(event, (Token, ToolCall)):
                chunks.append(event)
            elif isinstance(event, ErrorLine):
                await out.json(shape.error_body(500, event.message), 500)
                return
            elif isinstance(event, Done):
                await out.json(shape.whole(chunks, event))
                return
            event = await events.__anext__()
    except DropConnection:
        await out.start(200, wire.JSON)
        raise


# --- request parsing helpers ------------------------------------------------------------

# What a generation route makes of its request's body: the job (None: only load the model,
# or unload it) and the shape its answer takes.
JobReader = Callable[[Backend, Mapping[str, Any]], tuple[Job | None, wire.Shape]]


def _generate_job(backend: Backend, body: Mapping[str, Any]) -> tuple[Job | None, wire.Shape]:
    if body.get("raw") and (body.get("template") or body.get("system") or body.get("context")):
        raise HTTPError(400, "raw mode does not support template, system, or context")
    prompt = str(body.get("prompt") or "")
    shape = wire.OllamaGenerate(backend.profile.name)
    if not prompt and not body.get("images"):
        return None, shape
    system = "" if body.get("raw") else str(body.get("system") or "")
    prompt = (system + "\n" + prompt).strip()
    return _job(backend, prompt, body.get("options"), body.get("format")), shape


def _chat_job(backend: Backend, body: Mapping[str, Any]) -> tuple[Job | None, wire.Shape]:
    messages = _messages(body.get("messages"))
    shape = wire.OllamaChat(backend.profile.name)
    if not messages:
        return None, shape
    tools = _tools(body.get("tools"))
    job = _job(backend, render_messages(messages), body.get("options"), body.get("format"))
    return _with_tools(job, tools, messages), shape


def _openai_chat_job(backend: Backend, body: Mapping[str, Any]) -> tuple[Job | None, wire.Shape]:
    messages = _openai_messages(body.get("messages"))
    if not messages:
        raise HTTPError(400, "[] is too short - 'messages'")
    job = _job(backend, render_messages(messages), _openai_options(body), _openai_format(body))
    job = _with_tools(job, _tools(body.get("tools")), messages)
    return job, wire.OpenAIChat(str(body["model"]), _include_usage(body))


def _openai_completion_job(
    backend: Backend, body: Mapping[str, Any]
) -> tuple[Job | None, wire.Shape]:
    prompt = body.get("prompt", "")
    if isinstance(prompt, list):
        prompt = "".join(str(p) for p in prompt)
    job = _job(backend, str(prompt), _openai_options(body), None)
    return job, wire.OpenAICompletion(str(body["model"]), _include_usage(body))


def _job(backend: Backend, prompt: str, options: Any, fmt: Any) -> Job:
    opts = options if isinstance(options, Mapping) else {}
    if options is not None and not isinstance(options, Mapping):
        raise HTTPError(400, "options must be a JSON object")
    stop = opts.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else tuple(str(s) for s in stop)
    if fmt not in (None, "", "json") and not isinstance(fmt, Mapping):
        raise HTTPError(
            400, f'invalid format: {json.dumps(fmt)}: format must be "json" or a JSON schema'
        )
    try:
        return Job(
            model=backend.profile.name,
            prompt=prompt,
            seed=_optional(opts, "seed", int),
            num_predict=_optional(opts, "num_predict", int, -1),
            stop=stop,
            temperature=_optional(opts, "temperature", float),
            top_k=_optional(opts, "top_k", int),
            top_p=_optional(opts, "top_p", float),
            repeat_penalty=_optional(opts, "repeat_penalty", float),
            format=fmt or None,
        )
    except (TypeError, ValueError) as exc:
        raise HTTPError(400, f"invalid options: {exc}") from None


def _optional(opts: Mapping[str, Any], key: str, kind: type, default: Any = None) -> Any:
    value = opts.get(key)
    return default if value is None else kind(value)


def _with_tools(job: Job, tools: list[Mapping[str, Any]], messages: list[Mapping[str, Any]]) -> Job:
    """A chat with tools calls the first tool, unless the last message is a tool's result."""
    wants = bool(tools) and messages[-1].get("role") != "tool"
    return replace(job, tools=tuple(tools), wants_tool_call=wants)


def _messages(value: Any) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(m, Mapping) for m in value):
        raise HTTPError(400, "messages must be a list of message objects")
    for message in value:
        if message.get("role") not in ("system", "user", "assistant", "tool"):
            raise HTTPError(400, f"invalid message role: {message.get('role')!r}")
    return value


def _openai_messages(value: Any) -> list[Mapping[str, Any]]:
    """The messages of a ``/v1`` chat, their content parts read as Ollama's ``/v1`` reads them."""
    try:
        return [ollama_message(message) for message in _messages(value)]
    except PartsError as exc:
        raise HTTPError(400, str(exc)) from None


def _tools(value: Any) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, Mapping) for t in value):
        raise HTTPError(400, "tools must be a list of tool objects")
    return value


def _truncate(vectors: list[list[float]], dimensions: Any) -> list[list[float]]:
    """Cut vectors to ``dimensions`` and scale them back to length 1, as Ollama does."""
    if dimensions is None:
        return vectors
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
        raise HTTPError(400, f"dimensions must be a positive whole number, got {dimensions!r}")
    return [unit(v[:dimensions]) for v in vectors]


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise HTTPError(400, "input must be a string or a list of strings")


# The Ollama option each OpenAI field of a /v1 request gives, as Ollama's /v1 reads them; of
# two fields for one option the later wins (max_completion_tokens over the older max_tokens).
_OPENAI_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "max_tokens": "num_predict",
    "stop": "stop",
    "max_completion_tokens": "num_predict",
}


def _openai_options(body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        ours: body[theirs]
        for theirs, ours in _OPENAI_OPTIONS.items()
        if body.get(theirs) is not None
    }


def _openai_format(body: Mapping[str, Any]) -> Any:
    response_format = body.get("response_format")
    if not isinstance(response_format, Mapping):
        return None
    if response_format.get("type") == "json_object":
        return "json"
    if response_format.get("type") == "json_schema":
        schema = response_format.get("json_schema", {})
        return schema.get("schema", "json") if isinstance(schema, Mapping) else "json"
    return None


def _include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, Mapping) and bool(options.get("include_usage"))


# --- model descriptions -----------------------------------------------------------------


def _details(backend: Backend) -> dict[str, Any]:
    profile = backend.profile
    return {
        "parent_model": "",
        "format": "gguf",
        "family": profile.family,
        "families": [profile.family],
        "parameter_size": profile.parameter_size,
        "quantization_level": profile.quantization_level,
    }


def _model_entry(backend: Backend) -> dict[str, Any]:
    profile = backend.profile
    return {
        "name": profile.name,
        "model": profile.name,
        "modified_at": "2024-09-25T10:00:00.000000Z",
        "size": profile.size,
        "digest": profile.digest,
        "details": _details(backend),
    }


def _show(backend: Backend) -> dict[str, Any]:
    profile = backend.profile
    arch = profile.family
    return {
        "license": "emulated model: no licence",
        "modelfile": f"# Modelfile generated by pytest-llmperf\nFROM {profile.name}\n",
        "parameters": 'stop "<|eot_id|>"',
        "template": "{{ .Prompt }}",
        "details": _details(backend),
        "model_info": {
            "general.architecture": arch,
            "general.parameter_count": profile.size,
            f"{arch}.context_length": profile.context_length,
            f"{arch}.embedding_length": profile.embedding_length,
        },
        "capabilities": list(profile.capabilities),
        "modified_at": "2024-09-25T10:00:00.000000Z",
    }


def _openai_model(backend: Backend) -> dict[str, Any]:
    return {
        "id": backend.profile.name,
        "object": "model",
        "created": 1727258400,
        "owned_by": "library",
    }


# --- routing ------------------------------------------------------------------------------

ErrorShape = Callable[[int, str], dict[str, Any]] | None


def _ollama_shape(status: int, message: str) -> dict[str, Any]:
    return wire.ollama_error(message)


_ROUTES: dict[tuple[str, str], tuple[Handler, ErrorShape]] = {
    ("GET", "/"): (EmulatorApp.root, None),
    ("HEAD", "/"): (EmulatorApp.root, None),
    ("GET", "/api/version"): (EmulatorApp.version, _ollama_shape),
    ("GET", "/api/tags"): (EmulatorApp.tags, _ollama_shape),
    ("GET", "/api/ps"): (EmulatorApp.ps, _ollama_shape),
    ("POST", "/api/show"): (EmulatorApp.show, _ollama_shape),
    ("POST", "/api/pull"): (EmulatorApp.pull, _ollama_shape),
    ("POST", "/api/generate"): (EmulatorApp.generate, _ollama_shape),
    ("POST", "/api/chat"): (EmulatorApp.chat, _ollama_shape),
    ("POST", "/api/embed"): (EmulatorApp.embed, _ollama_shape),
    ("POST", "/api/embeddings"): (EmulatorApp.embeddings, _ollama_shape),
    ("POST", "/v1/chat/completions"): (EmulatorApp.openai_chat, wire.openai_error),
    ("POST", "/v1/completions"): (EmulatorApp.openai_completion, wire.openai_error),
    ("POST", "/v1/embeddings"): (EmulatorApp.openai_embeddings, wire.openai_error),
    ("GET", "/v1/models"): (EmulatorApp.openai_models, wire.openai_error),
    ("GET", "/llmperf/stats"): (EmulatorApp.stats, None),
}


def _route(method: str, path: str) -> tuple[Handler, ErrorShape]:
    if method == "GET" and path.startswith("/v1/models/"):
        return _ROUTES[("GET", "/v1/models")]
    found = _ROUTES.get((method, path.rstrip("/") or "/"))
    if found is not None:
        return found
    if any(p == (path.rstrip("/") or "/") for _m, p in _ROUTES):
        return _method_not_allowed, None
    return _not_found, None


async def _not_found(app: EmulatorApp, request: Request, out: Responder) -> None:
    raise HTTPError(404, "404 page not found")


async def _method_not_allowed(app: EmulatorApp, request: Request, out: Responder) -> None:
    raise HTTPError(405, "405 method not allowed")


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _hang_up(receive: Receive, responder: Responder, task: asyncio.Task[Any]) -> None:
    """Cancel the request's ``task`` if its client hangs up before the answer is complete.

    What the request holds goes with it: above all its model's slot, which the next request
    to the model would otherwise wait for until the answer had run its course (a stall of
    20 s kept the next request waiting 18 s after its client had given up at 2 s).
    """
    while (await receive())["type"] != "http.disconnect":
        pass
    if not responder.finished:
        responder.hung_up = True
        task.cancel()


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
