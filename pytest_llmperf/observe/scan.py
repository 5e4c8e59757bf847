"""Counting the line ends in bodies that pass, at the speed of ``memchr``.

``bytes.count`` with a one-byte needle looks at every byte in turn (about five instructions a
byte), while ``bytes.replace`` finds each occurrence with ``memchr`` and copies the runs in
between: a body's length less its length without its line ends is its count of line ends, in
a fraction of the time. On a stream of short lines that is the difference that shows.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence

_NEWLINE = b"\n"
_NOTHING = b""
_WITHOUT = operator.methodcaller("replace", _NEWLINE, _NOTHING)


def newlines(data: bytes) -> int:
    """How many ``\\n`` ``data`` holds (``data.count(b"\\n")``, found faster)."""
    return len(data) - len(data.replace(_NEWLINE, _NOTHING))


def newlines_each(parts: Sequence[bytes]) -> Iterator[int]:
    """:func:`newlines` of each of ``parts``, in C's loops (no call of ours a part)."""
    return map(operator.sub, map(len, parts), map(len, map(_WITHOUT, parts)))
