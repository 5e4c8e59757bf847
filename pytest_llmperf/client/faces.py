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
import logging
import os
import time
import urllib.request
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar, overload

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
    Steps,
    Stream,
)
from pytest_llmperf.client.hosts import HostPool
from pytest_llmperf.client.lanes import Lanes
from pytest_llmperf.client.protocol import Api, parse_host
from pytest_llmperf.client.sync_transport import DueTransport
from pytest_llmperf.client.tiers import Tiers
from pytest_llmperf.client.timeouts import AdaptiveTimeouts, Limits
from pytest_llmperf.client.transport import AsyncLoopTransport, mocked, read_at_once, sets_cookies
from pytest_llmperf.errors import ConfigurationError
from pytest_llmperf.observe.records import CallRecord

T = TypeVar("T")
AnswerT = TypeVar("AnswerT")
StreamT = TypeVar("StreamT")
ListT = TypeVar("ListT")
WarmT = TypeVar("WarmT")
HttpT = TypeVar("HttpT")


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
        return self.value  # type: ignore[return-value]


def _hosts(host: str | Sequence[str] | None) -> list[str]:
    if host is None:
        return [parse_host(os.environ.get("OLLAMA_HOST"))]
    if isinstance(host, str):
        return [parse_host(host)]
    return [parse_host(item) for item in host]


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


class _Face(Generic[AnswerT, StreamT, ListT, WarmT, HttpT]):
    """The constructor and methods both clients share; a face performs the calls."""

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
            retries=retries,
            cooldown_s=cooldown_s,
            headers=headers,
            on_record=on_record,
            max_line_bytes=max_line_bytes,
        )
        self.concurrency = concurrency
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

    def _perform(self, call: Call) -> Any:
        raise NotImplementedError

    def _perform_plain(self, steps: Steps) -> Any:
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
        return self._perform(  # type: ignore[no-any-return]
            Call("generate", request, stream, tier, cache, timeout, fallback)
        )

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
        return self._perform(  # type: ignore[no-any-return]
            Call("chat", request, stream, tier, cache, timeout, fallback)
        )

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
        return self._perform(  # type: ignore[no-any-return]
            Call("embed", request, False, tier, cache, timeout, False)
        )

    def list(self) -> ListT:
        """The models on the server (``/api/tags``; ``/v1/models`` for ``api="openai"``)."""
        __tracebackhide__ = True
        if self.core.api == "openai":
            return self._perform_plain(  # type: ignore[no-any-return]
                _openai_models(self.core.request_json("GET", "/v1/models", None))
            )
        return self._perform_plain(  # type: ignore[no-any-return]
            self.core.request_json("GET", "/api/tags", None)
        )

    def ps(self) -> ListT:
        """The models in memory (``/api/ps``)."""
        __tracebackhide__ = True
        self._ollama_only("ps")
        return self._perform_plain(  # type: ignore[no-any-return]
            self.core.request_json("GET", "/api/ps", None)
        )

    def show(self, model: str) -> ListT:
        """A model's details (``/api/show``)."""
        __tracebackhide__ = True
        self._ollama_only("show")
        return self._perform_plain(  # type: ignore[no-any-return]
            self.core.request_json("POST", "/api/show", {"model": model})
        )

    def warm_up(
        self, models: Iterable[str] | None = None, keep_alive: str | float | None = "30m"
    ) -> WarmT:
        """Load ``models`` (default: every tier's model) and keep them for ``keep_alive``.

        Returns each model's load time in seconds; each warm-up is recorded as a call with
        ``purpose == "warm_up"``.
        """
        __tracebackhide__ = True
        chosen = list(self.core.tiers.models.values()) if models is None else list(models)
        return self._perform_plain(self.core.warm_up(chosen, keep_alive))  # type: ignore[no-any-return]

    def unload(self, model: str) -> AnswerT:
        """Unload ``model`` from the server's memory now (``keep_alive: 0``)."""
        __tracebackhide__ = True
        return self._perform(  # type: ignore[no-any-return]
            Call("generate", {"model": model, "keep_alive": 0}, cache=False, purpose="unload")
        )

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
        return httpx.Client(limits=LIMITS)
    return httpx.Client(limits=LIMITS, transport=DueTransport(LIMITS))


class OllamaClient(
    _Face[Answer, Iterator[Answer], Answer, dict[str, float], httpx.Client],
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

    def _perform(self, call: Call) -> Any:
        __tracebackhide__ = True
        driver = _SyncDriver(self.lanes, self.core.run(call))
        return driver.stream() if call.stream else driver.result()

    def _perform_plain(self, steps: Steps) -> Any:
        __tracebackhide__ = True
        return _SyncDriver(self.lanes, steps).result()

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
        Awaitable[Answer],
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
            return _OwnAsyncClient()  # (made outside a loop: nothing opens until a call)
        if loop is not self._loop:
            self._loop, self._closer = loop, _close_at_loop_end(self)
        return _OwnAsyncClient()

    def _perform(self, call: Call) -> Any:
        __tracebackhide__ = True
        driver = _AsyncDriver(self.lanes, self.core.run(call))
        if call.stream:
            return _ready(driver.stream())
        return driver.result()  # (the coroutine itself: one level less per call)

    async def _perform_plain(self, steps: Steps) -> Any:
        __tracebackhide__ = True
        return await _AsyncDriver(self.lanes, steps).result()

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


_httpx_log = logging.getLogger("httpx")


class _OwnAsyncClient(httpx.AsyncClient):
    """The async face's own httpx client, with our transport for ``http://`` hosts.

    httpx's own async transport costs about five times the CPU per call of
    :class:`~pytest_llmperf.client.transport.AsyncLoopTransport` (see that module), and the CPU is
    what many calls at once wait on; https and proxied requests (a proxy named in the
    environment) stay with httpx's transport.

    :meth:`send_plain` sends a call's request to an ``http://`` host straight through that
    transport, skipping what ``AsyncClient.send`` does that these clients never use (auth,
    event hooks, redirects, which the client does not follow) and building the request
    from headers merged once per URL and body length (the client's own headers are read
    then: these clients are not handed out): about 0.1 ms less CPU per call, a quarter.
    Cookies keep httpx's rules: a response's ``Set-Cookie`` goes to the client's jar, and
    while the jar holds any, requests go through ``AsyncClient.send`` to carry them.
    """

    def __init__(self) -> None:
        proxies = urllib.request.getproxies()
        proxied = bool(proxies.get("http") or proxies.get("all"))
        self.plain = None if proxied else AsyncLoopTransport(LIMITS)
        mounts: dict[str, httpx.AsyncBaseTransport] | None = None
        if self.plain is not None:
            mounts = {"http://": self.plain}
        super().__init__(limits=LIMITS, mounts=mounts)
        # (url, extra headers) -> the request headers as httpx sets them, per Content-Length
        self._heads: dict[tuple[int, int], tuple[Any, Any, dict[int, httpx.Headers]]] = {}

    def takes_plain(self, url: httpx.URL) -> bool:
        """Whether the request goes straight to our transport: not while a mocking library
        stands in for httpx (the request then goes through ``AsyncClient.send``, to it)."""
        return self.plain is not None and url.scheme == "http" and not self.cookies and not mocked()

    async def send_plain(self, step: Open) -> httpx.Response:
        """Send ``step``'s request through our transport; the response, once its headers are in."""
        url, extra, content = step.url, step.headers, step.content
        found = self._heads.get((id(url), id(extra)))
        if found is None or found[0] is not url or found[1] is not extra:
            found = self._heads[(id(url), id(extra))] = (url, extra, {})
        length = -1 if content is None else len(content)
        headers = found[2].get(length)
        if headers is None:  # (httpx.Request copies the headers it is given)
            headers = httpx.Headers({"Host": url.netloc.decode("ascii")})
            headers.update(self.headers)
            if extra:
                headers.update(extra)
            if content is not None:
                headers["Content-Length"] = str(length)
            elif step.method in ("POST", "PUT", "PATCH"):
                headers["Content-Length"] = "0"
            if len(found[2]) < 256:
                found[2][length] = headers
        request = httpx.Request(
            step.method,
            url,
            headers=headers,
            stream=httpx.ByteStream(content or b""),
            extensions=step.extensions,
        )
        request.read()
        response = await self.plain.handle_async_request(request)  # type: ignore[union-attr]
        response.request = request
        if _httpx_log.isEnabledFor(logging.INFO):
            _httpx_log.info(
                'HTTP Request: %s %s "%s %d %s"',
                request.method,
                url,
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
        if sets_cookies(response):
            self.cookies.extract_cookies(response)
        return response


# --- the drivers: perform the core's steps --------------------------------------------------


async def _ready(value: T) -> T:
    """An awaitable of ``value``: ``await client.generate(..., stream=True)`` gives the stream."""
    return value


class _SyncDriver:
    """Performs a call's steps with a sync httpx client."""

    __slots__ = ("http", "lane", "lanes", "opened", "steps")

    def __init__(self, lanes: Lanes[httpx.Client], steps: Steps) -> None:
        self.lanes = lanes
        self.steps = steps
        self.opened: list[httpx.Response] = []
        self.lane = -1  # taken at the first request, given back when the call ends

    def result(self) -> Any:
        """Run a call that hands no chunks out; its answer."""
        __tracebackhide__ = True
        self.lanes.ready()  # before the call's clock starts (the steps' first send)
        steps, do = self.steps, self._do
        value: Any = None
        error: Exception | None = None
        try:
            while True:
                try:
                    step = steps.throw(error) if error is not None else steps.send(value)
                except StopIteration as stop:
                    return Answer(stop.value) if type(stop.value) is dict else stop.value
                try:
                    value, error = do(step), None
                except Exception as exc:
                    value, error = None, exc
        finally:
            steps.close()
            self._close()

    def stream(self) -> Iterator[Answer]:
        """Run a call that hands out chunks, as an iterator of them."""
        __tracebackhide__ = True
        self.lanes.ready()  # before the call's clock starts (the steps' first send)
        steps, do = self.steps, self._do
        value: Any = None
        error: Exception | None = None
        last: dict[str, Any] | None = None
        try:
            while True:
                try:
                    step = steps.throw(error) if error is not None else steps.send(value)
                except StopIteration:
                    break
                if type(step) is Emit:
                    value, error = None, None
                    if step.chunk.get("done"):  # handed out once the call is complete
                        last = step.chunk
                    else:
                        yield Answer(step.chunk)
                    continue
                if type(step) is Stream:
                    take = step.reader.take
                    try:
                        for part in step.response.iter_bytes():
                            for chunk in take(part):
                                yield Answer(chunk)
                        value, error = step.reader.finish(), None
                        last = value[-1]  # the final chunk, handed out once the call is complete
                    except Exception as exc:
                        value, error = None, exc
                    continue
                try:
                    value, error = do(step), None
                except Exception as exc:
                    value, error = None, exc
            if last is not None:
                yield Answer(last)
        finally:
            steps.close()
            self._close()

    def _close(self) -> None:
        for response in self.opened:
            response.close()
        if self.lane >= 0:
            self.lanes.give(self.lane)
            self.lane = -1

    def _do(self, step: Any) -> Any:
        __tracebackhide__ = True
        kind = type(step)
        if kind is Open:
            if self.lane < 0:
                self.lane, self.http = self.lanes.take()
            request = self.http.build_request(
                step.method,
                step.url,
                content=step.content,
                headers=step.headers,
                extensions=step.extensions,
            )
            response = self.http.send(request, stream=True)
            self.opened.append(response)
            return response
        if kind is ReadBody:
            add = step.add
            for part in step.response.iter_bytes():
                add(part)
            return step.value()
        if kind is Sleep:
            time.sleep(step.seconds)
            return None
        raise TypeError(f"unknown step {step!r}")


class _AsyncDriver:
    """Performs a call's steps with an async httpx client."""

    __slots__ = ("http", "lane", "lanes", "opened", "steps")

    def __init__(self, lanes: Lanes[httpx.AsyncClient], steps: Steps) -> None:
        self.lanes = lanes
        self.steps = steps
        self.opened: list[httpx.Response] = []
        self.lane = -1  # taken at the first request, given back when the call ends

    async def result(self) -> Any:
        """Run a call that hands no chunks out; its answer."""
        __tracebackhide__ = True
        self.lanes.ready()  # before the call's clock starts (the steps' first send)
        steps, do = self.steps, self._do
        value: Any = None
        error: Exception | None = None
        try:
            while True:
                try:
                    step = steps.throw(error) if error is not None else steps.send(value)
                except StopIteration as stop:
                    return Answer(stop.value) if type(stop.value) is dict else stop.value
                try:
                    value, error = await do(step), None
                except Exception as exc:
                    value, error = None, exc
        finally:
            steps.close()
            await self._close()

    async def stream(self) -> AsyncIterator[Answer]:
        """Run a call that hands out chunks, as an async iterator of them."""
        __tracebackhide__ = True
        self.lanes.ready()  # before the call's clock starts (the steps' first send)
        steps, do = self.steps, self._do
        value: Any = None
        error: Exception | None = None
        last: dict[str, Any] | None = None
        try:
            while True:
                try:
                    step = steps.throw(error) if error is not None else steps.send(value)
                except StopIteration:
                    break
                if type(step) is Emit:
                    value, error = None, None
                    if step.chunk.get("done"):  # handed out once the call is complete
                        last = step.chunk
                    else:
                        yield Answer(step.chunk)
                    continue
                if type(step) is Stream:
                    take = step.reader.take
                    try:
                        async for part in step.response.aiter_bytes():
                            for chunk in take(part):
                                yield Answer(chunk)
                        value, error = step.reader.finish(), None
                        last = value[-1]  # the final chunk, handed out once the call is complete
                    except Exception as exc:
                        value, error = None, exc
                    continue
                try:
                    value, error = await do(step), None
                except Exception as exc:
                    value, error = None, exc
            if last is not None:
                yield Answer(last)
        finally:
            steps.close()
            await self._close()

    async def _close(self) -> None:
        for response in self.opened:
            if not response.is_closed:
                await response.aclose()
        if self.lane >= 0:
            self.lanes.give(self.lane)
            self.lane = -1

    async def _do(self, step: Any) -> Any:
        __tracebackhide__ = True
        kind = type(step)
        if kind is Open:
            if self.lane < 0:
                self.lane, self.http = self.lanes.take()
            http = self.http
            if type(http) is _OwnAsyncClient and http.takes_plain(step.url):
                response = await http.send_plain(step)
                self.opened.append(response)
                return response
            request = http.build_request(
                step.method,
                step.url,
                content=step.content,
                headers=step.headers,
                extensions=step.extensions,
            )
            response = await http.send(request, stream=True)
            self.opened.append(response)
            return response
        if kind is ReadBody:
            response = step.response
            if read_at_once(response):
                return step.at_once(response.content)
            add = step.add
            async for part in response.aiter_bytes():
                add(part)
            return step.value()
        if kind is Sleep:
            await asyncio.sleep(step.seconds)
            return None
        raise TypeError(f"unknown step {step!r}")
