"""Order statistics shared by records, timeouts and reports."""

from __future__ import annotations

import math
from collections.abc import Sequence


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, interpolated linearly; ``values`` not empty."""
    return sorted_quantile(sorted(values), q)


def sorted_quantile(ordered: Sequence[float], q: float) -> float:
    """:func:`quantile` of values already in order."""
    last = len(ordered) - 1
    if not last:
        return ordered[0]
    position = q * last
    low = math.floor(position)
    below = ordered[low]
    if low == last:  # q == 1: nothing above to interpolate towards
        return below
    return below + (ordered[low + 1] - below) * (position - low)
