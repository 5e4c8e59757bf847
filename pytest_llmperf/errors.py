"""The exception tree of pytest-llmperf.

::

    LLMPerfError                  every error raised by this package
    └── ConfigurationError        a setting, file or argument that cannot be used
        ├── ProfileError          a latency profile file that cannot be read
        └── FaultSpecError        a fault injection spec that cannot be parsed
"""

from __future__ import annotations


class LLMPerfError(Exception):
    """Base class of every error raised by pytest-llmperf."""


class ConfigurationError(LLMPerfError):
    """A setting, file or argument that cannot be used as given."""


class ProfileError(ConfigurationError):
    """A latency profile file that cannot be read or holds a bad value."""


class FaultSpecError(ConfigurationError):
    """A fault injection spec (header or profile entry) that cannot be parsed."""
