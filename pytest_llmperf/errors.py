"""The exception tree of pytest-llmperf.

::

    LLMPerfError                  every error raised by this package
    ├── ConfigurationError        a setting, file or argument that cannot be used
    │   ├── ProfileError          a latency profile file that cannot be read
    │   └── FaultSpecError        a fault injection spec that cannot be parsed
    └── LLMError                  a call to an LLM server that did not give an answer
        ├── LLMConnectError       no server answered at the address (also a ConnectionError)
        ├── ModelNotFoundError    the server does not have the model (HTTP 404)
        ├── LLMServerError        the server answered with an error status (400, 500, 503, ...)
        ├── LLMStreamError        the server sent an error line in the middle of a stream
        └── LLMTimeoutError       a phase ran out of time (also a TimeoutError)

``LLMBudgetWarning`` (a ``UserWarning``) reports a budget violation in ``warn`` mode.

Every message says what happened, what was configured, and how to go on.
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


class LLMError(LLMPerfError):
    """A call to an LLM server that did not give an answer.

    ``host`` is the base URL that was called and ``model`` the model asked for, when known.
    """

    def __init__(self, message: str, *, host: str = "", model: str = "") -> None:
        super().__init__(message)
        self.host = host
        self.model = model


class LLMConnectError(LLMError, ConnectionError):
    """No server answered at the address (refused, reset, or the name did not resolve)."""


class ModelNotFoundError(LLMError):
    """The server does not have the model: ``ollama pull NAME`` fetches it."""

    status_code = 404


class LLMServerError(LLMError):
    """The server answered with an error status before any output."""

    def __init__(self, message: str, *, status_code: int, host: str = "", model: str = "") -> None:
        super().__init__(message, host=host, model=model)
        self.status_code = status_code


class LLMStreamError(LLMError):
    """The server sent ``{"error": ...}`` inside a stream that had already begun with 200."""


class LLMTimeoutError(LLMError, TimeoutError):
    """A phase of the call ran out of time.

    ``phase`` is ``connect``, ``first_token``, ``stall`` (the gap between two chunks) or
    ``total``; ``limit`` is the limit in seconds that applied; ``elapsed`` the time spent.
    """

    def __init__(
        self,
        message: str,
        *,
        phase: str,
        limit: float,
        elapsed: float,
        host: str = "",
        model: str = "",
    ) -> None:
        super().__init__(message, host=host, model=model)
        self.phase = phase
        self.limit = limit
        self.elapsed = elapsed


class NetworkBlockedError(LLMPerfError, RuntimeError):
    """``--llm-block-network`` refused a connection: to a host that is neither the embedded
    emulator nor allowed (a RuntimeError, as pytest-recording's block is, so that no
    library's retry of a failed connection hides it)."""


class LLMBudgetWarning(UserWarning):
    """A test's LLM calls went past their budget, in ``warn`` mode."""
