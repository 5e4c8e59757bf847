"""The observation point: every LLM exchange, whatever client makes it, at the HTTP transport.

It holds the interception of the transports (``point``), the measurement of one exchange
(``measure``, ``streams``) and the cassettes that record and replay what passes. It may
import the client's wire formats and ``errors``; never ``judge``, ``report``, ``plugin`` or
``emulator``.
"""

from __future__ import annotations

from pytest_llmperf.observe.point import OWN, not_measured

__all__ = ["OWN", "not_measured"]
