"""robfig/cron/v3 ParseStandard and Schedule.Next, as the CronJob controller uses them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from controlplane.controllers.cron import (
    DOW,
    HOURS,
    MINUTES,
    ConstantDelaySchedule,
    CronError,
    SpecSchedule,
    parse_go_duration,
    parse_standard,
)


def nexts(spec: str, start: datetime, n: int) -> list[datetime]:
    schedule = parse_standard(spec)
    out = []
    t: datetime | None = start
    for _ in range(n):
        assert t is not None
        t = schedule.next(t)
        assert t is not None
        out.append(t)
    return out


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "start", "expected"),
    [
        ("*/15 * * * *", utc(2026, 1, 1, 10, 7, 30), [utc(2026, 1, 1, 10, 15), utc(2026, 1, 1, 10, 30)]),
        ("0 0 * * *", utc(2026, 1, 1, 0, 0), [utc(2026, 1, 2), utc(2026, 1, 3)]),
        ("5 4 * * sun", utc(2026, 1, 1), [utc(2026, 1, 4, 4, 5), utc(2026, 1, 11, 4, 5)]),
        (
            "0 9-17/4 * * MON-FRI",
            utc(2026, 1, 2, 12),
            [utc(2026, 1, 2, 13), utc(2026, 1, 2, 17), utc(2026, 1, 5, 9)],
        ),
        ("0 0 1 jan,jul *", utc(2026, 2, 1), [utc(2026, 7, 1), utc(2027, 1, 1)]),
        # Both day fields restricted: either matches (cron's OR rule).
        ("0 0 13 * 5", utc(2026, 2, 1), [utc(2026, 2, 6), utc(2026, 2, 13), utc(2026, 2, 20)]),
        # A day field with a step loses the star bit: still the OR rule.
        ("0 0 */10 * 1", utc(2026, 3, 1), [utc(2026, 3, 2), utc(2026, 3, 9), utc(2026, 3, 11)]),
        ("30 2 29 2 *", utc(2026, 1, 1), [utc(2028, 2, 29, 2, 30)]),
        ("@hourly", utc(2026, 1, 1, 10, 0, 0), [utc(2026, 1, 1, 11), utc(2026, 1, 1, 12)]),
        ("@daily", utc(2026, 1, 1, 10), [utc(2026, 1, 2)]),
        ("@midnight", utc(2026, 1, 1, 10), [utc(2026, 1, 2)]),
        ("@weekly", utc(2026, 1, 1), [utc(2026, 1, 4), utc(2026, 1, 11)]),
        ("@monthly", utc(2026, 1, 15), [utc(2026, 2, 1), utc(2026, 3, 1)]),
        ("@yearly", utc(2026, 1, 15), [utc(2027, 1, 1)]),
        ("@annually", utc(2026, 1, 15), [utc(2027, 1, 1)]),
        ("? ? ? ? ?", utc(2026, 1, 1, 0, 0, 59), [utc(2026, 1, 1, 0, 1)]),
    ],
)
def test_next_times(spec: str, start: datetime, expected: list[datetime]) -> None:
    assert nexts(spec, start, len(expected)) == expected


def test_every_descriptor_keeps_a_constant_delay() -> None:
    schedule = parse_standard("@every 1h30m")
    assert schedule == ConstantDelaySchedule(5400)
    assert schedule.next(utc(2026, 1, 1, 10, 0, 0).replace(microsecond=500)) == utc(2026, 1, 1, 11, 30)
    assert parse_standard("@every 10ms") == ConstantDelaySchedule(1)  # at least a second
    assert parse_standard("@every 1.5s") == ConstantDelaySchedule(1)  # whole seconds


def test_impossible_dates_give_no_time_within_five_years() -> None:
    assert parse_standard("0 0 31 2 *").next(utc(2026, 1, 1)) is None
    assert parse_standard("0 0 30 2 *").next(utc(2026, 1, 1)) is None


def test_time_zone_prefix_and_daylight_saving() -> None:
    ny = ZoneInfo("America/New_York")
    # Spring forward on 2024-03-10: 02:30 does not exist that day and is skipped.
    times = nexts("TZ=America/New_York 30 2 * * *", utc(2024, 3, 9, 12), 2)
    assert [t.astimezone(ny).date() for t in times] == [date(2024, 3, 11), date(2024, 3, 12)]
    # Fall back on 2024-11-03: 01:30 happens twice, and fires twice.
    times = nexts("CRON_TZ=America/New_York 30 1 * * *", utc(2024, 11, 2, 12), 3)
    assert times == [utc(2024, 11, 3, 5, 30), utc(2024, 11, 3, 6, 30), utc(2024, 11, 4, 6, 30)]
    # The result is in the zone of the time given.
    berlin = ZoneInfo("Europe/Berlin")
    got = parse_standard("TZ=Asia/Tokyo 0 9 * * *").next(datetime(2026, 1, 1, tzinfo=berlin))
    assert got is not None
    assert got.tzinfo is berlin
    assert got == utc(2026, 1, 1, 0, 0)


def test_where_midnight_does_not_exist_the_day_starts_at_one() -> None:
    # Sao Paulo's 2018 spring-forward happened at midnight: 2018-11-04 began at 01:00.
    sp = ZoneInfo("America/Sao_Paulo")
    got = parse_standard("TZ=America/Sao_Paulo * * * * *").next(datetime(2018, 11, 3, 23, 59, 30, tzinfo=sp))
    assert got is not None
    assert got.astimezone(sp).replace(tzinfo=None) == datetime(2018, 11, 4, 1, 0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty spec string"),
        ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
        ("* * * * * *", "expected exactly 5 fields, found 6: [* * * * * *]"),
        ("60 * * * *", "end of range (60) above maximum (59): 60"),
        ("* 24 * * *", "end of range (24) above maximum (23): 24"),
        ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
        ("* * * 13 *", "end of range (13) above maximum (12): 13"),
        ("* * * * 7", "end of range (7) above maximum (6): 7"),
        ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
        ("*/0 * * * *", "step of range should be a positive number: */0"),
        ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
        ("*/2/3 * * * *", "too many slashes: */2/3"),
        ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
        ("* * * foo *", 'failed to parse int from foo: strconv.Atoi: parsing "foo": invalid syntax'),
        ("@reboot", "unrecognized descriptor: @reboot"),
        ("@every 5", 'failed to parse duration @every 5: time: missing unit in duration "5"'),
        ("@every 5x", 'failed to parse duration @every 5x: time: unknown unit "x" in duration "5x"'),
        ("TZ=Nowhere/Town * * * * *", "provided bad location Nowhere/Town: unknown time zone Nowhere/Town"),
    ],
)
def test_parse_errors_are_robfigs(spec: str, message: str) -> None:
    with pytest.raises(CronError) as info:
        parse_standard(spec)
    assert str(info.value) == message


def test_names_are_case_insensitive_and_empty_list_items_are_skipped() -> None:
    assert parse_standard("0 0 * JAN,Feb Sun") == parse_standard("0 0 * 1,2 0")
    assert parse_standard("1,,2 * * * *") == parse_standard("1,2 * * * *")


def test_go_durations() -> None:
    assert parse_go_duration("1h30m") == 5400 * 10**9
    assert parse_go_duration("1.5h") == 5400 * 10**9
    assert parse_go_duration("300ms") == 300 * 10**6
    assert parse_go_duration("-2s") == -2 * 10**9
    assert parse_go_duration("0") == 0
    for bad in ("", "h", ".s", "1", "1d"):
        with pytest.raises(CronError):
            parse_go_duration(bad)


# -- properties: Next against a brute-force oracle ------------------------------------------------

# Zones with whole-hour shifts (Sao Paulo's at midnight, historically). Lord Howe's half-hour
# shift is left out on purpose: robfig walks hours in absolute time, so after such a shift it
# skips the wall-clock hours that day, and Next reproduces that, unlike the naive oracle.
ZONES = ["UTC", "America/New_York", "Europe/Berlin", "America/Sao_Paulo", "Asia/Kolkata", "Australia/Sydney"]


def _matches(schedule: SpecSchedule, wall: datetime) -> bool:
    return (
        (1 << wall.minute) & schedule.minute > 0
        and (1 << wall.hour) & schedule.hour > 0
        and (1 << wall.month) & schedule.month > 0
        and schedule._day_matches(wall)
    )


def oracle_next(schedule: SpecSchedule, t: datetime, days: int) -> datetime | None:
    """The first absolute instant after `t` (on a whole minute) whose wall time in the zone
    matches, found by enumerating wall times and both readings of repeated ones."""
    assert schedule.location is not None
    loc = schedule.location
    start = t.astimezone(loc).date() - timedelta(days=1)
    best: datetime | None = None
    hours = [h for h in range(24) if (1 << h) & schedule.hour]
    minutes = [m for m in range(60) if (1 << m) & schedule.minute]
    for offset in range(days + 2):
        day = start + timedelta(days=offset)
        for hour in hours:
            for minute in minutes:
                for fold in (0, 1):
                    wall = datetime(day.year, day.month, day.day, hour, minute, tzinfo=loc, fold=fold)
                    instant = wall.astimezone(UTC)
                    back = instant.astimezone(loc)
                    if back.replace(tzinfo=None) != wall.replace(tzinfo=None, fold=0):
                        continue  # a wall time the zone skips
                    if not _matches(schedule, back) or instant <= t:
                        continue
                    if best is None or instant < best:
                        best = instant
    return best


def _field(values: st.SearchStrategy[list[int]], star_odds: bool) -> st.SearchStrategy[str]:
    listed = values.map(lambda vs: ",".join(str(v) for v in sorted(set(vs))))
    return st.one_of(st.just("*"), listed) if star_odds else listed


schedules = st.builds(
    lambda zone, minute, hour, dow: f"TZ={zone} {minute} {hour} * * {dow}",
    st.sampled_from(ZONES),
    _field(st.lists(st.integers(MINUTES.lo, MINUTES.hi), min_size=1, max_size=3), star_odds=False),
    _field(st.lists(st.integers(HOURS.lo, HOURS.hi), min_size=1, max_size=4), star_odds=True),
    _field(st.lists(st.integers(DOW.lo, DOW.hi), min_size=1, max_size=3), star_odds=True),
)
instants = st.datetimes(
    min_value=datetime(2015, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


# A weekly activation that falls into a daylight-saving gap is skipped, so the next one may be
# two weeks away.
def _check_against_oracle(spec: str, start: datetime, days: int = 15) -> None:
    schedule = parse_standard(spec)
    assert isinstance(schedule, SpecSchedule)
    got = schedule.next(start)
    assert got is not None
    assert got > start
    assert got.second == 0
    assert got.microsecond == 0
    assert got == oracle_next(schedule, start, days=days)


@settings(max_examples=200, deadline=None)
@given(spec=schedules, start=instants)
@example(spec="TZ=America/Sao_Paulo 0 0 * * 0", start=datetime(2015, 10, 12, tzinfo=UTC))
def test_next_is_the_first_matching_instant(spec: str, start: datetime) -> None:
    _check_against_oracle(spec, start)


# Daylight-saving transitions (UTC instants) of the zones above, to start right around them.
TRANSITIONS = [
    ("America/New_York", utc(2024, 3, 10, 7)),
    ("America/New_York", utc(2024, 11, 3, 6)),
    ("Europe/Berlin", utc(2025, 3, 30, 1)),
    ("Europe/Berlin", utc(2025, 10, 26, 1)),
    ("America/Sao_Paulo", utc(2018, 11, 4, 3)),
    ("America/Sao_Paulo", utc(2018, 2, 18, 2)),
    ("Australia/Sydney", utc(2024, 4, 6, 16)),
    ("Australia/Sydney", utc(2024, 10, 5, 16)),
]


@settings(max_examples=200, deadline=None)
@given(
    transition=st.sampled_from(TRANSITIONS),
    minutes_off=st.integers(-36 * 60, 12 * 60),
    seconds=st.integers(0, 59),
    minute=_field(st.lists(st.integers(MINUTES.lo, MINUTES.hi), min_size=1, max_size=3), star_odds=False),
    hour=_field(st.lists(st.integers(HOURS.lo, HOURS.hi), min_size=1, max_size=4), star_odds=True),
)
def test_next_across_daylight_saving_transitions(
    transition: tuple[str, datetime], minutes_off: int, seconds: int, minute: str, hour: str
) -> None:
    zone, at = transition
    start = at + timedelta(minutes=minutes_off, seconds=seconds)
    # Every day matches, so the next activation is at most two days away.
    _check_against_oracle(f"TZ={zone} {minute} {hour} * * *", start, days=2)


@settings(max_examples=100, deadline=None)
@given(spec=schedules, start=instants)
def test_successive_activations_strictly_increase(spec: str, start: datetime) -> None:
    schedule = parse_standard(spec)
    t = start
    for _ in range(5):
        nxt = schedule.next(t)
        assert nxt is not None
        assert nxt > t
        t = nxt
