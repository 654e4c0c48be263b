"""Human-readable durations, as `k8s.io/apimachinery/pkg/util/duration` renders them.

`human_duration` is what every AGE cell shows ("5s", "3m20s", "2d3h", "2y45d"); it keeps two or
three significant figures. `short_human_duration` is the older single-unit form ("3m", "10d").
Go works on an int64 nanosecond `time.Duration`, truncating toward zero at each unit, and a
`time.Time.Sub` saturates at the int64 bounds; both functions convert to that representation
first so the unit boundaries land exactly where upstream's do.
"""

from __future__ import annotations

import math
from datetime import timedelta

__all__ = ["human_duration", "short_human_duration"]

_SECOND = 1_000_000_000
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_MIN_DURATION = -(2**63)
_MAX_DURATION = 2**63 - 1
_INVALID = "<invalid>"


def _nanoseconds(d: float | timedelta) -> int | None:
    """The Go `time.Duration` for `d` (seconds or a timedelta); None for NaN."""
    if isinstance(d, timedelta):
        ns = (d.days * 86_400 + d.seconds) * _SECOND + d.microseconds * 1_000
    elif math.isnan(d):
        return None
    elif math.isinf(d):
        ns = _MAX_DURATION if d > 0 else _MIN_DURATION
    else:
        # Split off the whole seconds so integral inputs convert exactly at any magnitude.
        whole = math.floor(d)
        ns = whole * _SECOND + int((d - whole) * _SECOND)
    return max(_MIN_DURATION, min(_MAX_DURATION, ns))


def _trunc_div(a: int, b: int) -> int:
    """Go's integer division, which truncates toward zero (Python's // floors)."""
    q = abs(a) // b
    return q if a >= 0 else -q


def human_duration(d: float | timedelta) -> str:
    """`duration.HumanDuration` for `d` seconds (or a timedelta)."""
    ns = _nanoseconds(d)
    if ns is None:
        return _INVALID
    seconds = _trunc_div(ns, _SECOND)
    # Upstream tolerates up to two seconds of clock skew before calling a duration invalid.
    if seconds < -1:
        return _INVALID
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = ns // _MINUTE
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = ns // _HOUR
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


def short_human_duration(d: float | timedelta) -> str:
    """`duration.ShortHumanDuration`: one unit only."""
    ns = _nanoseconds(d)
    if ns is None:
        return _INVALID
    seconds = _trunc_div(ns, _SECOND)
    if seconds < -1:
        return _INVALID
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    minutes = ns // _MINUTE
    if minutes < 60:
        return f"{minutes}m"
    hours = ns // _HOUR
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{hours // 24 // 365}y"
