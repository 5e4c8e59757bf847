"""Order statistics shared by records, timeouts and reports."""

from __future__ import annotations

import math
from collections.abc import Sequence


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, interpolated linearly; ``values`` not empty."""
    return sorted_quantile(sorted(values), q)


def sorted_quantile(ordered: Sequence[float], q: float) -> float:
    """:func:`quantile` of values already in order."""
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
