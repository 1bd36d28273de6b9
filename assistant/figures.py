"""Median and 95th percentile: how every ``mimo-home bench`` sums up repeated measurements."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

Figure = dict[str, float | None]


def figure(values: Sequence[float], digits: int = 3) -> Figure:
    """The median and the p95 of ``values``, both None when there are none. The p95 is the
    nearest rank, a value that was measured (of 3 values, the highest)."""
    if not values:
        return {"median": None, "p95": None}
    ordered = sorted(values)
    p95 = ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)]
    return {"median": round(statistics.median(ordered), digits), "p95": round(p95, digits)}
