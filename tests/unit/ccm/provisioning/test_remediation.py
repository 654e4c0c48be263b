"""MachineHealthCheck's maxUnhealthy: remediate within the limit, nothing beyond it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ccm.provisioning.planning import MachineView
from ccm.provisioning.remediation import max_unhealthy_count, plan_remediation


def test_max_unhealthy_counts_and_percentages_round_down() -> None:
    assert max_unhealthy_count(2, 10) == 2
    assert max_unhealthy_count("40%", 10) == 4
    assert max_unhealthy_count("33%", 10) == 3
    assert max_unhealthy_count("100%", 3) == 3
    assert max_unhealthy_count("3", 10) == 3
    assert max_unhealthy_count(-1, 10) == 0


def test_failed_machines_are_replaced_within_the_limit() -> None:
    ms = [MachineView("a", phase="Failed", failed=True), MachineView("b", phase="Running", ready=True)]
    assert plan_remediation(ms, 1).delete == ("a",)


def test_beyond_the_limit_nothing_is_remediated_and_it_says_why() -> None:
    ms = [MachineView(n, phase="Failed", failed=True) for n in "abc"] + [MachineView("d")]
    plan = plan_remediation(ms, 2)
    assert plan.delete == ()
    assert "(total: 4, unhealthy: 3, maxUnhealthy: 2)" in plan.blocked


def test_machines_already_on_their_way_out_count_against_the_limit() -> None:
    ms = [
        MachineView("a", phase="Deleting", failed=True, deleting=True),
        MachineView("b", phase="Failed", failed=True),
    ]
    assert plan_remediation(ms, 1).delete == ()
    assert plan_remediation(ms, 2).delete == ("b",)
    assert plan_remediation([MachineView("x", failed=True, deleting=True)], 0).blocked == ""


@given(
    flags=st.lists(st.tuples(st.booleans(), st.booleans()), max_size=10),
    limit=st.integers(0, 10),
)
def test_never_more_unhealthy_in_flight_than_allowed(flags: list[tuple[bool, bool]], limit: int) -> None:
    ms = [MachineView(f"m{i}", failed=f, deleting=d) for i, (f, d) in enumerate(flags)]
    plan = plan_remediation(ms, limit)
    in_flight = sum(1 for m in ms if m.failed and m.deleting) + len(plan.delete)
    if plan.delete:
        assert in_flight <= limit
    assert set(plan.delete) <= {m.name for m in ms if m.failed and not m.deleting}
