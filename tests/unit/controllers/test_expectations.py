"""The expectations every pod-managing controller keeps (upstream ControllerExpectations and
UIDTrackingControllerExpectations)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controlplane.controllers.expectations import (
    EXPECTATIONS_TIMEOUT,
    ControllerExpectations,
    UIDTrackingControllerExpectations,
)
from controlplane.controllers.runtime import FakeClock


def test_nothing_expected_is_satisfied() -> None:
    exp = ControllerExpectations(FakeClock())
    assert exp.satisfied("k")
    assert exp.get("k") is None


def test_set_counts_down_and_lowers() -> None:
    exp = ControllerExpectations(FakeClock())
    exp.set("k", 2, 1)
    assert not exp.satisfied("k")
    exp.creation_observed("k")
    exp.creation_observed("k")
    assert not exp.satisfied("k")
    exp.deletion_observed("k")
    assert exp.satisfied("k")
    exp.set("k", 5, 0)
    exp.lower("k", 4, 0)
    assert exp.get("k") == (1, 0)
    exp.delete("k")
    assert exp.get("k") is None
    exp.creation_observed("k")  # nothing recorded: observations are dropped
    assert exp.get("k") is None


def test_expect_creations_and_deletions_replace_the_record() -> None:
    exp = ControllerExpectations(FakeClock())
    exp.expect_creations("k", 3)
    assert exp.get("k") == (3, 0)
    exp.expect_deletions("k", 2)
    assert exp.get("k") == (0, 2)


def test_expectations_expire() -> None:
    clock = FakeClock()
    exp = ControllerExpectations(clock)
    exp.expect_creations("k", 1)
    clock.advance(EXPECTATIONS_TIMEOUT)
    assert not exp.satisfied("k")
    clock.advance(1)
    assert exp.satisfied("k")  # expired: a lost watch event must not wedge the controller


def test_timeout_is_configurable() -> None:
    clock = FakeClock()
    exp = ControllerExpectations(clock, timeout=10)
    exp.expect_deletions("k", 1)
    clock.advance(11)
    assert exp.satisfied("k")


@given(st.integers(0, 20), st.integers(0, 20), st.integers(0, 40), st.integers(0, 40))
def test_satisfied_exactly_when_every_write_was_observed(
    adds: int, dels: int, seen_a: int, seen_d: int
) -> None:
    exp = ControllerExpectations(FakeClock())
    exp.set("k", adds, dels)
    for _ in range(seen_a):
        exp.creation_observed("k")
    for _ in range(seen_d):
        exp.deletion_observed("k")
    assert exp.satisfied("k") == (seen_a >= adds and seen_d >= dels)


def test_uid_tracking_counts_each_pod_once() -> None:
    clock = FakeClock()
    exp = UIDTrackingControllerExpectations(clock)
    assert exp.satisfied("ns/rs")
    exp.expect_creations("ns/rs", 2)
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert exp.satisfied("ns/rs")

    exp.expect_deletions("ns/rs", ["ns/a", "ns/b"])
    exp.deletion_observed("ns/rs", "ns/a")
    exp.deletion_observed("ns/rs", "ns/a")  # the same pod seen twice counts once
    exp.deletion_observed("ns/rs", "ns/other")
    assert exp.get("ns/rs") == (0, 1)
    assert not exp.satisfied("ns/rs")
    clock.advance(EXPECTATIONS_TIMEOUT + 1)
    assert exp.satisfied("ns/rs")
    exp.delete("ns/rs")
    assert exp.get("ns/rs") is None


def test_uid_tracking_creations_forget_awaited_deletions() -> None:
    exp = UIDTrackingControllerExpectations(FakeClock())
    exp.expect_deletions("ns/rs", ["ns/a"])
    exp.expect_creations("ns/rs", 1)
    exp.deletion_observed("ns/rs", "ns/a")
    assert exp.get("ns/rs") == (1, 0)
