"""Run the same client test through the sync and the async face."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from client_faces import Face


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
