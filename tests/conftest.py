"""Fixtures shared by the project's own tests."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

# pytester's in-process runs drop the modules first imported inside them, and some of what
# the plugin imports lazily cannot be imported twice: httpx keeps a map of httpcore's
# exception classes from its first use, and C extensions (PyYAML's, and numpy's, which
# redis imports) refuse a second load. fakeredis, httpcore (and httpcore2, httpx2's), redis
# and vcr's YAML serializer are imported here, once, before any inner run.
import fakeredis  # noqa: F401
import httpcore  # noqa: F401
import httpcore2  # noqa: F401
import httpx
import pytest
import redis  # noqa: F401
import vcr.serializers.yamlserializer  # noqa: F401
from client_faces import Face
from inner_runs import LEFT_OUT

from pytest_llmperf.emulator import Catalogue, EmulatorApp, EmulatorServer, load_catalogue
from pytest_llmperf.emulator.profiles import ModelProfile

STORIES_ENV = "LLMPERF_STORIES_GGUF"
STORIES_DEFAULT = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "models" / "stories260K.gguf"
)

# Test profiles: the shipped proportions, 20x faster, without jitter.
FAST_SCALE = 0.05


@pytest.fixture(autouse=True)
def _inner_runs_leave_out(request: pytest.FixtureRequest) -> None:
    """pytester's inner runs leave out the plugins of ``inner_runs.LEFT_OUT``."""
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")  # it clears PYTEST_ADDOPTS for its runs: set after
        monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setenv("PYTEST_ADDOPTS", " ".join(LEFT_OUT))


@pytest.fixture
def catalogue() -> Catalogue:
    """The shipped profiles at 1/20 of their delays and without jitter."""
    shipped = load_catalogue().with_server(time_scale=FAST_SCALE)
    for profile in list(shipped.models.values()):
        shipped = shipped.with_model(_no_jitter(profile))
    return shipped


def _no_jitter(profile: ModelProfile) -> ModelProfile:
    from dataclasses import replace

    return replace(profile, jitter=0.0)


@pytest.fixture
async def asgi_client(catalogue: Catalogue) -> AsyncIterator[httpx.AsyncClient]:
    """An async httpx client talking to an in-process emulator through ASGI."""
    app = EmulatorApp(catalogue)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


@pytest.fixture(params=["sync", "async"])
def face(request: pytest.FixtureRequest) -> Iterator[Callable[..., Face]]:
    """``face(host=..., **options)``: a client of this test's face (sync or async)."""
    loop = asyncio.new_event_loop()
    made: list[Face] = []

    def make(**options: Any) -> Face:
        made.append(Face(request.param, loop, **options))
        return made[-1]

    yield make
    for client in made:
        client.close()
    loop.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., EmulatorServer]]:
    """Start emulators on loopback ports: ``serve(catalogue_or_app)``; all stop at test end."""
    servers: list[EmulatorServer] = []

    def start(what: Catalogue | EmulatorApp) -> EmulatorServer:
        app = what if isinstance(what, EmulatorApp) else EmulatorApp(what)
        server = EmulatorServer(app).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def live(serve: Callable[..., EmulatorServer], catalogue: Catalogue) -> EmulatorServer:
    """An emulator with the fast test catalogue on a loopback port."""
    return serve(catalogue)


@pytest.fixture(scope="session")
def stories_gguf() -> Path:
    """The real TinyStories model; skips when the file or llama-cpp-python is absent.

    Under CI (``CI`` set), where ``.ci/run`` provides both, their absence is a failure.
    """
    from pytest_llmperf.emulator import llama_cpp_available

    path = Path(os.environ.get(STORIES_ENV) or STORIES_DEFAULT).resolve()
    if not path.is_file():
        missing(f"real model not found at {path}; set {STORIES_ENV} to stories260K.gguf")
    if not llama_cpp_available():
        missing("llama-cpp-python is not installed: pip install 'pytest-llmperf[llama]'")
    return path


def missing(reason: str) -> NoReturn:
    """Skip for a reason, except under CI, where what is missing should have been there."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free loopback port for this test run (see redis_server.py)."""
    from redis_server import RedisServer

    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (mounting one needs root; CI runs as root, so there it must work)."""
    import shutil
    import subprocess

    folder = tmp_path / "tiny"
    folder.mkdir()
    mounted = shutil.which("mount") is not None and (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if not mounted:
        if os.environ.get("CI") and os.geteuid() == 0:
            pytest.fail("cannot mount a tmpfs as root under CI")
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)
