"""An Ollama-compatible server with latency profiles, fault injection and a real-model backend.

It stands alone beside the client: it may import only ``errors``; never ``client``, ``observe``,
``judge``, ``report`` or ``plugin``, so it speaks the wire from its own side.
"""

from __future__ import annotations

from pytest_llmperf.emulator.app import EmulatorApp
from pytest_llmperf.emulator.faults import FAULT_HEADER, FaultKind, FaultSpec, parse_fault_header
from pytest_llmperf.emulator.llamacpp import LlamaCppBackend, llama_cpp_available
from pytest_llmperf.emulator.profiles import (
    Catalogue,
    ModelProfile,
    ServerSettings,
    default_profiles_path,
    load_catalogue,
)
from pytest_llmperf.emulator.server import EmulatorServer

__all__ = [
    "FAULT_HEADER",
    "Catalogue",
    "EmulatorApp",
    "EmulatorServer",
    "FaultKind",
    "FaultSpec",
    "LlamaCppBackend",
    "ModelProfile",
    "ServerSettings",
    "default_profiles_path",
    "llama_cpp_available",
    "load_catalogue",
    "parse_fault_header",
]
