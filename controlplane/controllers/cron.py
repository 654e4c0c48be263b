"""Cron schedules as the CronJob controller reads them: robfig/cron/v3's `ParseStandard` and
`Schedule.Next`, ported so that the same schedule fires at the same instants as upstream.

`ParseStandard` accepts five fields (minute, hour, day of month, month, day of week) with
`*`/`?`, ranges, steps, comma lists and month/day names, the descriptors `@yearly`, `@annually`,
`@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly` and `@every <Go duration>`, and an
optional `TZ=<zone>` / `CRON_TZ=<zone>` prefix. Error messages are robfig's.

`next` walks the calendar the way robfig does, including its daylight-saving behaviour: hours
and minutes advance in absolute time (a wall-clock hour skipped by a spring-forward never
fires, a repeated one fires twice), days advance in wall-clock time. Go's `time.Date` rule for
wall times that do not exist or exist twice is reproduced by `_go_date`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "ConstantDelaySchedule",
    "CronError",
    "Schedule",
    "SpecSchedule",
    "load_location",
    "parse_go_duration",
    "parse_standard",
]

STAR_BIT = 1 << 63

_MONTH_NAMES = {
    name: i + 1
    for i, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
_DOW_NAMES = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}


@dataclass(frozen=True)
class _Bounds:
    lo: int
    hi: int
    names: dict[str, int] | None = None


MINUTES = _Bounds(0, 59)
HOURS = _Bounds(0, 23)
DOM = _Bounds(1, 31)
MONTHS = _Bounds(1, 12, _MONTH_NAMES)
DOW = _Bounds(0, 6, _DOW_NAMES)


class CronError(ValueError):
    """A schedule robfig/cron would refuse; the message is robfig's."""


class Schedule(Protocol):
    def next(self, t: datetime) -> datetime | None:
        """The first activation strictly after `t` (an aware datetime), or None if there is none
        within five years (robfig returns the zero time then)."""
        ...


def _bits(lo: int, hi: int, step: int) -> int:
    if step == 1:
        return ~(~0 << (hi + 1)) & (~0 << lo)
    bits = 0
    for i in range(lo, hi + 1, step):
        bits |= 1 << i
    return bits


def _all(b: _Bounds) -> int:
    return _bits(b.lo, b.hi, 1) | STAR_BIT


_GO_INT = re.compile(r"^[+-]?[0-9]+$")


def _must_parse_int(expr: str) -> int:
    if not _GO_INT.match(expr):
        raise CronError(f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": invalid syntax')
    num = int(expr)
    if num < 0:
        raise CronError(f"negative number ({num}) not allowed: {expr}")
    return num


def _parse_int_or_name(expr: str, names: dict[str, int] | None) -> int:
    if names is not None and expr.lower() in names:
        return names[expr.lower()]
    return _must_parse_int(expr)


def _get_range(expr: str, b: _Bounds) -> int:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    single_digit = len(low_and_high) == 1
    extra = 0
    if low_and_high[0] in ("*", "?"):
        start, end = b.lo, b.hi
        extra = STAR_BIT
    else:
        start = _parse_int_or_name(low_and_high[0], b.names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _parse_int_or_name(low_and_high[1], b.names)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _must_parse_int(range_and_step[1])
        # "N/step" means "N-max/step".
        if single_digit:
            end = b.hi
        if step > 1:
            extra = 0
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < b.lo:
        raise CronError(f"beginning of range ({start}) below minimum ({b.lo}): {expr}")
    if end > b.hi:
        raise CronError(f"end of range ({end}) above maximum ({b.hi}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return _bits(start, end, step) | extra


def _get_field(text: str, b: _Bounds) -> int:
    bits = 0
    # strings.FieldsFunc: empty items between commas are dropped, not errors.
    for expr in (part for part in text.split(",") if part):
        bits |= _get_range(expr, b)
    return bits


def load_location(name: str) -> tzinfo:
    """Go's `time.LoadLocation`: "" and "UTC" are UTC, "Local" is the process's zone."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise CronError(f"unknown time zone {name}") from exc


# -- Go durations (time.ParseDuration) ------------------------------------------------------

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


def parse_go_duration(text: str) -> int:
    """`time.ParseDuration`, in nanoseconds; raises CronError with Go's message."""
    original = text
    invalid = CronError(f'time: invalid duration "{original}"')
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise invalid
    total = 0
    while text:
        match = _DURATION_PART.match(text)
        if match is None or match.end() == 0:
            raise invalid
        whole, frac, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not frac:
            raise invalid
        if not unit:
            raise CronError(f'time: missing unit in duration "{original}"')
        if unit not in _UNITS_NS:
            raise CronError(f'time: unknown unit "{unit}" in duration "{original}"')
        scale = _UNITS_NS[unit]
        value = int(whole or "0") * scale
        if frac:
            value += int(frac) * scale // (10 ** len(frac))
        total += value
        if total > 2**63 - 1:
            raise invalid
        text = text[match.end() :]
    return sign * total


# -- schedules ------------------------------------------------------------------------------


def _go_date(year: int, month: int, day: int, hour: int, minute: int, second: int, loc: tzinfo) -> datetime:
    """Go's `time.Date`: fields may overflow (they normalise), and a wall time a zone skips or
    repeats resolves as Go resolves it (the offset in force at the guessed instant)."""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    naive = datetime(year, month, 1) + timedelta(days=day - 1, hours=hour, minutes=minute, seconds=second)
    as_utc = naive.replace(tzinfo=UTC)
    first = as_utc.astimezone(loc).utcoffset() or timedelta(0)
    offset = (as_utc - first).astimezone(loc).utcoffset() or timedelta(0)
    return (as_utc - offset).astimezone(loc)


def _add(t: datetime, seconds: float, loc: tzinfo) -> datetime:
    """Go's `Time.Add`: absolute time, shown in `loc`."""
    return (t.astimezone(UTC) + timedelta(seconds=seconds)).astimezone(loc)


def _truncate_minute(t: datetime, loc: tzinfo) -> datetime:
    stamp = math.floor(t.timestamp())
    return datetime.fromtimestamp(stamp - stamp % 60, UTC).astimezone(loc)


def _go_weekday(t: datetime) -> int:
    return (t.weekday() + 1) % 7


@dataclass(frozen=True)
class SpecSchedule:
    minute: int
    hour: int
    dom: int
    month: int
    dow: int
    location: tzinfo | None = None  # None: robfig's time.Local, i.e. the zone of the time given

    def _day_matches(self, t: datetime) -> bool:
        dom_match = (1 << t.day) & self.dom > 0
        dow_match = (1 << _go_weekday(t)) & self.dow > 0
        if self.dom & STAR_BIT or self.dow & STAR_BIT:
            return dom_match and dow_match
        return dom_match or dow_match

    def next(self, t: datetime) -> datetime | None:
        orig = t.tzinfo or UTC
        loc = self.location or orig
        t = t.astimezone(loc)
        # The earliest possible time: the upcoming whole second.
        t = _add(t.replace(microsecond=0), 1, loc)
        added = False
        year_limit = t.year + 5
        while True:  # robfig's WRAP label
            if t.year > year_limit:
                return None
            wrapped = False
            while (1 << t.month) & self.month == 0:
                if not added:
                    added = True
                    t = _go_date(t.year, t.month, 1, 0, 0, 0, loc)
                t = _go_date(t.year, t.month + 1, t.day, t.hour, t.minute, t.second, loc)
                if t.month == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not self._day_matches(t):
                if not added:
                    added = True
                    t = _go_date(t.year, t.month, t.day, 0, 0, 0, loc)
                t = _go_date(t.year, t.month, t.day + 1, t.hour, t.minute, t.second, loc)
                # Where midnight does not exist, land on the day's first hour instead.
                if t.hour != 0:
                    t = _add(t, (24 - t.hour) * 3600 if t.hour > 12 else -t.hour * 3600, loc)
                if t.day == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while (1 << t.hour) & self.hour == 0:
                if not added:
                    added = True
                    t = _go_date(t.year, t.month, t.day, t.hour, 0, 0, loc)
                t = _add(t, 3600, loc)
                if t.hour == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while (1 << t.minute) & self.minute == 0:
                if not added:
                    added = True
                    t = _truncate_minute(t, loc)
                t = _add(t, 60, loc)
                if t.minute == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            # The standard parser's seconds field is always 0: robfig steps a second at a time
            # to the next minute and wraps; one jump lands on the same instant.
            if t.second != 0:
                added = True
                t = _add(t, 60 - t.second, loc)
                continue
            return t.astimezone(orig)


@dataclass(frozen=True)
class ConstantDelaySchedule:
    """`@every <duration>`: activations `delay` apart, on whole seconds."""

    delay_seconds: int

    def next(self, t: datetime) -> datetime | None:
        return t.replace(microsecond=0) + timedelta(seconds=self.delay_seconds)


def _descriptor(spec: str, loc: tzinfo | None) -> Schedule:
    if spec in ("@yearly", "@annually"):
        return SpecSchedule(1 << MINUTES.lo, 1 << HOURS.lo, 1 << DOM.lo, 1 << MONTHS.lo, _all(DOW), loc)
    if spec == "@monthly":
        return SpecSchedule(1 << MINUTES.lo, 1 << HOURS.lo, 1 << DOM.lo, _all(MONTHS), _all(DOW), loc)
    if spec == "@weekly":
        return SpecSchedule(1 << MINUTES.lo, 1 << HOURS.lo, _all(DOM), _all(MONTHS), 1 << DOW.lo, loc)
    if spec in ("@daily", "@midnight"):
        return SpecSchedule(1 << MINUTES.lo, 1 << HOURS.lo, _all(DOM), _all(MONTHS), _all(DOW), loc)
    if spec == "@hourly":
        return SpecSchedule(1 << MINUTES.lo, _all(HOURS), _all(DOM), _all(MONTHS), _all(DOW), loc)
    every = "@every "
    if spec.startswith(every):
        try:
            nanos = parse_go_duration(spec[len(every) :])
        except CronError as exc:
            raise CronError(f"failed to parse duration {spec}: {exc}") from None
        nanos = max(nanos, 1_000_000_000)
        return ConstantDelaySchedule((nanos - nanos % 1_000_000_000) // 1_000_000_000)
    raise CronError(f"unrecognized descriptor: {spec}")


def parse_standard(spec: str) -> Schedule:
    """robfig/cron/v3 `ParseStandard`."""
    if not spec:
        raise CronError("empty spec string")
    loc: tzinfo | None = None
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        eq = spec.find("=")
        name = spec[eq + 1 : space] if space >= 0 else spec[eq + 1 :]
        try:
            loc = load_location(name)
        except CronError as exc:
            raise CronError(f"provided bad location {name}: {exc}") from None
        spec = spec[space:].strip() if space >= 0 else ""
    if spec.startswith("@"):
        return _descriptor(spec, loc)
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    return SpecSchedule(
        minute=_get_field(fields[0], MINUTES),
        hour=_get_field(fields[1], HOURS),
        dom=_get_field(fields[2], DOM),
        month=_get_field(fields[3], MONTHS),
        dow=_get_field(fields[4], DOW),
        location=loc,
    )
