"""The one interception point at the HTTP transport, for every client in the process.

The point wraps the send method of httpx's transports (``HTTPTransport.handle_request``,
``AsyncHTTPTransport.handle_async_request``), of httpx2's (the fork ``openai>=2`` uses), and
of our own :class:`~pytest_llmperf.client.transport.AsyncLoopTransport` and
:class:`~pytest_llmperf.client.sync_transport.DueTransport`, and of ``requests``'
``HTTPAdapter.send`` (:mod:`~pytest_llmperf.observe.other_libraries`). A module that is not
imported yet is wrapped when it is, so importing the plugin imports no HTTP library, and a
client built at import time (a module-level ``ollama.Client()``) is covered like any other.

Each request then passes two layers, in this order:

1. **measurement**: an LLM request (see :class:`~pytest_llmperf.observe.measure.Routes`)
   becomes an :class:`~pytest_llmperf.observe.measure.Exchange`, which gives one record to
   the observer's current recorder when its answer ends. Requests of our own client carry
   :data:`OWN`: it records them itself, with what only it knows (tier, cache, fallback).
2. **the cassette**, when one is in use: it replays the answer, or records it as it passes.

So a replayed answer is measured like a live one, on the times the cassette recorded.

The wrapping is process-wide, as patching a class is; it is counted (:func:`install` and
:func:`uninstall` nest, as pytester's inline runs do) and undone when the last user leaves.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from pytest_llmperf.observe.measure import Exchange, Routes, Sink, origin
from pytest_llmperf.observe.streams import watched

if TYPE_CHECKING:
    from pytest_llmperf.observe.cassettes.session import CassetteSession

OWN = "llmperf_own"  # in a request's extensions: our client measures this call itself

# (module, class, method, how it is wrapped): httpx-like transports, and requests' adapter
TARGETS: Sequence[tuple[str, str, str, str]] = (
    ("httpx", "HTTPTransport", "handle_request", "httpx"),
    ("httpx", "AsyncHTTPTransport", "handle_async_request", "httpx async"),
    ("httpx2", "HTTPTransport", "handle_request", "httpx2"),
    ("httpx2", "AsyncHTTPTransport", "handle_async_request", "httpx2 async"),
    (
        "pytest_llmperf.client.transport",
        "AsyncLoopTransport",
        "handle_async_request",
        "httpx async",
    ),
    ("pytest_llmperf.client.sync_transport", "DueTransport", "handle_request", "httpx"),
    ("requests.adapters", "HTTPAdapter", "send", "requests"),
)

_ROUTES = Routes()
_ORIGINS: dict[tuple[str, str, int | None], str] = {}  # (scheme, host, port) -> its origin
_unmeasured: ContextVar[bool] = ContextVar("llmperf_unmeasured", default=False)


class Observer(Protocol):
    """What the measurement layer reports to (the plugin's run)."""

    routes: Routes

    def sink(self) -> Sink | None:
        """Where the record of a call starting now goes, or ``None`` to leave it out."""


@contextmanager
def not_measured() -> Iterator[None]:
    """LLM calls started inside this block (in this thread or task) are not recorded."""
    token = _unmeasured.set(True)
    try:
        yield
    finally:
        _unmeasured.reset(token)


@dataclass
class _Point:
    """The state of the interception: who listens, which cassette plays, what is wrapped."""

    users: int = 0
    observers: list[Observer] = field(default_factory=list)
    cassettes: list[CassetteSession] = field(default_factory=list)
    # (class, method) -> what it was; by the class itself: pytester's inline runs drop the
    # modules imported inside them from sys.modules, not the classes we wrapped
    originals: dict[tuple[type, str], Any] = field(default_factory=dict)
    finder: _WrapOnImport | None = None

    # --- one request ----------------------------------------------------------------------

    def watch(
        self, path: str, host: Callable[[], str], content: Callable[[], bytes], source: str
    ) -> Exchange | None:
        """The exchange to measure for a request to ``path``, or ``None`` if it is not one."""
        if not self.observers or _unmeasured.get():
            return None
        observer = self.observers[-1]
        match = observer.routes.match(path)
        if match is None:
            return None
        sink = observer.sink()
        if sink is None:
            return None
        return Exchange(match, host(), content(), sink, source)

    def watch_httpx(self, request: Any, source: str) -> Exchange | None:
        # watch() spelt out: this runs on every request of the process
        if not self.observers or OWN in request.extensions or _unmeasured.get():
            return None
        observer = self.observers[-1]
        url = request.url
        # the URL as httpx parsed it, where it has that (its public properties decode each
        # part again at every reading): the path still percent-encoded, the host as sent
        try:
            parsed = url._uri_reference
            path, key = parsed.path, (parsed.scheme, parsed.host, parsed.port)
        except AttributeError:
            path, key = url.path, (url.scheme, url.host, url.port)
        match = observer.routes.match(url.path if "%" in path else path)
        if match is None:
            return None
        sink = observer.sink()
        if sink is None:
            return None
        host = _ORIGINS.get(key)
        if host is None:
            host = origin(url.scheme, url.host, url.port)
            if len(_ORIGINS) < 4096:  # (a bound, for a process that calls many hosts)
                _ORIGINS[key] = host
        try:
            content: bytes = request._content  # (Request.content, without its checks)
        except AttributeError:  # a streamed body that was not read: no model or digest to take
            content = b""
        return Exchange(match, host, content, sink, source)

    def routes(self) -> Routes:
        """The LLM routes: the observer's (with its prefixes), or the known ones."""
        return self.observers[-1].routes if self.observers else _ROUTES

    def cassette_for(self, request: Any) -> CassetteSession | None:
        """The cassette that answers ``request``: beside pytest-recording, LLM calls only."""
        cassette = self.cassettes[-1] if self.cassettes else None
        if cassette is None or cassette.others:
            return cassette
        return cassette if self.routes().match(request.url.path) is not None else None

    def send(self, transport: Any, request: Any, send: Any, hx: ModuleType) -> Any:
        __tracebackhide__ = True
        cassette = self.cassette_for(request) if self.cassettes else None
        exchange = self.watch_httpx(request, hx.__name__) if self.observers else None
        if exchange is None:
            if cassette is None:
                return send(transport, request)
            return cassette.handle(transport, request, send, hx)
        try:
            if cassette is None:
                response = send(transport, request)
            else:
                response = cassette.handle(transport, request, send, hx)
        except BaseException as exc:
            exchange.finish(_outcome(exc, hx), exc)
            raise
        return watched(response, exchange, hx)

    async def send_async(self, transport: Any, request: Any, send: Any, hx: ModuleType) -> Any:
        __tracebackhide__ = True
        cassette = self.cassette_for(request) if self.cassettes else None
        exchange = self.watch_httpx(request, hx.__name__) if self.observers else None
        if exchange is None:
            if cassette is None:
                return await send(transport, request)
            return await cassette.handle_async(transport, request, send, hx)
        try:
            if cassette is None:
                response = await send(transport, request)
            else:
                response = await cassette.handle_async(transport, request, send, hx)
        except BaseException as exc:
            exchange.finish(_outcome(exc, hx), exc)
            raise
        return watched(response, exchange, hx)

    # --- wrapping the transports ----------------------------------------------------------

    def wrap(self, module: ModuleType) -> None:
        """Wrap the send methods of ``module``'s transports (once)."""
        for name, cls_name, method, how in TARGETS:
            cls = getattr(module, cls_name, None) if name == module.__name__ else None
            if cls is None or (cls, method) in self.originals:
                continue
            original = getattr(cls, method)
            self.originals[(cls, method)] = original
            setattr(cls, method, _wrapper(self, original, how))

    def unwrap(self) -> None:
        for (cls, method), original in self.originals.items():
            setattr(cls, method, original)
        self.originals.clear()


POINT = _Point()


def install() -> None:
    """Wrap the transports of every HTTP library we know, now or when it is imported."""
    POINT.users += 1
    if POINT.users > 1:
        return
    names = {target[0] for target in TARGETS}
    for name in names:
        module = sys.modules.get(name)
        if module is not None:
            POINT.wrap(module)
    POINT.finder = _WrapOnImport(names - set(sys.modules), POINT.wrap)
    sys.meta_path.insert(0, POINT.finder)


def uninstall() -> None:
    """Undo :func:`install` once; the last one puts the transports back as they were."""
    POINT.users -= 1
    if POINT.users > 0:
        return
    if POINT.finder is not None and POINT.finder in sys.meta_path:
        sys.meta_path.remove(POINT.finder)
    POINT.finder = None
    POINT.unwrap()


@contextmanager
def _joined(stack: list[Any], member: Any) -> Iterator[None]:
    """``member`` on top of one of the point's stacks (observers, cassettes) while inside."""
    install()
    stack.append(member)
    try:
        yield
    finally:
        stack.remove(member)
        uninstall()


def observing(observer: Observer) -> AbstractContextManager[None]:
    """Measure the LLM calls of the whole process for ``observer`` while inside."""
    return _joined(POINT.observers, observer)


def start_observing(observer: Observer) -> Callable[[], None]:
    """:func:`observing` for code that cannot hold a block open; call the result to stop."""
    block = observing(observer)
    block.__enter__()

    def stop() -> None:
        block.__exit__(None, None, None)

    return stop


def playing(cassette: CassetteSession) -> AbstractContextManager[None]:
    """Send every request of the process through ``cassette`` while inside."""
    return _joined(POINT.cassettes, cassette)


# --- the wrappers ---------------------------------------------------------------------------


def _wrapper(point: _Point, send: Any, how: str) -> Any:
    """The send method that puts ``send`` behind the point (``how``: see TARGETS)."""
    library, _, mode = how.partition(" ")
    if library == "requests":
        from pytest_llmperf.observe.other_libraries import requests_send

        wrapped = requests_send(point, send)
    else:
        hx = sys.modules.get(library) or importlib.import_module(library)
        wrapped = (_async_send if mode == "async" else _sync_send)(point, send, hx)
    wrapped.__llmperf_wraps__ = send  # what it stands in front of (transport.mocked())
    return wrapped


def _sync_send(point: _Point, send: Any, hx: ModuleType) -> Any:
    def handle_request(self: Any, request: Any) -> Any:
        __tracebackhide__ = True
        return point.send(self, request, send, hx)

    return handle_request


def _async_send(point: _Point, send: Any, hx: ModuleType) -> Any:
    async def handle_async_request(self: Any, request: Any) -> Any:
        __tracebackhide__ = True
        return await point.send_async(self, request, send, hx)

    return handle_async_request


def _outcome(exc: BaseException, hx: ModuleType) -> str:
    if isinstance(exc, hx.TimeoutException):
        return "timeout"
    if isinstance(exc, Exception):
        return "error"
    return "cancelled"  # KeyboardInterrupt, a cancelled task


class _WrapOnImport(importlib.abc.MetaPathFinder):
    """Runs ``then(module)`` right after one of ``names`` is imported."""

    def __init__(self, names: set[str], then: Callable[[ModuleType], None]) -> None:
        self.names = names
        self.then = then

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _ThenLoader(spec.loader, self.then)
                return spec
        return None


class _ThenLoader(importlib.abc.Loader):
    """A module's own loader, and then a call with the loaded module."""

    def __init__(self, inner: Any, then: Callable[[ModuleType], None]) -> None:
        self.inner = inner
        self.then = then

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self.inner.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__.loader = self.inner  # type: ignore[union-attr]
        module.__loader__ = self.inner
        self.inner.exec_module(module)
        self.then(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
