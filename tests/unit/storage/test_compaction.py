"""The retention policy alone: pure arithmetic over (time, revision) samples."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.storage.compaction import RetentionPolicy


def test_nothing_is_compacted_before_a_full_time_window_was_observed() -> None:
    policy = RetentionPolicy(retain_revisions=10, retain_seconds=300)
    policy.observe(0, 5000)
    assert policy.target(299, 6000) == 0
    assert policy.target(300, 6000) == 5000


def test_the_count_bound_wins_when_it_is_lower() -> None:
    policy = RetentionPolicy(retain_revisions=1000, retain_seconds=300)
    policy.observe(0, 1200)
    assert policy.target(400, 1500) == 500


@settings(deadline=None, max_examples=100)
@given(
    st.lists(st.tuples(st.floats(0, 100), st.integers(0, 50)), min_size=1, max_size=30),
    st.integers(0, 2000),
    st.floats(0, 600),
)
def test_target_never_reaches_into_either_window(
    steps: list[tuple[float, int]], retain_revisions: int, retain_seconds: float
) -> None:
    policy = RetentionPolicy(retain_revisions=retain_revisions, retain_seconds=retain_seconds)
    now, revision = 0.0, 0
    history: list[tuple[float, int]] = []  # (time, revision current from then on)
    for dt, writes in steps:
        now += dt
        revision += writes
        history.append((now, revision))
        policy.observe(now, revision)
        target = policy.target(now, revision)
        assert 0 <= target <= max(0, revision - retain_revisions)
        if target:
            # every revision at or below the target was already written retain_seconds ago
            assert any(t <= now - retain_seconds and r >= target for t, r in history)
