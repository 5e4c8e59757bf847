"""A model whose streams take long enough to time (shared by the cassette tests)."""

from __future__ import annotations

from pytest_llmperf.emulator.profiles import ModelProfile

MODEL = "paced:latest"
# A first token at ~300 ms: 10 % of the TTFT is 30 ms, well above the machine's noise.
PACED = ModelProfile(
    name=MODEL,
    load_s=0.0,
    first_token_s=0.3,
    tokens_per_s=40.0,
    prompt_tokens_per_s=100_000.0,
    response_tokens=(8, 8),
    jitter=0.0,
)
