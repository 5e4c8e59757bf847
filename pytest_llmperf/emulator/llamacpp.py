"""The real-model backend: a GGUF file served through llama.cpp (llama-cpp-python).

Install it with ``pip install 'pytest-llmperf[llama]'``. The prompt is evaluated on its own
first, so ``prompt_eval_duration`` and ``eval_duration`` are llama.cpp's real phases; the
model runs in a worker thread so the server keeps serving other requests meanwhile.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from pytest_llmperf.emulator.backends import (
    BackendEvent,
    Finished,
    Job,
    Pacing,
    PromptEvaluated,
    Token,
)
from pytest_llmperf.emulator.profiles import ModelProfile, normalize_model_name
from pytest_llmperf.emulator.text import unit
from pytest_llmperf.errors import ConfigurationError

INSTALL_HINT = "install the real-model backend with: pip install 'pytest-llmperf[llama]'"


def llama_cpp_available() -> bool:
    """Whether llama-cpp-python can be imported here."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def parse_gguf_spec(spec: str) -> tuple[str, Path]:
    """Split ``NAME=PATH`` (the ``--gguf`` option) and check that the file exists."""
    name, sep, path = spec.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise ConfigurationError(
            f"--gguf takes NAME=PATH (for example stories=model.gguf), got {spec!r}"
        )
    file = Path(path.strip()).expanduser()
    if not file.is_file():
        raise ConfigurationError(f"GGUF model file {str(file)!r} for {name!r} does not exist")
    return name.strip(), file


class LlamaCppBackend:
    """A GGUF model behind the emulator's Ollama API."""

    def __init__(self, name: str, path: str | Path, n_ctx: int = 2048) -> None:
        self.path = Path(path)
        self.n_ctx = n_ctx
        self.profile = ModelProfile(
            name=normalize_model_name(name),
            family="llama",
            parameter_size="unknown",
            quantization_level="unknown",
            size=max(1, self.path.stat().st_size),
            context_length=n_ctx,
            load_s=0.0,
            capabilities=("completion", "embedding"),
        )
        self._llm: Any = None
        self._embedder: Any = None

    def _new(self, **extra: Any) -> Any:
        try:
            import llama_cpp
        except ImportError:
            raise ConfigurationError(
                f"cannot serve {self.profile.name!r} from {self.path}: llama-cpp-python is not "
                f"installed; {INSTALL_HINT}"
            ) from None
        _silence(llama_cpp)
        threads = max(1, min(4, os.cpu_count() or 1))
        # verbose=True keeps llama-cpp-python from redirecting stdout/stderr to a /dev/null it
        # never closes; the silent log callback keeps llama.cpp's messages out of the output.
        return llama_cpp.Llama(
            model_path=str(self.path), n_ctx=self.n_ctx, n_threads=threads, verbose=True, **extra
        )

    async def load(self) -> None:
        self._llm = await asyncio.to_thread(self._new)

    def unload(self) -> None:
        self._llm = None
        self._embedder = None

    def count_tokens(self, text: str) -> int:
        llm = self._llm or self._embedder
        if llm is None:
            return len(text.split())
        return len(llm.tokenize(text.encode(), add_bos=False))

    async def embed(self, texts: Sequence[str], normalize: bool) -> list[list[float]]:
        if self._embedder is None:
            self._embedder = await asyncio.to_thread(self._new, embedding=True)
        vectors = [await asyncio.to_thread(self._embedder.embed, t) for t in texts]
        return [_pool(v, normalize) for v in vectors]

    async def generate(self, job: Job, pacing: Pacing) -> AsyncIterator[BackendEvent]:
        # llama.cpp computes each token when asked for it, so a pause needs no adjustment.
        llm = self._llm
        tokens = llm.tokenize(job.prompt.encode(), add_bos=True)
        room = self.n_ctx - len(tokens) - 1
        limit = room if job.num_predict < 0 else min(job.num_predict, room)
        await asyncio.to_thread(_evaluate, llm, tokens)
        yield PromptEvaluated(len(tokens))
        stream: Iterator[dict[str, Any]] = await asyncio.to_thread(
            llm.create_completion,
            tokens,
            max_tokens=max(limit, 1),
            temperature=0.8 if job.temperature is None else job.temperature,
            top_k=40 if job.top_k is None else job.top_k,
            top_p=0.9 if job.top_p is None else job.top_p,
            repeat_penalty=1.1 if job.repeat_penalty is None else job.repeat_penalty,
            stop=list(job.stop) or None,
            seed=job.seed,
            stream=True,
        )
        reason = "stop"
        while (chunk := await asyncio.to_thread(next, stream, None)) is not None:
            choice = chunk["choices"][0]
            if choice["text"]:
                yield Token(choice["text"])
            if choice.get("finish_reason"):
                reason = "length" if choice["finish_reason"] == "length" else "stop"
        yield Finished(reason)


@functools.cache
def _silence(llama_cpp: Any) -> Any:
    """Send llama.cpp's log lines nowhere (once per process; the callback must stay alive)."""

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def _discard(level: int, text: bytes, user_data: Any) -> None:
        return None

    llama_cpp.llama_log_set(_discard, ctypes.c_void_p(0))
    return _discard


def _evaluate(llm: Any, tokens: list[int]) -> None:
    """Read the prompt into the context; the completion then reuses it as a cached prefix."""
    llm.reset()
    llm.eval(tokens)


def _pool(vector: Any, normalize: bool) -> list[float]:
    """Mean-pool per-token embeddings (models without a pooling layer give one per token)."""
    if vector and isinstance(vector[0], list):
        width = len(vector[0])
        vector = [sum(row[i] for row in vector) / len(vector) for i in range(width)]
    values = [float(v) for v in vector]
    return unit(values) if normalize else values
