"""What a model backend is: a thing that loads, evaluates a prompt and writes tokens.

Two backends exist: :mod:`.synthetic` (timing from a latency profile, deterministic text) and
:mod:`.llamacpp` (a real GGUF model). The engine drives both the same way and measures them.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pytest_llmperf.emulator.profiles import ModelProfile


@dataclass(frozen=True)
class Job:
    """One generation asked of a backend, already validated by the HTTP layer."""

    model: str
    prompt: str
    seed: int | None = None
    num_predict: int = -1
    stop: tuple[str, ...] = ()
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    repeat_penalty: float | None = None
    format: Any = None
    tools: Sequence[Mapping[str, Any]] = ()
    wants_tool_call: bool = False


@dataclass
class Pacing:
    """Time the server spent outside the model during a generation (injected stalls).

    A backend that paces itself by a schedule moves the schedule by ``paused_s``, so tokens
    after a pause keep the model's rate instead of arriving all at once. A backend computing
    in a thread of its own waits for ``running`` between tokens, so it does not compute ahead
    while the server pauses (the engine clears it for the length of a pause).
    """

    paused_s: float = 0.0
    running: threading.Event = field(default_factory=lambda: _set(threading.Event()))


def _set(event: threading.Event) -> threading.Event:
    event.set()
    return event


@dataclass(frozen=True)
class PromptEvaluated:
    """The prompt has been read: generation starts now."""

    count: int


@dataclass(frozen=True)
class Token:
    """One generated token of text."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    """The model calls a tool (chat with ``tools`` only)."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finished:
    """Generation ended by itself: ``stop`` (end of answer) or ``length`` (num_predict)."""

    reason: str


BackendEvent = PromptEvaluated | Token | ToolCall | Finished


class Backend(Protocol):
    """A model that the emulator can serve."""

    profile: ModelProfile

    async def load(self) -> None:
        """Bring the model into memory (the engine times this as ``load_duration``)."""

    def unload(self) -> None:
        """Free the model's memory."""

    def generate(self, job: Job, pacing: Pacing) -> AsyncIterator[BackendEvent]:
        """Evaluate the prompt, then yield tokens; ends with one :class:`Finished`."""
        ...

    async def embed(self, texts: Sequence[str], normalize: bool) -> list[list[float]]:
        """One vector per text."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many tokens the model's tokenizer makes of ``text``."""
        ...
