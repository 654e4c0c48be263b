"""The pool's pure decisions: how many Machines, where, which go first, and its status."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from ccm.provisioning import api
from ccm.provisioning.planning import (
    MachineView,
    choose_zones,
    machine_name,
    plan_scale,
    pool_status,
    random_suffix,
    scale_down_order,
)
from ccm.provisioning.poolspec import PoolSpec

ZONES = ("z-a", "z-b", "z-c")
NOW = "2026-01-01T00:00:00Z"

machines = st.lists(
    st.builds(
        MachineView,
        name=st.text("abcdefgh", min_size=3, max_size=6),
        zone=st.sampled_from(ZONES),
        phase=st.sampled_from(list(api.MachinePhase)),
        created=st.sampled_from([f"2026-01-01T00:00:0{i}Z" for i in range(10)]),
        deleting=st.booleans(),
        delete_requested=st.booleans(),
        ready=st.booleans(),
    ),
    max_size=12,
    unique_by=lambda m: m.name,
)


@given(desired=st.integers(0, 15), existing=machines)
def test_plan_reaches_the_desired_count_and_touches_only_live_machines(
    desired: int, existing: list[MachineView]
) -> None:
    plan = plan_scale(desired, existing, ZONES)
    active = [m for m in existing if not m.deleting]
    assert not (plan.create_zones and plan.delete)
    assert len(active) + len(plan.create_zones) - len(plan.delete) == desired
    assert set(plan.delete) <= {m.name for m in active}
    assert len(set(plan.delete)) == len(plan.delete)


@given(existing=st.lists(st.sampled_from(ZONES), max_size=9), count=st.integers(0, 12))
def test_each_new_machine_goes_to_a_least_loaded_zone(existing: list[str], count: int) -> None:
    chosen = choose_zones(ZONES, existing, count)
    assert len(chosen) == count
    load = Counter(existing)
    for zone in chosen:
        assert load[zone] == min(load[z] for z in ZONES)
        load[zone] += 1
    if not existing:
        assert max(load.values(), default=0) - min(load[z] for z in ZONES) <= 1


def test_zones_from_empty_are_round_robin_and_no_zones_means_the_default() -> None:
    assert choose_zones(ZONES, [], 4) == ["z-a", "z-b", "z-c", "z-a"]
    assert choose_zones(ZONES, ["z-a", "z-a"], 2) == ["z-b", "z-c"]
    assert choose_zones((), [], 2) == ["", ""]


def test_scale_down_prefers_annotated_then_failed_then_not_ready_then_newest() -> None:
    ms = [
        MachineView("old-ready", phase="Running", ready=True, created="2026-01-01T00:00:01Z"),
        MachineView("new-ready", phase="Running", ready=True, created="2026-01-01T00:00:09Z"),
        MachineView("booting", phase="Bootstrapping", created="2026-01-01T00:00:02Z"),
        MachineView("failed", phase="Failed", created="2026-01-01T00:00:00Z"),
        MachineView(
            "marked", phase="Running", ready=True, delete_requested=True, created="2026-01-01T00:00:00Z"
        ),
    ]
    assert [m.name for m in scale_down_order(ms)] == ["marked", "failed", "booting", "new-ready", "old-ready"]
    assert plan_scale(3, ms, ZONES).delete == ("marked", "failed")


def test_machines_being_deleted_are_already_replaced() -> None:
    ms = [MachineView("a", deleting=True), MachineView("b")]
    assert plan_scale(2, ms, ("z",)).create_zones == ("z",)


def test_names() -> None:
    suffix = random_suffix(random.Random(1))
    assert len(suffix) == 5 and suffix.isalnum() and not set(suffix) & set("aeiou013")
    assert machine_name("pool", "abcde") == "pool-abcde"
    long = machine_name("p" * 80, "abcde")
    assert len(long) == 63 and long.endswith("-abcde")


def test_machine_view_from_object() -> None:
    obj = {
        "metadata": {
            "name": "m",
            "creationTimestamp": NOW,
            "annotations": {api.ANNOTATION_DELETE_MACHINE: ""},
            "deletionTimestamp": NOW,
        },
        "spec": {"zone": "z-b"},
        "status": {"phase": "Running", "conditions": [{"type": "NodeReady", "status": "True"}]},
    }
    view = MachineView.from_object(obj)
    assert view == MachineView("m", "z-b", "Running", NOW, True, True, True, False)
    failed = MachineView.from_object(
        {"metadata": {"name": "f"}, "status": {"phase": "Deleting", "failureReason": "X"}}
    )
    assert failed.failed and not failed.ready


def test_pool_status_counts_and_conditions() -> None:
    pool = PoolSpec(name="p", replicas=3, generation=4)
    ms = [
        MachineView("a", phase="Running", ready=True),
        MachineView("b", phase="Bootstrapping"),
        MachineView("c", deleting=True),
    ]
    status = pool_status(pool, ms, None, NOW)
    assert status["replicas"] == 2 and status["readyReplicas"] == 1
    assert status["selector"] == f"{api.LABEL_NODE_POOL}=p"
    assert status["observedGeneration"] == 4
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Resized"]["status"] == "False" and conds["Resized"]["reason"] == "ScalingUp"
    assert conds["MachinesReady"]["status"] == "False" and "b" in conds["MachinesReady"]["message"]
    assert conds["RemediationAllowed"]["status"] == "True"
    done = pool_status(
        PoolSpec(name="p", replicas=1),
        [MachineView("a", phase="Running", ready=True)],
        status["conditions"],
        NOW,
    )
    conds = {c["type"]: c for c in done["conditions"]}
    assert conds["Resized"]["status"] == "True" and conds["MachinesReady"]["status"] == "True"
    blocked = pool_status(pool, ms, None, NOW, remediation_blocked="too many")
    assert {c["type"]: c["reason"] for c in blocked["conditions"]}["RemediationAllowed"] == "TooManyUnhealthy"
