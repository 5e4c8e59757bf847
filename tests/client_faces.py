"""A client of either face whose calls return plain results, so one test covers both."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pytest_llmperf import AsyncOllamaClient, OllamaClient, Recorder


class Face:
    """A client of either face whose calls return plain results (streams as lists)."""

    def __init__(self, kind: str, loop: asyncio.AbstractEventLoop, **options: Any) -> None:
        self.kind = kind
        self.loop = loop
        self.records = options.setdefault("on_record", Recorder())
        cls = OllamaClient if kind == "sync" else AsyncOllamaClient
        self.client: Any = cls(**options)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if self.kind == "sync":
                result = getattr(self.client, method)(*args, **kwargs)
                return list(result) if kwargs.get("stream") else result
            return self.loop.run_until_complete(self._async(method, args, kwargs))

        return call

    async def _async(self, method: str, args: Any, kwargs: Any) -> Any:
        result = await getattr(self.client, method)(*args, **kwargs)
        if kwargs.get("stream"):
            return [chunk async for chunk in result]
        return result

    def close(self) -> None:
        if self.kind == "sync":
            self.client.close()
        else:
            self.loop.run_until_complete(self.client.aclose())
