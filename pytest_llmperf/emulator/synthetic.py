"""The synthetic backend: a latency profile's timing with deterministic text.

Delays are scheduled against absolute deadlines from the start of each phase, so a stream's
delivered rate stays at the profile's tokens/s however long each loop turn takes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from pytest_llmperf.emulator import backends, text
from pytest_llmperf.emulator.backends import Finished, PromptEvaluated, Token, ToolCall
from pytest_llmperf.emulator.profiles import ModelProfile


class SyntheticBackend:
    """Serves a :class:`ModelProfile` with sleeps instead of a model."""

    def __init__(self, profile: ModelProfile, time_scale: float = 1.0) -> None:
        self.profile = profile
        self.time_scale = time_scale

    async def load(self) -> None:
        await asyncio.sleep(self.profile.load_s * self.time_scale)

    def unload(self) -> None:
        return None

    def count_tokens(self, text_: str) -> int:
        return text.count_tokens(text_)

    async def embed(self, texts: Sequence[str], normalize: bool) -> list[list[float]]:
        count = sum(self.count_tokens(t) for t in texts)
        await asyncio.sleep(count / self.profile.prompt_tokens_per_s * self.time_scale)
        dim = self.profile.embedding_length
        return [text.embedding(self.profile.name, t, dim, normalize) for t in texts]

    def answer(self, job: backends.Job) -> list[str]:
        """The tokens of the whole answer to ``job``, before num_predict cuts it."""
        generator = text.rng(self.profile.name, job.prompt, job.seed)
        if job.format is not None:
            return text.json_tokens(text.json_document(generator, job.format))
        low, high = self.profile.response_tokens
        return text.sentence_tokens(generator, generator.randint(low, high))

    async def generate(
        self, job: backends.Job, pacing: backends.Pacing
    ) -> AsyncIterator[backends.BackendEvent]:
        profile, scale = self.profile, self.time_scale
        jitter = _Jitter(text.rng(profile.name, job.prompt, job.seed, "jitter"), profile.jitter)
        prompt_tokens = self.count_tokens(job.prompt)
        await asyncio.sleep(prompt_tokens / profile.prompt_tokens_per_s * scale * jitter())
        yield PromptEvaluated(prompt_tokens)

        if job.wants_tool_call and job.tools:
            await asyncio.sleep(profile.first_token_s * scale * jitter())
            yield _tool_call(job.tools[0], text.rng(profile.name, job.prompt, job.seed))
            yield Finished("stop")
            return

        tokens = self.answer(job)
        limit = job.num_predict if job.num_predict >= 0 else len(tokens)
        reason = "length" if limit < len(tokens) else "stop"
        start = time.perf_counter()
        deadline = profile.first_token_s * scale * jitter()
        step = scale / profile.tokens_per_s
        for index, token in enumerate(tokens[:limit]):
            if index:
                deadline += step * jitter()
            await _sleep_until(start + pacing.paused_s + deadline)
            yield Token(token)
        yield Finished(reason)


def _tool_call(tool: Mapping[str, Any], generator: random.Random) -> ToolCall:
    function = tool.get("function", {})
    name = function.get("name", "tool") if isinstance(function, Mapping) else "tool"
    return ToolCall(str(name), text.tool_arguments(generator, tool))


class _Jitter:
    """Multipliers around 1.0, deterministic for a request: ``1 +- spread``."""

    def __init__(self, generator: random.Random, spread: float) -> None:
        self._generator = generator
        self._spread = spread

    def __call__(self) -> float:
        if not self._spread:
            return 1.0
        return self._generator.uniform(1.0 - self._spread, 1.0 + self._spread)


async def _sleep_until(moment: float) -> None:
    delay = moment - time.perf_counter()
    await asyncio.sleep(delay if delay > 0 else 0)
