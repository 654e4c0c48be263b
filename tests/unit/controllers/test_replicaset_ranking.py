"""Deletion ranking of a ReplicaSet's pods (upstream ActivePodsWithRanks / getPodsToDelete)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.controllers.replica_ranking import (
    compare_for_deletion,
    deletion_cost,
    pods_to_delete,
    ranks_by_related_on_same_node,
    sort_for_deletion,
)
from controlplane.controllers.runtime import rfc3339

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def pod(
    name: str,
    *,
    node: str = "n1",
    phase: str = "Running",
    ready: bool = True,
    ready_for: float = 3600,
    age: float = 7200,
    restarts: int = 0,
    cost: str | None = None,
    uid: str | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "ns",
        "uid": uid or f"uid-{name}",
        "creationTimestamp": rfc3339(NOW - timedelta(seconds=age)),
    }
    if cost is not None:
        meta["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": cost}
    conditions = [
        {
            "type": "Ready",
            "status": "True" if ready else "False",
            "lastTransitionTime": rfc3339(NOW - timedelta(seconds=ready_for)),
        }
    ]
    return {
        "metadata": meta,
        "spec": {"nodeName": node} if node else {},
        "status": {
            "phase": phase,
            "conditions": conditions,
            "containerStatuses": [{"name": "c", "restartCount": restarts}],
        },
    }


def first(a: dict[str, Any], b: dict[str, Any], rank_a: int = 0, rank_b: int = 0) -> str:
    """The name of the pod deleted first, checked in both argument orders."""
    forward = compare_for_deletion(a, b, rank_a, rank_b, NOW)
    backward = compare_for_deletion(b, a, rank_b, rank_a, NOW)
    assert forward == -backward
    assert forward != 0
    return str((a if forward < 0 else b)["metadata"]["name"])


def test_unassigned_before_assigned() -> None:
    assert first(pod("bound"), pod("loose", node="", phase="Pending", ready=False)) == "loose"


def test_pending_before_unknown_before_running() -> None:
    assert first(pod("running"), pod("pending", phase="Pending")) == "pending"
    assert first(pod("running"), pod("unknown", phase="Unknown")) == "unknown"
    assert first(pod("unknown", phase="Unknown"), pod("pending", phase="Pending")) == "pending"


def test_not_ready_before_ready() -> None:
    assert first(pod("ready"), pod("notready", ready=False)) == "notready"


def test_lower_deletion_cost_first() -> None:
    assert first(pod("expensive", cost="100"), pod("cheap", cost="-5")) == "cheap"
    # Unparsable costs count as zero.
    assert first(pod("junk", cost="abc"), pod("one", cost="1")) == "junk"


def test_doubled_up_pods_first() -> None:
    assert first(pod("alone"), pod("crowded"), rank_a=1, rank_b=3) == "crowded"


def test_ready_for_less_time_first_in_log2_buckets() -> None:
    assert first(pod("old", ready_for=10_000), pod("young", ready_for=10)) == "young"
    # 100 s and 110 s are in the same power-of-two bucket of nanoseconds: the uid decides.
    a, b = pod("a", ready_for=100, uid="u2"), pod("b", ready_for=110, uid="u1")
    assert first(a, b) == "b"


def test_more_restarts_first() -> None:
    assert first(pod("steady", restarts=0), pod("flappy", restarts=4)) == "flappy"


def test_newer_first_and_missing_creation_time_before_all() -> None:
    assert first(pod("old", ready=False, age=100_000), pod("new", ready=False, age=10)) == "new"
    nameless = pod("zero", ready=False)
    del nameless["metadata"]["creationTimestamp"]
    assert first(pod("new", ready=False, age=10), nameless) == "zero"


def test_deletion_cost_parsing() -> None:
    assert deletion_cost(pod("p", cost="+7")) == 7
    assert deletion_cost(pod("p", cost="2147483648")) == 0
    assert deletion_cost(pod("p", cost=" 3")) == 0
    assert deletion_cost(pod("p")) == 0


def test_ranks_count_active_related_pods_per_node() -> None:
    related = [pod("a", node="n1"), pod("b", node="n1"), pod("c", node="n2")]
    related.append({**pod("gone", node="n2"), "status": {"phase": "Succeeded"}})
    mine = [pod("x", node="n1"), pod("y", node="n2"), pod("z", node="n3")]
    assert ranks_by_related_on_same_node(mine, related) == [2, 1, 0]


def test_pods_to_delete_prefers_the_least_established() -> None:
    pods = [
        pod("ready-old", age=50_000, ready_for=40_000),
        pod("unscheduled", node="", phase="Pending", ready=False),
        pod("pending", phase="Pending", ready=False),
        pod("ready-young", age=100, ready_for=50),
        pod("notready", ready=False),
    ]
    chosen = pods_to_delete(pods, pods, 3, NOW)
    assert [p["metadata"]["name"] for p in chosen] == ["unscheduled", "pending", "notready"]
    assert pods_to_delete(pods, pods, 9, NOW) == pods


pods_strategy = st.builds(
    pod,
    st.text("abcdef", min_size=1, max_size=4),
    node=st.sampled_from(["", "n1", "n2"]),
    phase=st.sampled_from(["Pending", "Running", "Unknown"]),
    ready=st.booleans(),
    ready_for=st.floats(0, 1e6),
    age=st.floats(0, 1e7),
    restarts=st.integers(0, 5),
    cost=st.sampled_from([None, "0", "5", "-3", "x"]),
)


@settings(max_examples=60)
@given(st.lists(pods_strategy, max_size=12), st.integers(0, 12))
def test_pods_to_delete_takes_every_unready_pod_before_a_ready_one(
    pods: list[dict[str, Any]], diff: int
) -> None:
    chosen = pods_to_delete(pods, pods, diff, NOW)
    assert len(chosen) == min(diff, len(pods))
    ids = {id(p) for p in chosen}
    assert ids <= {id(p) for p in pods}
    # Among pods on a node and in the same phase, no ready pod goes while a not-ready one stays.
    for kept in (p for p in pods if id(p) not in ids):
        for gone in chosen:
            same_tier = bool(kept["spec"].get("nodeName")) == bool(gone["spec"].get("nodeName")) and (
                kept["status"]["phase"] == gone["status"]["phase"]
            )
            ready_gone = gone["status"]["conditions"][0]["status"] == "True"
            unready_kept = kept["status"]["conditions"][0]["status"] == "False"
            assert not (same_tier and ready_gone and unready_kept)


@settings(max_examples=60)
@given(st.lists(pods_strategy, min_size=2, max_size=8))
def test_comparison_is_antisymmetric(pods: list[dict[str, Any]]) -> None:
    for a in pods:
        for b in pods:
            assert compare_for_deletion(a, b, 0, 0, NOW) == -compare_for_deletion(b, a, 0, 0, NOW)


def test_sort_orders_unready_then_ready_newest_first() -> None:
    pods = [pod(str(i), ready=i % 2 == 0, age=i * 1000) for i in range(6)]
    out = sort_for_deletion(pods, [0] * 6, NOW)
    assert [p["metadata"]["name"] for p in out] == ["1", "3", "5", "0", "2", "4"]


def test_without_now_times_compare_exactly() -> None:
    """LogarithmicScaleDown buckets need `now`; without it the later time simply goes first."""
    a, b = pod("a", ready_for=100, uid="u2"), pod("b", ready_for=110, uid="u1")
    assert compare_for_deletion(a, b, 0, 0, None) == -1
    assert compare_for_deletion(a, b, 0, 0, NOW) == 1
