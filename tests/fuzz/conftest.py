"""The fuzz tests run under the hypothesis profile of fuzz_settings.py."""

import fuzz_settings  # noqa: F401
