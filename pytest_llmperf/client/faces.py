"""The Ollama clients: :class:`OllamaClient` (sync) and :class:`AsyncOllamaClient` (async).

Both are thin faces over :class:`pytest_llmperf.client.calls.Core`: they turn a method call into a
:class:`~pytest_llmperf.client.calls.Call` and perform the I/O steps the core yields with httpx.
Their signatures follow the official ``ollama`` client's, so code moves over by changing
one import, plus ``tier=``, ``cache=``, ``timeout=`` and ``fallback=`` on every call.

>>> client = OllamaClient("127.0.0.1:11434")  # doctest: +SKIP
>>> client.generate(tier="fast", prompt="Why is the sky blue?")["response"]  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import os
import time
import urllib.request
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar, cast, overload

import httpx

from pytest_llmperf.client.cache import ResponseCache
from pytest_llmperf.client.calls import (
    MAX_LINE_BYTES,
    Call,
    Core,
    Emit,
    Open,
    ReadBody,
    Sleep,
    Step,
    Steps,
    Stream,
)
from pytest_llmperf.client.hosts import HostPool
from pytest_llmperf.client.lanes import Lanes
from pytest_llmperf.client.protocol import Api, parse_host
from pytest_llmperf.client.sync_transport import DueTransport
from pytest_llmperf.client.tiers import Tiers
from pytest_llmperf.client.timeouts import AdaptiveTimeouts, Limits
from pytest_llmperf.client.transport import AsyncLoopTransport
from pytest_llmperf.errors import ConfigurationError
from pytest_llmperf.observe.records import CallRecord

T = TypeVar("T")
AnswerT = TypeVar("AnswerT")
StreamT = TypeVar("StreamT")
WarmT = TypeVar("WarmT")
HttpT = TypeVar("HttpT")
ClientT = TypeVar("ClientT", httpx.Client, httpx.AsyncClient)


class Answer(dict[str, Any]):
    """An answer or a chunk: a dict that also reads as attributes, as the official client's.

    ``answer["message"]["content"] == answer.message.content``; a field the server left
    out reads as ``None`` through an attribute.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        value = self.get(name)
        if type(value) is dict:
            return Answer(value)
        if type(value) is list:
            return [Answer(item) if type(item) is dict else item for item in value]
        return value


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """The result of one call run by ``many``: its ``value``, or the ``error`` it raised."""

    value: T | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> T:
        if self.error is not None:
            raise self.error
        return cast("T", self.value)  # with no error, the value is the call's (None or not)


def _hosts(host: str | Sequence[str] | None) -> list[str]:
    if host is None:
        return [parse_host(os.environ.get("OLLAMA_HOST"))]
    if isinstance(host, str):
        return [parse_host(host)]
    if not isinstance(host, Sequence) or not all(isinstance(item, str) for item in host):
        raise ConfigurationError(
            f"host={host!r}: give a host string (as http://127.0.0.1:11434), a list of them, "
            "or a HostPool"
        )
    return [parse_host(item) for item in host]


def _count(name: str, value: object, least: int) -> int:
    """``value`` if it is a whole number >= ``least``, else a ConfigurationError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigurationError(f"{name}={value!r}: give a whole number >= {least}")
    return value


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name}={value!r}: give a number of seconds >= 0")
    if not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"{name}={value!r}: give a number of seconds >= 0")
    return float(value)


def _images(images: Sequence[str | bytes] | None) -> list[str] | None:
    if images is None:
        return None
    return [
        base64.b64encode(image).decode() if isinstance(image, bytes) else image for image in images
    ]


def _message(message: Any) -> Any:
    dump = getattr(message, "model_dump", None)
    return dump(exclude_none=True) if callable(dump) else message


def _body(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


class _Face(Generic[AnswerT, StreamT, WarmT, HttpT]):
    """The constructor and methods both clients share; a face performs the calls.

    What a face's methods return: ``AnswerT`` (an answer read whole), ``StreamT`` (the
    chunks of a streamed one) and ``WarmT`` (load times), as they are or to be awaited;
    ``HttpT`` is the face's httpx client.
    """

    def __init__(
        self,
        host: str | Sequence[str] | HostPool | None = None,
        *,
        api: Api = "ollama",
        tiers: Tiers | Mapping[str, str] | None = None,
        cache: ResponseCache | None = None,
        timeouts: AdaptiveTimeouts | None = None,
        fallback: bool = False,
        retries: int = 2,
        cooldown_s: float = 5.0,
        concurrency: int = 4,
        headers: Mapping[str, str] | None = None,
        on_record: Callable[[CallRecord], None] | None = None,
        http: HttpT | Lanes[HttpT] | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.core = _core(
            host,
            api=api,
            tiers=tiers,
            cache=cache,
            timeouts=timeouts,
            fallback=fallback,
            retries=_count("retries", retries, 0),
            cooldown_s=cooldown_s,
            headers=headers,
            on_record=on_record,
            max_line_bytes=max_line_bytes,
        )
        self.concurrency = _count("concurrency", concurrency, 1)
        self._owns_http = http is None
        self.lanes: Lanes[HttpT]
        if isinstance(http, Lanes):
            self.lanes = http
        elif http is not None:
            given = http
            self.lanes = Lanes(lambda: given, most=1)
        else:
            self.lanes = Lanes(self._new_http)

    def _new_http(self) -> HttpT:
        raise NotImplementedError

    def _answer(self, steps: Steps) -> AnswerT:
        """Perform a call's ``steps``; its answer (a dict), read whole."""
        raise NotImplementedError

    def _stream(self, steps: Steps) -> StreamT:
        """Perform a streamed call's ``steps``, handing its chunks out as they come."""
        raise NotImplementedError

    def _warm(self, steps: Generator[Step, Any, dict[str, float]]) -> WarmT:
        """Perform a warm-up's ``steps``; each model's load time."""
        raise NotImplementedError

    @overload
    def generate(
        self,
        model: str | None = None,
        prompt: str | None = None,
        suffix: str | None = None,
        *,
        system: str | None = None,
        template: str | None = None,
        context: Sequence[int] | None = None,
        stream: Literal[False] = False,
        think: bool | None = None,
        raw: bool | None = None,
        format: str | Mapping[str, Any] | None = None,
        images: Sequence[str | bytes] | None = None,
        options: Mapping[str, Any] | None = None,
        keep_alive: str | float | None = None,
        tier: str | None = None,
        cache: bool | None = None,
        timeout: Limits | float | None = None,
        fallback: bool | None = None,
    ) -> AnswerT: ...

    @overload
    def generate(
        self,
        model: str | None = None,
        prompt: str | None = None,
        suffix: str | None = None,
        *,
        system: str | None = None,
        template: str | None = None,
        context: Sequence[int] | None = None,
        stream: Literal[True],
        think: bool | None = None,
        raw: bool | None = None,
        format: str | Mapping[str, Any] | None = None,
        images: Sequence[str | bytes] | None = None,
        options: Mapping[str, Any] | None = None,
        keep_alive: str | float | None = None,
        tier: str | None = None,
        cache: bool | None = None,
        timeout: Limits | float | None = None,
        fallback: bool | None = None,
    ) -> StreamT: ...

    def generate(
        self,
        model: str | None = None,
        prompt: str | None = None,
        suffix: str | None = None,
        *,
        system: str | None = None,
        template: str | None = None,
        context: Sequence[int] | None = None,
        stream: bool = False,
        think: bool | None = None,
        raw: bool | None = None,
        format: str | Mapping[str, Any] | None = None,
        images: Sequence[str | bytes] | None = None,
        options: Mapping[str, Any] | None = None,
        keep_alive: str | float | None = None,
        tier: str | None = None,
        cache: bool | None = None,
        timeout: Limits | float | None = None,
        fallback: bool | None = None,
    ) -> AnswerT | StreamT:
        """``/api/generate``: complete ``prompt`` with ``model`` or the ``tier``'s model."""
        __tracebackhide__ = True
        request: dict[str, Any] = {}
        if model:
            request["model"] = model
        if prompt is not None:
            request["prompt"] = prompt
        if options:
            request["options"] = dict(options)
        if keep_alive is not None:
            request["keep_alive"] = keep_alive
        if suffix or system or template or context or think is not None or raw is not None:
            request.update(
                _body(
                    suffix=suffix or None,
                    system=system or None,
                    template=template or None,
                    context=list(context) if context else None,
                    think=think,
                    raw=raw,
                )
            )
        if format:
            request["format"] = format
        if images is not None:
            request["images"] = _images(images)
        steps = self.core.run(Call("generate", request, stream, tier, cache, timeout, fallback))
        return self._stream(steps) if stream else self._answer(steps)

    @overload
    def chat(
        self,
        model: str | None = None,
        messages: Sequence[Any] | None = None,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        stream: Literal[False] = False,
        think: bool | None = None,
        format: str | Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        keep_alive: str | float | None = None,
        tier: str | None = None,
        cache: bool | None = None,
        timeout: Limits | float | None = None,
        fallback: bool | None = None,
    ) -> AnswerT: ...

    @overload
    def chat(
        self,
        model: str | None = None,
        messages: Sequence[Any] | None = None,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        stream: Literal[True],
        think: bool | None = None,
        format: str | Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        keep_alive: str | float | None = None,
        tier: str | None = None,
        cache: bool | None = None,
        timeout: Limits | float | None = None,
        fallback: bool | None = None,
    ) -> StreamT: ...

    def chat(
        self,
        model: str | None = None,
        messages: Sequence[Any] | None = None,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        stream: bool = False,
        think: bool | None = None,
        format: str | Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        keep_alive: str | float | None = None,
        tier: str | None = None,
        cache: bool | None = None,
        timeout: Limits | float | None = None,
        fallback: bool | None = None,
    ) -> AnswerT | StreamT:
        """``/api/chat``: answer ``messages`` with ``model`` or the ``tier``'s model."""
        __tracebackhide__ = True
        request = _body(
            model=model or None,
            messages=[_message(m) for m in messages or []],
            tools=[dict(tool) for tool in tools] if tools else None,
            think=think,
            format=format or None,
            options=dict(options) if options else None,
            keep_alive=keep_alive,
        )
        steps = self.core.run(Call("chat", request, stream, tier, cache, timeout, fallback))
        return self._stream(steps) if stream else self._answer(steps)

    def embed(
        self,
        model: str | None = None,
        input: str | Sequence[str] = "",
        truncate: bool | None = None,
        options: Mapping[str, Any] | None = None,
        keep_alive: str | float | None = None,
        dimensions: int | None = None,
        *,
        tier: str | None = None,
        cache: bool | None = None,
        timeout: Limits | float | None = None,
    ) -> AnswerT:
        """``/api/embed``: embeddings of ``input`` (``answer["embeddings"]``)."""
        __tracebackhide__ = True
        request = _body(
            model=model or None,
            input=input if isinstance(input, str) else list(input),
            truncate=truncate,
            options=dict(options) if options else None,
            keep_alive=keep_alive,
            dimensions=dimensions,
        )
        return self._answer(
            self.core.run(Call("embed", request, False, tier, cache, timeout, False))
        )

    def list(self) -> AnswerT:
        """The models on the server (``/api/tags``; ``/v1/models`` for ``api="openai"``)."""
        __tracebackhide__ = True
        if self.core.api == "openai":
            return self._answer(_openai_models(self.core.request_json("GET", "/v1/models", None)))
        return self._answer(self.core.request_json("GET", "/api/tags", None))

    def ps(self) -> AnswerT:
        """The models in memory (``/api/ps``)."""
        __tracebackhide__ = True
        self._ollama_only("ps")
        return self._answer(self.core.request_json("GET", "/api/ps", None))

    def show(self, model: str) -> AnswerT:
        """A model's details (``/api/show``)."""
        __tracebackhide__ = True
        self._ollama_only("show")
        return self._answer(self.core.request_json("POST", "/api/show", {"model": model}))

    def warm_up(
        self, models: Iterable[str] | None = None, keep_alive: str | float | None = "30m"
    ) -> WarmT:
        """Load ``models`` (default: every tier's model) and keep them for ``keep_alive``.

        Returns each model's load time in seconds; each warm-up is recorded as a call with
        ``purpose == "warm_up"``.
        """
        __tracebackhide__ = True
        chosen = list(self.core.tiers.models.values()) if models is None else list(models)
        return self._warm(self.core.warm_up(chosen, keep_alive))

    def unload(self, model: str) -> AnswerT:
        """Unload ``model`` from the server's memory now (``keep_alive: 0``)."""
        __tracebackhide__ = True
        unload = Call("generate", {"model": model, "keep_alive": 0}, cache=False, purpose="unload")
        return self._answer(self.core.run(unload))

    def _ollama_only(self, name: str) -> None:
        if self.core.api != "ollama":
            raise ConfigurationError(
                f"{name}() is an Ollama route; an OpenAI-compatible server has no equivalent"
            )


def _openai_models(steps: Steps) -> Steps:
    answer = yield from steps
    models = [{"name": m["id"], "model": m["id"]} for m in answer.get("data", [])]
    return {"models": models}


def _core(
    host: str | Sequence[str] | HostPool | None,
    *,
    api: Api,
    tiers: Tiers | Mapping[str, str] | None,
    cache: ResponseCache | None,
    timeouts: AdaptiveTimeouts | None,
    fallback: bool,
    retries: int,
    cooldown_s: float,
    headers: Mapping[str, str] | None,
    on_record: Callable[[CallRecord], None] | None,
    max_line_bytes: int,
) -> Core:
    if isinstance(tiers, Mapping):
        tiers = Tiers(dict(tiers))
    cooldown_s = _seconds("cooldown_s", cooldown_s)
    pool = host if isinstance(host, HostPool) else HostPool(_hosts(host), cooldown_s=cooldown_s)
    return Core(
        pool,
        api=api,
        tiers=tiers,
        timeouts=timeouts,
        cache=cache,
        fallback=fallback,
        retries=retries,
        headers=headers,
        on_record=on_record,
        max_line_bytes=max_line_bytes,
    )


# Connections per host: enough for the concurrency people use against a local server.
LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64)


def new_sync_http() -> httpx.Client:
    """The sync face's httpx client: each wait for the server ends at the call's due.

    That takes :class:`~pytest_llmperf.client.sync_transport.DueTransport`; with a proxy named in
    the environment, httpx's own transports (one per proxy) serve instead, and the limits
    hold between the parts of an answer only.
    """
    proxies = urllib.request.getproxies()
    if any(proxies.get(scheme) for scheme in ("http", "https", "all")):
        return _OwnClient(limits=LIMITS)
    return _OwnClient(limits=LIMITS, transport=DueTransport(LIMITS))


def new_async_http() -> httpx.AsyncClient:
    """The async face's httpx client, with our transport for ``http://`` hosts.

    httpx's own async transport costs several times the CPU per call of
    :class:`~pytest_llmperf.client.transport.AsyncLoopTransport` (see that module), and the CPU
    is what many calls at once wait on; https and proxied requests (a proxy named in the
    environment) stay with httpx's transport.
    """
    proxies = urllib.request.getproxies()
    if proxies.get("http") or proxies.get("all"):
        return _OwnAsyncClient(limits=LIMITS)
    return _OwnAsyncClient(limits=LIMITS, mounts={"http://": AsyncLoopTransport(LIMITS)})


class OllamaClient(
    _Face[Answer, Iterator[Answer], dict[str, float], httpx.Client],
):
    """The sync client.

    ``host``: one address or several (a pool), with ``OLLAMA_HOST`` semantics, or a
    :class:`HostPool` to share; default ``$OLLAMA_HOST`` or ``127.0.0.1:11434``.
    ``api="openai"`` speaks the ``/v1`` routes.
    ``tiers``: tier → model; ``cache``: a :class:`ResponseCache` (``None``: no cache);
    ``timeouts``: the per-tier limits and their adaptation; ``fallback``: retry a timed-out
    call on the next faster tier; ``retries``: how many times a connection failure or a 503
    is retried on another host; ``on_record``: called with every call's record; ``http``: an
    ``httpx.Client`` (or :class:`~pytest_llmperf.client.lanes.Lanes` of them) to send through
    (one of :func:`new_sync_http`'s keeps each wait within the call's limits; another keeps
    them between the parts of an answer only); ``max_line_bytes``: the longest line of a
    stream, or answer read whole, taken (longer is an :class:`~pytest_llmperf.LLMStreamError`).
    """

    def _new_http(self) -> httpx.Client:
        return new_sync_http()

    def _answer(self, steps: Steps) -> Answer:
        __tracebackhide__ = True
        return _SyncDriver(self.lanes, steps).result()

    def _stream(self, steps: Steps) -> Iterator[Answer]:
        return _SyncDriver(self.lanes, steps).stream()

    def _warm(self, steps: Generator[Step, Any, dict[str, float]]) -> dict[str, float]:
        __tracebackhide__ = True
        return _SyncDriver(self.lanes, steps).result()  # (an Answer, as every answer is)

    def many(
        self, calls: Iterable[Callable[[], T]], *, concurrency: int | None = None
    ) -> list[Outcome[T]]:
        """Run ``calls`` (functions of no arguments) on a pool of threads.

        At most ``concurrency`` (default: the client's) run at once; the outcomes come back
        in the order of ``calls``, each with its value or the error it raised.
        """
        work = list(calls)
        if not work:
            return []
        with ThreadPoolExecutor(max_workers=concurrency or self.concurrency) as threads:
            return list(threads.map(_outcome, work))

    def close(self) -> None:
        if self._owns_http:
            for http in self.lanes.clients:
                http.close()

    def __enter__(self) -> OllamaClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _outcome(call: Callable[[], T]) -> Outcome[T]:
    try:
        return Outcome(value=call())
    except Exception as exc:
        return Outcome(error=exc)


class AsyncOllamaClient(
    _Face[
        Awaitable[Answer],
        Awaitable[AsyncIterator[Answer]],
        Awaitable[dict[str, float]],
        httpx.AsyncClient,
    ],
):
    """The async client: the same calls as :class:`OllamaClient`, to be awaited.

    As with the official client, ``await client.chat(..., stream=True)`` gives an async
    iterator of chunks.
    """

    _loop: asyncio.AbstractEventLoop | None = None  # where its connections live
    _closer: AsyncGenerator[None, None] | None = None

    def _new_http(self) -> httpx.AsyncClient:
        try:
            loop = asyncio.get_running_loop()  # lanes are opened by a call, in its loop
        except RuntimeError:
            return new_async_http()  # (made outside a loop: nothing opens until a call)
        if loop is not self._loop:
            self._loop, self._closer = loop, _close_at_loop_end(self)
        return new_async_http()

    def _answer(self, steps: Steps) -> Awaitable[Answer]:
        return _AsyncDriver(self.lanes, steps).result()  # (the coroutine: one level less)

    def _stream(self, steps: Steps) -> Awaitable[AsyncIterator[Answer]]:
        return _ready(_AsyncDriver(self.lanes, steps).stream())

    def _warm(self, steps: Generator[Step, Any, dict[str, float]]) -> Awaitable[dict[str, float]]:
        return _AsyncDriver(self.lanes, steps).result()  # (an Answer, as every answer is)

    async def many(
        self, calls: Iterable[Callable[[], Awaitable[T]]], *, concurrency: int | None = None
    ) -> list[Outcome[T]]:
        """Run ``calls`` (functions returning awaitables) with at most ``concurrency`` at once.

        The outcomes come back in the order of ``calls``, each with its value or its error.
        """
        gate = asyncio.Semaphore(concurrency or self.concurrency)

        async def one(call: Callable[[], Awaitable[T]]) -> Outcome[T]:
            async with gate:
                try:
                    return Outcome(value=await call())
                except Exception as exc:
                    return Outcome(error=exc)

        return list(await asyncio.gather(*(one(call) for call in calls)))

    async def aclose(self) -> None:
        if self._owns_http:
            for http in self.lanes.clients:
                await http.aclose()

    def close_from_sync(self) -> None:
        """Close from outside the event loop, as a plain (sync) fixture's teardown does.

        The connections belong to the loop the calls ran on: that loop closes them if it is
        still open and idle. Fixtures that close this way work with pytest-asyncio in every
        mode and with anyio, since none of them has to run an async fixture.
        """
        loop, self._loop, self._closer = self._loop, None, None
        if loop is None or not self._owns_http or loop.is_closed():
            return  # nothing opened, or closed with the loop (see _close_at_loop_end)
        if loop.is_running():  # a teardown inside the loop itself: close it there, soon
            loop.create_task(self.aclose())
            return
        loop.run_until_complete(self.aclose())

    async def __aenter__(self) -> AsyncOllamaClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _close_at_loop_end(client: AsyncOllamaClient) -> AsyncGenerator[None, None]:
    """Close ``client``'s connections when its event loop shuts down, or when it is dropped.

    An event loop that ends the usual way (``asyncio.run``, ``asyncio.Runner``, and so
    pytest-asyncio's and anyio's test loops) first closes the async generators begun in it;
    this one, begun in the loop of the client's calls, closes the client then. So no
    connection outlives its loop, even when the client is closed too late or never.
    """

    async def close_then() -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await client.aclose()

    closer = close_then()
    step = closer.asend(None)  # begun here, in the running loop, which now knows of it
    with contextlib.suppress(StopIteration):  # it stops at its yield, awaiting nothing
        step.send(None)
    return closer


class _Heads:
    """The headers of one of our clients' requests, merged once per host, method and body.

    ``build_request`` merges the client's headers with the call's, adds ``Host`` and, in
    :class:`httpx.Request`, parses them again, on every call; these are merged as it merges
    them, once (the client's own headers are read then: these clients are not handed out),
    and each request gets them with its ``Content-Length``. So a request is the one
    ``build_request`` makes, byte for byte, at a fraction of the cost.
    """

    __slots__ = ("known",)

    def __init__(self) -> None:
        # (host, method, has a body) -> (the call's headers they were merged with, merged)
        self.known: dict[tuple[str, str, bool], tuple[Any, httpx.Headers]] = {}

    def request(self, http: httpx.Client | httpx.AsyncClient, step: Open) -> httpx.Request:
        content = step.content
        key = (step.host, step.method, content is not None)
        found = self.known.get(key)
        if found is None or found[0] is not step.headers:
            if len(self.known) >= 1024:  # (hosts come and go in a long run)
                self.known.clear()
            found = self.known[key] = (step.headers, self._merge(http, step))
        request = httpx.Request(
            step.method,
            step.url,
            headers=found[1],
            stream=httpx.ByteStream(content or b""),
            extensions=step.extensions,
        )
        if content is not None:
            request.headers["Content-Length"] = str(len(content))
        request.read()
        return request

    @staticmethod
    def _merge(http: httpx.Client | httpx.AsyncClient, step: Open) -> httpx.Headers:
        merged = httpx.Headers(http.headers)
        if step.headers:
            merged.update(step.headers)
        first = [(b"Host", step.url.netloc)]
        if step.content is None and step.method in ("POST", "PUT", "PATCH"):
            first.append((b"Content-Length", b"0"))
        return httpx.Headers(first + merged.raw)


class _Cookies(httpx.Cookies):
    """A client's cookies, which leave an answer that sets none alone.

    httpx hands every answer to the standard library's cookie jar, which first turns the
    request and the answer into urllib's objects: about a third of what
    ``AsyncClient.send`` costs a call. The jar takes cookies only from ``Set-Cookie`` (and
    the obsolete ``Set-Cookie2``) headers, so an answer without them is left out unchanged.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


class _Own:
    """What the faces' own httpx clients add to httpx's: the request headers merged once
    (:class:`_Heads`), and :class:`_Cookies` as their jar (through the public ``cookies``
    property, which httpx's client reads and sets the jar by)."""

    heads: _Heads
    jar: httpx.Cookies

    def _own(self, cookies: Any) -> None:
        self.heads = _Heads()
        self.jar = _Cookies(cookies)

    @property
    def cookies(self) -> httpx.Cookies:
        return self.jar

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self.jar = _Cookies(cookies)


class _OwnClient(_Own, httpx.Client):
    """The sync face's own httpx client (see :func:`new_sync_http`)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._own(options.get("cookies"))


class _OwnAsyncClient(_Own, httpx.AsyncClient):
    """The async face's own httpx client (see :func:`new_async_http`)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._own(options.get("cookies"))


def _request(http: httpx.Client | httpx.AsyncClient, step: Open) -> httpx.Request:
    """The request of ``step``, as ``http.build_request`` makes it.

    While the client's cookie jar holds cookies (or for a client someone else made, which
    may have more of its own), ``build_request`` itself makes it.
    """
    if isinstance(http, (_OwnClient, _OwnAsyncClient)) and not http.cookies:
        return http.heads.request(http, step)
    return http.build_request(
        step.method,
        step.url,
        content=step.content,
        headers=step.headers,
        extensions=step.extensions,
    )


def _parts(response: httpx.Response) -> Iterator[bytes]:
    """A body's parts as they arrive: ``iter_bytes``, without its decoding layer when there
    is no Content-Encoding to undo (then the raw bytes are the body's) and the body was not
    read already (as a mock's may be)."""
    if response.is_stream_consumed or "content-encoding" in response.headers:
        return response.iter_bytes()
    return response.iter_raw()


def _async_parts(response: httpx.Response) -> AsyncIterator[bytes]:
    """:func:`_parts` of an async response."""
    if response.is_stream_consumed or "content-encoding" in response.headers:
        return response.aiter_bytes()
    return response.aiter_raw()


# --- the drivers: perform the core's steps --------------------------------------------------


async def _ready(value: T) -> T:
    """An awaitable of ``value``: ``await client.generate(..., stream=True)`` gives the stream."""
    return value


def _read_already(step: ReadBody) -> bytes | None:
    """The body of ``step``'s response if it is in already (our transport reads a short
    answer whole, as a mock may), within the call's limits; ``None`` if it is to be read."""
    response = step.response
    if not response.is_stream_consumed:
        return None
    try:
        data = response.content
    except httpx.ResponseNotRead:  # consumed unread: reading it raises httpx's own error
        return None
    return step.at_once(data)


class _Driver(Generic[ClientT]):
    """What the two drivers share: all of a call's running but its I/O.

    :meth:`steps` hands the driver the call's steps one at a time; the driver performs each
    one and leaves its outcome here (``value``, or the ``error`` it raised), which goes back
    into the call. Chunks are handed out as they come, but the final ``done`` one (of a
    stream read or served from the cache) only once the call is complete, as the last
    :class:`~pytest_llmperf.client.calls.Emit`. The driver is a context manager for the
    run: at its end the call's generator is closed (a call left unfinished is recorded as
    cancelled), the responses it opened are closed and its lane is given back.
    """

    __slots__ = ("answer", "error", "http", "lane", "lanes", "last", "opened", "run", "value")

    def __init__(self, lanes: Lanes[ClientT], run: Steps) -> None:
        self.lanes: Lanes[ClientT] = lanes
        self.run = run
        self.opened: list[httpx.Response] = []
        self.lane = -1  # taken at the first request, given back when the call ends
        self.http: ClientT
        self.value: Any = None
        self.error: Exception | None = None
        self.last: dict[str, Any] | None = None  # the final chunk, held back
        self.answer: Any = None  # what the call returned

    def steps(self) -> Iterator[Step]:
        """The call's steps to perform, each one's outcome sent (or thrown) back in."""
        __tracebackhide__ = True
        self.lanes.ready()  # before the call's clock starts (the steps' first send)
        run = self.run
        try:
            step = run.send(None)
            while True:
                if type(step) is Emit and step.chunk.get("done"):
                    self.last = step.chunk
                    step = run.send(None)
                    continue
                yield step
                if type(step) is Stream and self.error is None:
                    self._finish(step)
                value, error = self.value, self.error
                self.value = self.error = None
                step = run.send(value) if error is None else run.throw(error)
        except StopIteration as stop:
            self.answer = stop.value
        if self.last is not None:
            yield Emit(self.last)

    def _finish(self, step: Stream) -> None:
        """The end of a stream's body: its chunks go back in, the final one is held back."""
        __tracebackhide__ = True
        try:
            self.value = chunks = step.reader.finish()
            self.last = chunks[-1]
        except Exception as exc:
            self.error = exc

    def request(self, step: Open) -> httpx.Request:
        """The request of ``step``, for ``http``: the call's lane, taken at its first request."""
        if self.lane < 0:
            self.lane, self.http = self.lanes.take()
        return _request(self.http, step)

    def let_go(self) -> list[httpx.Response]:
        """End the call's generator and give its lane back; the responses to close."""
        self.run.close()
        if self.lane >= 0:
            self.lanes.give(self.lane)
            self.lane = -1
        return self.opened


class _SyncDriver(_Driver[httpx.Client]):
    """Performs a call's steps with a sync httpx client."""

    __slots__ = ()

    def result(self) -> Answer:
        """Run a call that hands no chunks out; its answer."""
        __tracebackhide__ = True
        with self:
            for step in self.steps():
                self._do(step)
            return Answer(self.answer)

    def stream(self) -> Iterator[Answer]:
        """Run a call that hands out chunks, as an iterator of them."""
        __tracebackhide__ = True
        with self:
            for step in self.steps():
                if type(step) is Emit:
                    yield Answer(step.chunk)
                elif type(step) is Stream:
                    try:
                        for part in _parts(step.response):
                            for chunk in step.take(part):
                                yield Answer(chunk)
                    except Exception as exc:
                        self.error = exc
                else:
                    self._do(step)

    def _do(self, step: Step) -> None:
        __tracebackhide__ = True
        try:
            if type(step) is Open:
                request = self.request(step)
                self.value = response = self.http.send(request, stream=True)
                self.opened.append(response)
            elif type(step) is ReadBody:
                data = _read_already(step)
                if data is None:
                    add = step.add
                    for part in _parts(step.response):
                        add(part)
                    data = step.value()
                self.value = data
            elif type(step) is Sleep:
                time.sleep(step.seconds)
            else:
                raise TypeError(f"unknown step {step!r}")
        except Exception as exc:
            self.error = exc

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        for response in self.let_go():
            response.close()


class _AsyncDriver(_Driver[httpx.AsyncClient]):
    """Performs a call's steps with an async httpx client."""

    __slots__ = ()

    async def result(self) -> Answer:
        """Run a call that hands no chunks out; its answer."""
        __tracebackhide__ = True
        async with self:
            for step in self.steps():
                await self._do(step)
            return Answer(self.answer)

    async def stream(self) -> AsyncIterator[Answer]:
        """Run a call that hands out chunks, as an async iterator of them."""
        __tracebackhide__ = True
        async with self:
            for step in self.steps():
                if type(step) is Emit:
                    yield Answer(step.chunk)
                elif type(step) is Stream:
                    try:
                        async for part in _async_parts(step.response):
                            for chunk in step.take(part):
                                yield Answer(chunk)
                    except Exception as exc:
                        self.error = exc
                else:
                    await self._do(step)

    async def _do(self, step: Step) -> None:
        __tracebackhide__ = True
        try:
            if type(step) is Open:
                request = self.request(step)
                self.value = response = await self.http.send(request, stream=True)
                self.opened.append(response)
            elif type(step) is ReadBody:
                data = _read_already(step)
                if data is None:
                    add = step.add
                    async for part in _async_parts(step.response):
                        add(part)
                    data = step.value()
                self.value = data
            elif type(step) is Sleep:
                await asyncio.sleep(step.seconds)
            else:
                raise TypeError(f"unknown step {step!r}")
        except Exception as exc:
            self.error = exc

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: object, exc: object, tb: object) -> None:
        for response in self.let_go():
            if not response.is_closed:
                await response.aclose()
