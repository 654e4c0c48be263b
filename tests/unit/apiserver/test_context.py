"""metav1.Time formatting of the server's clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from controlplane.apiserver.context import rfc3339


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)))
def test_formats_as_metav1_time(moment: datetime) -> None:
    assert rfc3339(moment) == moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_each_second_formats_as_itself_after_a_cached_one() -> None:
    # Formatting is remembered per second: the next second (and the previous one) must not get it.
    start = datetime(2026, 11, 26, 20, 59, 59, 999_999, tzinfo=UTC)
    assert rfc3339(start) == "2026-11-26T20:59:59Z"
    assert rfc3339(start.replace(microsecond=0)) == "2026-11-26T20:59:59Z"
    assert rfc3339(start + timedelta(microseconds=1)) == "2026-11-26T21:00:00Z"
    assert rfc3339(start) == "2026-11-26T20:59:59Z"


def test_another_zone_is_converted_to_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    assert rfc3339(datetime(2026, 11, 27, 6, 0, 0, tzinfo=tokyo)) == "2026-11-26T21:00:00Z"
