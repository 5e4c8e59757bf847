"""pytest_httpx and respx (both of its modes) stand in for the server for both client faces.

So code that takes our client can be unit-tested with no server at all; the calls are
recorded like any other.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pytest_llmperf import AsyncOllamaClient, OllamaClient, Recorder

URL = "http://mocked.test:11434"
WHOLE = {"model": "m", "response": "mocked", "done": True, "eval_count": 1}
LINES = [
    {"model": "m", "response": "mo", "done": False},
    {"model": "m", "response": "cked", "done": False},
    {"model": "m", "response": "", "done": True, "eval_count": 2},
]
STREAMED = b"".join(json.dumps(line).encode() + b"\n" for line in LINES)


async def ask_both_ways(stream: bool, records: Recorder) -> list[str]:
    """Whole and streamed answers through each face; the texts they gave."""
    texts = []
    with OllamaClient(URL, cache=None, on_record=records) as client:
        if stream:
            texts.append("".join(c.response for c in client.generate("m", "hi", stream=True)))
        else:
            texts.append(client.generate("m", "hi").response)
    async with AsyncOllamaClient(URL, cache=None, on_record=records) as aclient:
        if stream:
            chunks = [c.response async for c in await aclient.generate("m", "hi", stream=True)]
            texts.append("".join(chunks))
        else:
            texts.append((await aclient.generate("m", "hi")).response)
    return texts


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_pytest_httpx_answers_both_faces(httpx_mock: Any, stream: bool) -> None:
    from pytest_httpx import IteratorStream

    for _ in range(2):
        if stream:
            httpx_mock.add_response(
                method="POST", url=f"{URL}/api/generate", stream=IteratorStream([STREAMED])
            )
        else:
            httpx_mock.add_response(method="POST", url=f"{URL}/api/generate", json=WHOLE)
    records = Recorder()
    assert await ask_both_ways(stream, records) == ["mocked", "mocked"]
    assert len(httpx_mock.get_requests()) == 2
    assert [(r.outcome, r.output_tokens) for r in records] == [("ok", 2 if stream else 1)] * 2


@pytest.fixture(params=["httpcore", "httpx"])
def respx_router(request: pytest.FixtureRequest) -> Iterator[Any]:
    import respx

    with respx.mock(base_url=URL, using=request.param, assert_all_called=True) as router:
        yield router


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_respx_answers_both_faces_in_both_modes(respx_router: Any, stream: bool) -> None:
    answer = httpx.Response(200, content=STREAMED) if stream else httpx.Response(200, json=WHOLE)
    route = respx_router.post("/api/generate").mock(return_value=answer)
    records = Recorder()
    assert await ask_both_ways(stream, records) == ["mocked", "mocked"]
    assert route.call_count == 2
    assert [r.outcome for r in records] == ["ok", "ok"]


async def test_once_the_mock_is_gone_the_async_face_goes_back_to_its_own_transport(
    httpx_mock: Any,
) -> None:
    from pytest_llmperf.client.transport import mocked

    assert mocked()  # httpx_mock is active in this test
    httpx_mock.add_response(method="POST", url=f"{URL}/api/generate", json=WHOLE)
    async with AsyncOllamaClient(URL, cache=None) as client:
        assert (await client.generate("m", "hi")).response == "mocked"


def test_without_a_mock_nothing_is_mocked() -> None:
    from pytest_llmperf.client.transport import mocked

    assert not mocked()
