"""client-go's EventCorrelator (tools/record/events_cache.go): spam filter, aggregator and dedupe,
driven by a FakeClock so nothing sleeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.controllers.runtime import FakeClock, rfc3339
from controlplane.controllers.runtime.event_correlator import (
    AGGREGATE_MESSAGE_PREFIX,
    DEFAULT_SPAM_BURST,
    DEFAULT_SPAM_QPS,
    EventCorrelator,
    EventNamer,
    LRUCache,
    SpamFilter,
    TokenBucket,
    aggregate_key,
    event_key,
    spam_key,
)

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def ev(
    message: str = "Created pod: web-1",
    *,
    reason: str = "SuccessfulCreate",
    name: str = "web",
    uid: str = "uid-web",
    type_: str = "Normal",
    component: str = "replicaset-controller",
    host: str = "",
    clock: FakeClock | None = None,
    namer: EventNamer | None = None,
    field_path: str = "",
) -> dict[str, Any]:
    now = clock.now() if clock is not None else T0
    involved = {"kind": "ReplicaSet", "namespace": "ns", "name": name, "uid": uid, "apiVersion": "apps/v1"}
    if field_path:
        involved["fieldPath"] = field_path
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": (namer or EventNamer()).name(name, now), "namespace": "ns"},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": type_,
        "count": 1,
        "firstTimestamp": rfc3339(now),
        "lastTimestamp": rfc3339(now),
        "source": {"component": component, **({"host": host} if host else {})},
        "reportingComponent": component,
        **({"reportingInstance": host} if host else {}),
    }


# -- names ---------------------------------------------------------------------------------------


def test_names_are_upstreams_hex_unix_nanoseconds() -> None:
    namer = EventNamer()
    moment = datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    nanos = int(moment.timestamp()) * 10**9 + 123456 * 1000
    assert namer.name("web-0", moment) == f"web-0.{nanos:x}"
    # within one microsecond names stay distinct (Go has nanoseconds, Python does not)
    assert namer.name("web-0", moment) == f"web-0.{nanos + 1:x}"
    assert namer.name("web-0", moment + timedelta(seconds=1)) == f"web-0.{nanos + 10**9:x}"


# -- keys ----------------------------------------------------------------------------------------


def test_keys_hold_upstreams_fields() -> None:
    base = ev()
    # the spam key is source + object: reason, type and message share one bucket
    assert spam_key(base) == spam_key(ev("other", reason="SuccessfulDelete", type_="Warning"))
    assert spam_key(base) != spam_key(ev(host="node-1"))
    assert spam_key(base) != spam_key(ev(uid="uid-2"))
    # the event key adds fieldPath, type, reason and message, but not the object's resourceVersion
    assert event_key(base) != event_key(ev(field_path="spec.containers{a}"))
    assert event_key(base) != event_key(ev("other"))
    assert event_key(base) != event_key(ev(type_="Warning"))
    versioned = ev()
    versioned["involvedObject"]["resourceVersion"] = "42"
    assert event_key(versioned) == event_key(base)
    # the aggregate key is everything but the message, which is the local key
    group, local = aggregate_key(base)
    assert (group, "other") == aggregate_key(ev("other"))
    assert local == "Created pod: web-1"
    assert aggregate_key(ev(reason="SuccessfulDelete"))[0] != group


def test_lru_cache_evicts_the_least_recently_used() -> None:
    cache: LRUCache[int, int] = LRUCache(3)
    for i in range(3):
        cache.add(i, i)
    assert cache.get(0) == 0  # 0 is now the newest
    cache.add(3, 3)
    assert 1 not in cache
    assert 0 in cache
    assert len(cache) == 3


# -- spam filter ---------------------------------------------------------------------------------


def test_token_bucket_starts_full_and_refills_at_qps() -> None:
    bucket = TokenBucket(qps=1 / 300, burst=25, now=0.0)
    assert [bucket.try_accept(0.0) for _ in range(26)] == [True] * 25 + [False]
    assert not bucket.try_accept(299.0)
    assert bucket.try_accept(300.0)
    assert not bucket.try_accept(300.0)
    # refills never exceed the burst
    assert sum(bucket.try_accept(10**6) for _ in range(30)) == 25


def test_spam_filter_defaults_are_burst_25_then_one_per_five_minutes() -> None:
    clock = FakeClock(T0)
    spam = SpamFilter(clock)
    assert (spam.burst, spam.qps) == (DEFAULT_SPAM_BURST, DEFAULT_SPAM_QPS) == (25, 1 / 300)
    passed = [not spam.filter(ev(f"m{i}", reason=f"R{i % 3}")) for i in range(30)]
    assert passed == [True] * 25 + [False] * 5
    # another object (or another source about the same object) has its own bucket
    assert not spam.filter(ev(name="db", uid="uid-db"))
    assert not spam.filter(ev(component="other-controller"))
    clock.advance(300)
    assert not spam.filter(ev())
    assert spam.filter(ev())


@settings(max_examples=60, deadline=None)
@given(
    burst=st.integers(min_value=1, max_value=8),
    qps=st.sampled_from([0.5, 0.1, 1 / 300]),
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=2), st.floats(min_value=0.0, max_value=7.0)),
        min_size=1,
        max_size=120,
    ),
)
def test_spam_filter_never_exceeds_burst_plus_elapsed_times_qps(
    burst: int, qps: float, steps: list[tuple[int, float]]
) -> None:
    clock = FakeClock(T0)
    spam = SpamFilter(clock, burst=burst, qps=qps)
    first: dict[int, float] = {}
    passed: dict[int, int] = {}
    seen: dict[int, int] = {}
    for obj, wait in steps:
        clock.advance(wait)
        first.setdefault(obj, clock.monotonic())
        seen[obj] = seen.get(obj, 0) + 1
        if not spam.filter(ev(name=f"o{obj}", uid=f"u{obj}")):
            passed[obj] = passed.get(obj, 0) + 1
        elapsed = clock.monotonic() - first[obj]
        assert passed.get(obj, 0) <= burst + elapsed * qps + 1e-9
        # and it is a bucket, not a wall: the first `burst` events of an object always pass
        assert passed.get(obj, 0) >= min(seen[obj], burst)


# -- aggregation ---------------------------------------------------------------------------------


def test_the_tenth_distinct_message_starts_an_aggregate_event() -> None:
    clock = FakeClock(T0)
    corr = EventCorrelator(clock)
    results = [corr.correlate(ev(f"Created pod: web-{i}", clock=clock, namer=corr.namer)) for i in range(12)]
    for i, r in enumerate(results[:9]):
        assert r.event is not None and r.patch is None
        assert r.event["message"] == f"Created pod: web-{i}"
    tenth = results[9].event
    assert tenth is not None and results[9].patch is None
    assert tenth["message"] == AGGREGATE_MESSAGE_PREFIX + "Created pod: web-9"
    assert tenth["count"] == 1
    assert tenth["metadata"]["name"].startswith("web.")
    assert tenth["metadata"]["name"] not in {r.event["metadata"]["name"] for r in results[:9] if r.event}
    assert tenth["firstTimestamp"] == tenth["lastTimestamp"] == rfc3339(T0)
    # upstream's aggregate copy carries no reporting fields
    assert "reportingComponent" not in tenth
    assert tenth["source"] == {"component": "replicaset-controller"}
    # later distinct messages PATCH the aggregate: same name, count and message move
    for k, r in enumerate(results[10:], start=2):
        assert r.event is not None
        assert r.event["metadata"]["name"] == tenth["metadata"]["name"]
        assert r.patch == {
            "count": k,
            "lastTimestamp": rfc3339(T0),
            "message": AGGREGATE_MESSAGE_PREFIX + f"Created pod: web-{8 + k}",
        }


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=14), min_size=1, max_size=40))
def test_aggregation_kicks_in_exactly_at_the_tenth_distinct_message(messages: list[int]) -> None:
    clock = FakeClock(T0)
    corr = EventCorrelator(clock, burst=10**6)  # the spam filter is not under test here
    distinct: set[int] = set()
    expected_at: int | None = None
    first_combined_at: int | None = None
    combined_names: set[str] = set()
    for i, m in enumerate(messages):
        distinct.add(m)
        if len(distinct) == 10 and expected_at is None:
            expected_at = i
        result = corr.correlate(ev(f"msg {m}", clock=clock))
        assert result.event is not None
        if result.event["message"].startswith(AGGREGATE_MESSAGE_PREFIX):
            assert result.event["message"] == AGGREGATE_MESSAGE_PREFIX + f"msg {m}"
            combined_names.add(result.event["metadata"]["name"])
            if first_combined_at is None:
                first_combined_at = i
        else:
            assert result.event["message"] == f"msg {m}"
    assert first_combined_at == expected_at
    # every aggregate within the window lands on one Event
    assert len(combined_names) == (0 if expected_at is None else 1)


def test_aggregation_restarts_after_ten_quiet_minutes() -> None:
    clock = FakeClock(T0)
    corr = EventCorrelator(clock)
    for i in range(9):
        corr.correlate(ev(f"m{i}", clock=clock))
    clock.advance(601)
    fresh = corr.correlate(ev("m9", clock=clock))
    assert fresh.event is not None and fresh.event["message"] == "m9"
    # within the interval the set keeps growing: the window slides with each event
    for i in range(10, 18):
        clock.advance(590)
        assert corr.correlate(ev(f"m{i}", clock=clock)).event["message"] == f"m{i}"  # type: ignore[index]
    clock.advance(590)
    tenth = corr.correlate(ev("m18", clock=clock))
    assert tenth.event is not None and tenth.event["message"] == AGGREGATE_MESSAGE_PREFIX + "m18"


def test_aggregation_is_per_reason_and_object() -> None:
    clock = FakeClock(T0)
    corr = EventCorrelator(clock)
    for i in range(9):
        corr.correlate(ev(f"m{i}", clock=clock))
    other_reason = corr.correlate(ev("m9", reason="SuccessfulDelete", clock=clock))
    other_object = corr.correlate(ev("m9", name="db", uid="uid-db", clock=clock))
    assert other_reason.event is not None and other_reason.event["message"] == "m9"
    assert other_object.event is not None and other_object.event["message"] == "m9"


# -- dedupe --------------------------------------------------------------------------------------


def test_a_repeat_patches_count_last_timestamp_and_message_of_the_first() -> None:
    clock = FakeClock(T0)
    namer = EventNamer()
    corr = EventCorrelator(clock, namer=namer)
    first = corr.correlate(ev("Back-off", clock=clock, namer=namer))
    assert first.event is not None and first.patch is None
    corr.update_state({**first.event, "metadata": {**first.event["metadata"], "resourceVersion": "7"}})
    clock.advance(30)
    again = corr.correlate(ev("Back-off", clock=clock, namer=namer))
    assert again.event is not None
    assert again.event["metadata"]["name"] == first.event["metadata"]["name"]
    assert again.event["metadata"]["resourceVersion"] == "7"
    assert again.event["firstTimestamp"] == rfc3339(T0)
    assert again.event["count"] == 2
    assert again.patch == {
        "count": 2,
        "lastTimestamp": rfc3339(T0 + timedelta(seconds=30)),
        "message": "Back-off",
    }


def test_spam_filtered_repeats_still_count() -> None:
    clock = FakeClock(T0)
    corr = EventCorrelator(clock, burst=2)
    results = [corr.correlate(ev("same", clock=clock)) for _ in range(5)]
    assert [r.skip for r in results] == [False, False, True, True, True]
    assert all(r.event is None for r in results[2:])
    clock.advance(300)
    late = corr.correlate(ev("same", clock=clock))
    assert late.patch is not None and late.patch["count"] == 6


def test_server_state_is_the_source_of_truth_for_counts() -> None:
    clock = FakeClock(T0)
    corr = EventCorrelator(clock)
    first = corr.correlate(ev("x", clock=clock))
    assert first.event is not None
    server = {**first.event, "count": 40, "metadata": {**first.event["metadata"], "resourceVersion": "9"}}
    corr.update_state(server)
    nxt = corr.correlate(ev("x", clock=clock))
    assert nxt.patch is not None and nxt.patch["count"] == 41
