"""Build an emulator from a profile file, a time scale and GGUF models."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pytest_llmperf.emulator.app import EmulatorApp
from pytest_llmperf.emulator.llamacpp import LlamaCppBackend, parse_gguf_spec
from pytest_llmperf.emulator.profiles import load_catalogue


def build_app(
    profiles: Path | None = None,
    gguf: Iterable[str] = (),
    time_scale: float | None = None,
    gguf_threads: int | None = None,
    **server: int,
) -> EmulatorApp:
    """An emulator app from a profile file, ``NAME=PATH`` GGUF specs and server overrides.

    ``gguf_threads`` is llama.cpp's thread count for the GGUF models (default: half the cores).
    """
    catalogue = load_catalogue(profiles)
    changes: dict[str, float] = {k: v for k, v in server.items() if v is not None}
    if time_scale is not None:
        changes["time_scale"] = time_scale * catalogue.server.time_scale
    catalogue = catalogue.with_server(**changes)
    backends = [LlamaCppBackend(*parse_gguf_spec(spec), threads=gguf_threads) for spec in gguf]
    return EmulatorApp(catalogue, backends)
