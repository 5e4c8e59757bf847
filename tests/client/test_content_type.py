"""Every JSON body goes out with ``Content-Type: application/json``, from both faces.

FastAPI servers (llama-cpp-python's, vLLM) refuse a JSON body without it. The server here is
the emulator behind a check of the same strictness, on a real loopback port, so the async
face's own transport is what is tested, not a mock of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from client_faces import Face

from pytest_llmperf import EmulatorServer
from pytest_llmperf.emulator import Catalogue, EmulatorApp
from pytest_llmperf.emulator.app import Responder

HELLO = [{"role": "user", "content": "hello"}]
JSON = "application/json"


class StrictApp(EmulatorApp):
    """The emulator, refusing a body without a JSON content type as FastAPI does."""

    def __init__(self, catalogue: Catalogue) -> None:
        super().__init__(catalogue)
        self.seen: list[tuple[str, str, list[str]]] = []  # method, path, content types

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        types = [v.decode("latin-1") for k, v in scope["headers"] if k == b"content-type"]
        self.seen.append((scope["method"], scope["path"], types))
        if scope["method"] == "POST" and [t.partition(";")[0] for t in types] != [JSON]:
            await Responder(send).json({"detail": "Input should be a valid dictionary"}, 422)
            return
        await super().__call__(scope, receive, send)


@pytest.fixture
def strict(serve: Callable[..., EmulatorServer], catalogue: Catalogue) -> EmulatorServer:
    return serve(StrictApp(catalogue))


def seen(server: EmulatorServer) -> list[tuple[str, str, list[str]]]:
    app = server.app
    assert isinstance(app, StrictApp)
    return app.seen


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("api", ["ollama", "openai"])
def test_generations_send_their_json_with_its_content_type(
    face: Callable[..., Face], strict: EmulatorServer, api: str, stream: bool
) -> None:
    client = face(host=strict.url, api=api)
    generated = client.generate(tier="fast", prompt="hi", stream=stream)
    chatted = client.chat(tier="fast", messages=HELLO, stream=stream)
    assert generated and chatted
    if not stream:
        assert client.embed(model="llama3.2:1b", input="hi")["embeddings"]
    assert [r.outcome for r in client.records] == ["ok"] * (2 if stream else 3)
    posts = [(path, types) for method, path, types in seen(strict) if method == "POST"]
    assert len(posts) == len(client.records)
    assert all(types == [JSON] for _, types in posts)


def test_requests_without_a_body_carry_no_content_type(
    face: Callable[..., Face], strict: EmulatorServer
) -> None:
    client = face(host=strict.url)
    assert client.list()["models"]
    client.ps()
    assert client.show("llama3.2:1b")
    assert seen(strict) == [
        ("GET", "/api/tags", []),
        ("GET", "/api/ps", []),
        ("POST", "/api/show", [JSON]),
    ]


def test_a_content_type_the_caller_gives_replaces_ours(
    face: Callable[..., Face], strict: EmulatorServer
) -> None:
    mine = "application/json; charset=utf-8"
    client = face(host=strict.url, headers={"content-type": mine, "X-Trace": "1"})
    assert client.generate(tier="fast", prompt="hi", stream=True)
    assert seen(strict) == [("POST", "/api/generate", [mine])]
