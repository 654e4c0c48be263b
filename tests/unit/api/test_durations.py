"""human_duration / short_human_duration against upstream apimachinery's duration tests."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api.durations import human_duration, short_human_duration

S, M, H, D, Y = 1, 60, 3600, 86400, 365 * 86400

HUMAN = [
    (-2 * S, "<invalid>"),
    (-1.9, "0s"),
    (-1 * S, "0s"),
    (0, "0s"),
    (1 * S, "1s"),
    (5 * S, "5s"),
    (59 * S, "59s"),
    (60 * S, "60s"),
    (119.999, "119s"),
    (2 * M, "2m"),
    (2 * M + 1, "2m1s"),
    (3 * M + 20, "3m20s"),
    (9 * M + 59, "9m59s"),
    (10 * M, "10m"),
    (10 * M + 59, "10m"),
    (3 * H - 1, "179m"),
    (3 * H, "3h"),
    (3 * H + 30 * M, "3h30m"),
    (7 * H + 59 * M + 59, "7h59m"),
    (8 * H, "8h"),
    (47 * H + 59 * M, "47h"),
    (48 * H, "2d"),
    (2 * D + 3 * H, "2d3h"),
    (7 * D + 23 * H, "7d23h"),
    (8 * D, "8d"),
    (10 * D, "10d"),
    (2 * Y - 1, "729d"),
    (2 * Y, "2y"),
    (2 * Y + 45 * D, "2y45d"),
    (8 * Y - 1, "7y364d"),
    (8 * Y, "8y"),
    (100 * Y + 3 * D, "100y"),
]


@pytest.mark.parametrize(("seconds", "expected"), HUMAN)
def test_human_duration_boundaries(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


def test_human_duration_accepts_timedelta_exactly() -> None:
    assert human_duration(timedelta(minutes=2, microseconds=-1)) == "119s"
    assert human_duration(timedelta(days=2, hours=3)) == "2d3h"


def test_human_duration_saturates_like_go() -> None:
    # time.Sub saturates at the int64 nanosecond bounds (about 292 years).
    assert human_duration(float("inf")) == "292y"
    assert human_duration(1e300) == "292y"
    assert human_duration(float("-inf")) == "<invalid>"
    assert human_duration(float("nan")) == "<invalid>"


SHORT = [
    (-2, "<invalid>"),
    (-1, "0s"),
    (59, "59s"),
    (60, "1m"),
    (3 * M + 20, "3m"),
    (H, "1h"),
    (23 * H + 59 * M, "23h"),
    (D, "1d"),
    (364 * D, "364d"),
    (365 * D, "1y"),
]


@pytest.mark.parametrize(("seconds", "expected"), SHORT)
def test_short_human_duration(seconds: float, expected: str) -> None:
    assert short_human_duration(seconds) == expected


HUMAN_FORMAT = re.compile(r"^(<invalid>|\d+s|\d+m(\d+s)?|\d+h(\d+m)?|\d+d(\d+h)?|\d+y(\d+d)?)$")


@settings(deadline=None, max_examples=300)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_human_duration_never_raises_and_matches_format(seconds: float) -> None:
    text = human_duration(seconds)
    assert HUMAN_FORMAT.match(text), text
    assert re.match(r"^(<invalid>|\d+[smhdy])$", short_human_duration(seconds))


@settings(deadline=None, max_examples=200)
@given(st.integers(min_value=0, max_value=10 * Y))
def test_human_duration_is_monotonic_in_its_leading_unit(seconds: int) -> None:
    # A later instant never prints a smaller leading number of the same unit.
    a, b = human_duration(seconds), human_duration(seconds + 1)
    lead = re.compile(r"^(\d+)([smhdy])")
    ma, mb = lead.match(a), lead.match(b)
    assert ma and mb
    if ma.group(2) == mb.group(2):
        assert int(mb.group(1)) >= int(ma.group(1))
