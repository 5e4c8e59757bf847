"""The fuzz tests' hypothesis settings: examples per test, and a deadline per example.

``LLMPERF_FUZZ_EXAMPLES`` sets the examples per test (default 100, which keeps the whole
folder well under a minute in CI); a larger number fuzzes longer, e.g. before a release.
The deadline is generous for a loaded machine: an example that takes longer hangs.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("LLMPERF_FUZZ_EXAMPLES", "100"))

settings.register_profile(
    "llmperf-fuzz",
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=2),
    database=None,  # no .hypothesis folder left in the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,  # a failure prints how to reproduce it
)
settings.load_profile("llmperf-fuzz")
