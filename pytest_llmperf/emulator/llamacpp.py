"""The real-model backend: a GGUF file served through llama.cpp (llama-cpp-python).

Install it with ``pip install 'pytest-llmperf[llama]'``. The prompt is evaluated on its own
first, so ``prompt_eval_duration`` and ``eval_duration`` are llama.cpp's real phases.

A model whose steps are short runs on the event loop's thread, a slice of steps at a time,
so no thread is woken for each token. A slow one (or one busy with another request) runs in
a worker thread, which hands its tokens to the loop through a :class:`~.handoff.Handoff` and
goes on computing: the server keeps serving other requests meanwhile, and the model does not
wait for the loop between tokens.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import functools
import math
import os
import random
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Sequence
from pathlib import Path
from typing import Any

from pytest_llmperf.emulator import backends
from pytest_llmperf.emulator.backends import Finished, PromptEvaluated, Token
from pytest_llmperf.emulator.handoff import Closed, Handoff
from pytest_llmperf.emulator.profiles import ModelProfile, normalize_model_name
from pytest_llmperf.emulator.text import unit
from pytest_llmperf.errors import ConfigurationError

# A model whose steps (reading the prompt, one token) take less than this runs on the event
# loop's thread, giving the other requests a turn after each slice of SLICE_S.
INLINE_STEP_S = 0.005
SLICE_S = 0.002
Steps = Generator[backends.BackendEvent, None, None]
INSTALL_HINT = "install the real-model backend with: pip install 'pytest-llmperf[llama]'"


def llama_cpp_available() -> bool:
    """Whether llama-cpp-python can be imported here."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def default_threads() -> int:
    """llama-cpp-python's own default: half the cores, leaving the rest to the server.

    Generation is a chain of small steps that llama.cpp's threads meet after each: on a busy
    machine a thread more than the free cores waits at every meeting, and the stream slows
    several times over (2 threads on 2 shared cores streamed 160 tokens/s where 1 gave 1,500).
    """
    return max(1, (os.cpu_count() or 2) // 2)


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
    """A GGUF model behind the emulator's Ollama API.

    ``threads`` is llama.cpp's thread count, for the prompt and for generation alike
    (default: :func:`default_threads`).
    """

    def __init__(
        self, name: str, path: str | Path, n_ctx: int = 2048, threads: int | None = None
    ) -> None:
        self.path = Path(path)
        self.n_ctx = n_ctx
        self.threads = default_threads() if threads is None else threads
        if self.threads < 1:
            raise ConfigurationError(
                f"llama.cpp threads for {name!r} must be at least 1, got {self.threads}"
            )
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
        # One generation at a time on the context: a worker whose client has gone finishes
        # its current token before the next request's worker may start.
        self._busy = threading.Lock()
        self._step_s = math.inf  # the last request's mean step, in CPU time; unknown at first

    def _new(self, **extra: Any) -> Any:
        try:
            import llama_cpp
        except ImportError:
            raise ConfigurationError(
                f"cannot serve {self.profile.name!r} from {self.path}: llama-cpp-python is not "
                f"installed; {INSTALL_HINT}"
            ) from None
        _silence(llama_cpp)
        # verbose=True keeps llama-cpp-python from redirecting stdout/stderr to a /dev/null it
        # never closes; the silent log callback keeps llama.cpp's messages out of the output.
        llm = llama_cpp.Llama(
            model_path=str(self.path),
            n_ctx=self.n_ctx,
            n_threads=self.threads,
            n_threads_batch=self.threads,
            verbose=True,
            **extra,
        )
        llm.verbose = False  # and no line on stderr for every request from here on
        return llm

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

    async def generate(
        self, job: backends.Job, pacing: backends.Pacing
    ) -> AsyncIterator[backends.BackendEvent]:
        steps = generation_steps(self._llm, self.n_ctx, job)
        # A model whose steps are short runs on the event loop's own thread, a slice of steps
        # at a time: no thread to wake for each token (on a busy machine every wake-up waits
        # for a core). A slow one, or one busy with another request, runs in a worker.
        inline = self._step_s < INLINE_STEP_S and self._busy.acquire(blocking=False)
        events = self._inline(steps) if inline else self._in_worker(steps, pacing)
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

    async def _inline(self, steps: Steps) -> AsyncGenerator[backends.BackendEvent, None]:
        cpu, count, free = time.thread_time(), 0, False
        try:
            slice_ends = time.perf_counter() + SLICE_S
            while True:
                event = next(steps)
                count += 1
                if isinstance(event, Finished):
                    # Free the model before the answer ends, so the client's next request
                    # finds it free (and runs inline again).
                    self._free(steps, cpu, count)
                    free = True
                    yield event
                    return
                yield event
                if time.perf_counter() > slice_ends:
                    await asyncio.sleep(0)  # the other requests' turn
                    slice_ends = time.perf_counter() + SLICE_S
        finally:
            if not free:
                self._free(steps, cpu, count)

    def _free(self, steps: Steps, cpu: float, count: int) -> None:
        """The end of a request on the model: keep its steps' mean CPU time, release it."""
        if count:  # a preempted step is not slow: CPU time, not wall time
            self._step_s = (time.thread_time() - cpu) / count
        steps.close()
        self._busy.release()

    async def _in_worker(
        self, steps: Steps, pacing: backends.Pacing
    ) -> AsyncGenerator[backends.BackendEvent, None]:
        loop = asyncio.get_running_loop()
        feed: Handoff[backends.BackendEvent] = Handoff(loop)
        loop.run_in_executor(None, self._work, steps, pacing, feed)
        try:
            while True:
                for event in await feed.take():
                    yield event
                    if isinstance(event, Finished):
                        return
        finally:
            # The worker stops at its next step; the request does not wait for it, so a
            # client that hangs up frees its slot at once.
            feed.close()

    def _work(
        self, steps: Steps, pacing: backends.Pacing, feed: Handoff[backends.BackendEvent]
    ) -> None:
        """The worker thread: compute steps and hand them over until done or unwanted."""
        self._busy.acquire()
        cpu, count, last = time.thread_time(), 0, None
        try:
            while last is None:
                while not pacing.running.wait(0.05):  # the server pauses: do not run ahead
                    if feed.closed():
                        return
                if feed.closed():
                    return
                event = next(steps)
                count += 1
                if isinstance(event, Finished):
                    last = event  # handed over once the model is free (see _inline)
                else:
                    feed.put(event)
        except Closed:
            pass
        except BaseException as exc:  # the request's task raises it
            feed.fail(exc)
        finally:
            self._free(steps, cpu, count)
        if last is not None:
            with contextlib.suppress(Closed):
                feed.put(last)


def generation_steps(llm: Any, n_ctx: int, job: backends.Job) -> Steps:
    """The generation as steps: the prompt read, then one step a token, then the end.

    The same sampling as llama-cpp-python's ``create_completion`` (its ``generate`` with the
    same parameters and seed), so the same text; but each token is turned into text on its
    own, where ``create_completion`` turns the whole answer so far into text at every token
    (its cost grows with the answer). Stop sequences are the engine's.
    """
    import llama_cpp

    tokens = llm.tokenize(job.prompt.encode(), add_bos=True)
    room = n_ctx - len(tokens) - 1
    limit = max(1, room if job.num_predict < 0 else min(job.num_predict, room))
    llm.reset()
    llm.eval(tokens)  # generation finds the whole prompt read and starts at once
    yield PromptEvaluated(len(tokens))
    seed = job.seed if job.seed is not None else random.Random(llm._seed).randint(0, 2**32)
    llm.set_seed(seed)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    text = codecs.getincrementaldecoder("utf-8")(errors="ignore")
    generated = 0
    reason = "length"
    steps = llm.generate(
        tokens,
        temp=0.8 if job.temperature is None else job.temperature,
        top_k=40 if job.top_k is None else job.top_k,
        top_p=0.9 if job.top_p is None else job.top_p,
        repeat_penalty=1.1 if job.repeat_penalty is None else job.repeat_penalty,
    )
    try:
        for token in steps:
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                reason = "stop"
                break
            generated += 1
            if piece := text.decode(llm.detokenize([token])):
                yield Token(piece)
            if generated >= limit:
                break
    finally:
        steps.close()
    yield Finished(reason)


@functools.cache
def _silence(llama_cpp: Any) -> Any:
    """Send llama.cpp's log lines nowhere (once per process; the callback must stay alive)."""

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def _discard(level: int, text: bytes, user_data: Any) -> None:
        return None

    llama_cpp.llama_log_set(_discard, ctypes.c_void_p(0))
    return _discard


def _pool(vector: Any, normalize: bool) -> list[float]:
    """Mean-pool per-token embeddings (models without a pooling layer give one per token)."""
    if vector and isinstance(vector[0], list):
        width = len(vector[0])
        vector = [sum(row[i] for row in vector) / len(vector) for i in range(width)]
    values = [float(v) for v in vector]
    return unit(values) if normalize else values
