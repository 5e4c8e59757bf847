"""Stop sequences: end an answer before the first stop string, even one split across tokens."""

from __future__ import annotations

from collections.abc import Sequence


class StopFilter:
    """Feed it tokens; it gives back the text that is safe to send and whether to stop.

    Text that could be the start of a stop string is held back until the next token shows
    whether it is one.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._held = ""

    def feed(self, token: str) -> tuple[str, bool]:
        """The text to send now, and True when a stop string was reached."""
        if not self._stops:
            return token, False
        text = self._held + token
        hits = [i for i in (text.find(s) for s in self._stops) if i >= 0]
        if hits:
            self._held = ""
            return text[: min(hits)], True
        keep = self._longest_partial(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep], False

    def flush(self) -> str:
        """What is still held back when the answer ends without a stop string."""
        held, self._held = self._held, ""
        return held

    def _longest_partial(self, text: str) -> int:
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(text)), 0, -1):
                if text.endswith(stop[:size]):
                    longest = max(longest, size)
                    break
        return longest
