"""``slack``: a timing tolerance that follows how late this machine wakes threads right now.

A busy shared machine wakes a sleeping thread late, by a few milliseconds when it is quiet
and by tens when it is loaded; a fixed tolerance in milliseconds then fails on the second
kind of day. The tests that compare two timings allow their base tolerance plus a few times
the lateness measured just before, capped so that the comparison still means something.
"""

from __future__ import annotations

import time


def lateness(samples: int = 20, nap: float = 0.001) -> float:
    """The worst overshoot (seconds) of ``samples`` sleeps of ``nap`` seconds, now."""
    worst = 0.0
    for _ in range(samples):
        began = time.perf_counter()
        time.sleep(nap)
        worst = max(worst, time.perf_counter() - began - nap)
    return worst


def slack(base: float, cap: float) -> float:
    """``base`` plus three times the machine's current lateness, at most ``cap`` seconds."""
    return min(cap, base + 3 * lateness())
