"""Go's integer division and rounding, which scores depend on bit for bit: Go's `/` on integers
truncates toward zero (Python's `//` floors) and math.Round rounds halves away from zero (Python's
round() rounds them to even)."""

from __future__ import annotations

import math

__all__ = ["go_div", "go_round"]


def go_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def go_round(x: float) -> int:
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)
