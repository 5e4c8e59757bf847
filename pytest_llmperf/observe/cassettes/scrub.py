"""Secrets never reach a cassette: credential headers, cookies and key-like query values.

Scrubbed values are replaced by ``SCRUBBED`` (the header or parameter stays, so a reader
sees that one was sent). The lists can be extended with the ``llm_scrub_headers`` and
``llm_scrub_query`` ini options.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SCRUBBED = "SCRUBBED"
REQUEST_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "openai-api-key",
        "x-goog-api-key",
        "cookie",
    }
)
RESPONSE_HEADERS = frozenset({"set-cookie", "set-cookie2"})
QUERY = re.compile(r"(key|token|secret|password|passwd|signature|sig|auth)", re.IGNORECASE)


class Scrubber:
    """What to scrub, with extra header and query names laid over the defaults."""

    def __init__(self, headers: Iterable[str] = (), query: Iterable[str] = ()) -> None:
        extra = {name.strip().lower() for name in headers if name.strip()}
        self.request_headers = REQUEST_HEADERS | extra
        self.response_headers = RESPONSE_HEADERS | extra
        self.query = {name.strip().lower() for name in query if name.strip()}

    def headers(
        self, items: Iterable[tuple[str, str]], response: bool = False
    ) -> dict[str, list[str]]:
        secret = self.response_headers if response else self.request_headers
        out: dict[str, list[str]] = {}
        for name, value in items:
            out.setdefault(name, []).append(SCRUBBED if name.lower() in secret else value)
        return out

    def uri(self, uri: str) -> str:
        split = urlsplit(uri)
        if not split.query:
            return uri
        pairs = [
            (name, SCRUBBED if self._secret_param(name) else value)
            for name, value in parse_qsl(split.query, keep_blank_values=True)
        ]
        return urlunsplit(split._replace(query=urlencode(pairs)))

    def _secret_param(self, name: str) -> bool:
        return name.lower() in self.query or bool(QUERY.search(name))
