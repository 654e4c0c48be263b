"""The DaemonSet controller's pure decisions: manage, rolling update (surge and unavailable),
status, and the state it keeps (expectations, failed-pod back-off)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.controllers.daemonset_placement import pin_to_node
from controlplane.controllers.daemonset_rollout import (
    compute_status,
    create_pod_template,
    daemon_pods_by_node,
    is_pod_updated,
    plan_manage,
    plan_rolling_update,
    scaled_value,
    template_generation,
)
from controlplane.controllers.daemonset_tracking import FailedPodBackoff

Obj = dict[str, Any]
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T0 = "2026-01-01T11:00:00Z"


def node(name: str, taints: list[Obj] | None = None) -> Obj:
    return {"metadata": {"name": name, "labels": {}}, "spec": {"taints": taints or []}}


def daemonset(
    max_unavailable: Any = 1, max_surge: Any = 0, strategy: str = "RollingUpdate", min_ready: int = 0
) -> Obj:
    update: Obj = {"type": strategy}
    if strategy == "RollingUpdate":
        update["rollingUpdate"] = {"maxUnavailable": max_unavailable, "maxSurge": max_surge}
    return {
        "metadata": {"name": "agent", "namespace": "ns", "uid": "ds-uid", "generation": 2},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": update,
            "minReadySeconds": min_ready,
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
        "status": {"observedGeneration": 2},
    }


def pod(
    name: str,
    node_name: str,
    hash_: str,
    *,
    ready: bool = True,
    phase: str = "Running",
    created: str = T0,
    bound: bool = True,
    deleting: bool = False,
) -> Obj:
    meta: Obj = {
        "name": name,
        "namespace": "ns",
        "labels": {"app": "agent", "controller-revision-hash": hash_},
        "creationTimestamp": created,
    }
    if deleting:
        meta["deletionTimestamp"] = T0
    spec: Obj = {"affinity": pin_to_node(None, node_name)}
    if bound:
        spec["nodeName"] = node_name
    status: Obj = {"phase": phase}
    if ready:
        status["conditions"] = [{"type": "Ready", "status": "True", "lastTransitionTime": T0}]
    return {"metadata": meta, "spec": spec, "status": status}


def by_node(*pods: Obj) -> dict[str, list[Obj]]:
    return daemon_pods_by_node(pods)


def test_scaled_value_rounds_like_intstr() -> None:
    assert scaled_value(2, 10, True) == 2
    assert scaled_value("25%", 10, True) == 3
    assert scaled_value("25%", 10, False) == 2
    assert scaled_value(None, 10, True) == 0
    with pytest.raises(ValueError):
        scaled_value("x%", 10, True)


def test_template_generation_and_updated_pods() -> None:
    ds = daemonset()
    assert template_generation(ds) == 2
    ds["metadata"]["annotations"] = {"deprecated.daemonset.template.generation": "7"}
    assert template_generation(ds) == 7
    p = pod("a", "n1", "old")
    assert not is_pod_updated(p, "new", 7)
    assert is_pod_updated(p, "old", 7)
    p["metadata"]["labels"]["pod-template-generation"] = "7"
    assert is_pod_updated(p, "new", 7)


def test_pod_template_gets_labels_and_daemon_tolerations() -> None:
    template = daemonset()["spec"]["template"]
    out = create_pod_template(template, 3, "h1")
    assert out["metadata"]["labels"] == {
        "app": "agent",
        "pod-template-generation": "3",
        "controller-revision-hash": "h1",
    }
    assert len(out["spec"]["tolerations"]) == 6
    assert "tolerations" not in template["spec"]


def test_manage_creates_deletes_and_prunes() -> None:
    ds = daemonset()
    nodes = [node("n1"), node("n2"), node("gone", taints=[{"key": "x", "effect": "NoExecute"}])]
    pods = by_node(
        pod("on-gone", "gone", "h"),
        pod("older", "n2", "h", created="2026-01-01T10:00:00Z"),
        pod("newer", "n2", "h"),
        # Never scheduled, pinned to a node that no longer exists: ours to delete.
        pod("orphaned", "vanished", "h", bound=False),
        # Scheduled on a vanished node: the pod GC's business, not ours.
        pod("stranded", "vanished2", "h"),
    )
    plan = plan_manage(ds, nodes, pods, "h", FailedPodBackoff(), 0.0, NOW)
    assert plan.create_on == ["n1"]
    assert sorted(plan.delete) == ["newer", "on-gone", "orphaned"]
    assert plan.events == [] and plan.requeue_after is None


def test_failed_pods_are_replaced_with_backoff() -> None:
    ds = daemonset()
    nodes = [node("n1")]
    backoff = FailedPodBackoff(initial=1.0, maximum=60.0)
    failed = by_node(pod("bad", "n1", "h", phase="Failed", ready=False))
    plan = plan_manage(ds, nodes, failed, "h", backoff, 100.0, NOW)
    assert plan.delete == ["bad"]
    assert plan.events == [
        ("Warning", "FailedDaemonPod", "Found failed daemon pod ns/bad on node n1, will try to kill it")
    ]
    # It fails again within the back-off: no deletion, a retry after the delay instead.
    plan = plan_manage(ds, nodes, failed, "h", backoff, 100.5, NOW)
    assert plan.delete == [] and plan.requeue_after == 1.0
    plan = plan_manage(ds, nodes, failed, "h", backoff, 101.5, NOW)
    assert plan.delete == ["bad"]
    assert backoff.get("ds-uid/2/n1") == 2.0
    done = by_node(pod("done", "n1", "h", phase="Succeeded", ready=False))
    plan = plan_manage(ds, nodes, done, "h", backoff, 200.0, NOW)
    assert plan.delete == ["done"] and plan.events[0][1] == "SucceededDaemonPod"


def test_manage_with_surge_keeps_one_old_while_the_new_is_not_available() -> None:
    ds = daemonset(max_unavailable=0, max_surge=1)
    nodes = [node("n1")]
    waiting = by_node(pod("old", "n1", "h1"), pod("new", "n1", "h2", ready=False))
    assert plan_manage(ds, nodes, waiting, "h2", FailedPodBackoff(), 0.0, NOW).delete == []
    available = by_node(pod("old", "n1", "h1"), pod("new", "n1", "h2"))
    assert plan_manage(ds, nodes, available, "h2", FailedPodBackoff(), 0.0, NOW).delete == ["old"]
    unready_old = by_node(pod("old", "n1", "h1", ready=False), pod("new", "n1", "h2", ready=False))
    assert plan_manage(ds, nodes, unready_old, "h2", FailedPodBackoff(), 0.0, NOW).delete == ["old"]


def test_rolling_update_without_surge_respects_max_unavailable() -> None:
    nodes = [node(f"n{i}") for i in range(4)]
    old = [pod(f"p{i}", f"n{i}", "old") for i in range(4)]
    plan = plan_rolling_update(daemonset(max_unavailable=1), nodes, by_node(*old), "new", NOW)
    assert len(plan.delete) == 1 and plan.create_on == []
    plan = plan_rolling_update(daemonset(max_unavailable="50%"), nodes, by_node(*old), "new", NOW)
    assert len(plan.delete) == 2
    # One new pod still starting uses up the budget.
    mixed = [pod("p0", "n0", "new", ready=False), *old[1:]]
    assert plan_rolling_update(daemonset(max_unavailable=1), nodes, by_node(*mixed), "new", NOW).delete == []
    # An old pod that is not available anyway may always be replaced.
    broken = [pod("p0", "n0", "new", ready=False), pod("p1", "n1", "old", ready=False), *old[2:]]
    assert plan_rolling_update(daemonset(max_unavailable=1), nodes, by_node(*broken), "new", NOW).delete == [
        "p1"
    ]
    # Both zero: upstream falls back to one unavailable.
    assert plan_rolling_update(daemonset(0, 0), nodes, by_node(*old), "new", NOW).max_unavailable == 1


def test_rolling_update_with_surge_creates_beside_old_pods() -> None:
    nodes = [node(f"n{i}") for i in range(3)]
    old = [pod(f"p{i}", f"n{i}", "old") for i in range(3)]
    plan = plan_rolling_update(daemonset(max_unavailable=0, max_surge=1), nodes, by_node(*old), "new", NOW)
    assert plan.delete == [] and len(plan.create_on) == 1
    surged = [*old, pod("q0", "n0", "new", ready=False)]
    plan = plan_rolling_update(daemonset(0, 1), nodes, by_node(*surged), "new", NOW)
    assert plan.create_on == [] and plan.delete == []
    ready = [*old, pod("q0", "n0", "new")]
    plan = plan_rolling_update(daemonset(0, 1), nodes, by_node(*ready), "new", NOW)
    assert plan.delete == ["p0"] and len(plan.create_on) == 1 and plan.create_on[0] != "n0"


def test_status_counts() -> None:
    ds = daemonset(min_ready=3600)
    nodes = [node("n1"), node("n2"), node("n3"), node("off", taints=[{"key": "x", "effect": "NoExecute"}])]
    pods = by_node(
        pod("a", "n1", "new"),
        pod("b", "n2", "old", ready=False),
        pod("c", "off", "new"),
    )
    assert compute_status(ds, nodes, pods, "new", NOW) == {
        "desiredNumberScheduled": 3,
        "currentNumberScheduled": 2,
        "numberMisscheduled": 1,
        "numberReady": 1,
        "updatedNumberScheduled": 1,
        "numberAvailable": 1,
        "numberUnavailable": 2,
    }
    # minReadySeconds not yet reached: ready but not available.
    recent = by_node(pod("a", "n1", "new", created=T0))
    recent["n1"][0]["status"]["conditions"][0]["lastTransitionTime"] = "2026-01-01T11:59:00Z"
    status = compute_status(ds, nodes[:1], recent, "new", NOW)
    assert status["numberReady"] == 1 and status["numberAvailable"] == 0


def test_deleted_finished_pods_are_ignored_unless_asked_for() -> None:
    gone = pod("x", "n1", "h", phase="Succeeded", deleting=True)
    assert daemon_pods_by_node([gone]) == {}
    assert daemon_pods_by_node([gone], include_deleted_terminal=True) == {"n1": [gone]}


# --- a whole rollout, simulated -----------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=6), st.data())
def test_rollout_never_exceeds_max_unavailable(n: int, data: st.DataObject) -> None:
    """Alternate rolling-update and manage steps while a random subset of new pods becomes
    ready each round: no more than maxUnavailable nodes ever lack an available pod, and the
    rollout finishes."""
    max_unavailable = data.draw(st.integers(min_value=1, max_value=n))
    ds = daemonset(max_unavailable=max_unavailable)
    nodes = [node(f"n{i}") for i in range(n)]
    pods: dict[str, Obj] = {f"old{i}": pod(f"old{i}", f"n{i}", "old") for i in range(n)}
    counter = 0
    for _ in range(6 * n + 6):
        plan = plan_rolling_update(ds, nodes, daemon_pods_by_node(pods.values()), "new", NOW)
        for name in plan.delete:
            del pods[name]
        manage = plan_manage(
            ds, nodes, daemon_pods_by_node(pods.values()), "new", FailedPodBackoff(), 0.0, NOW
        )
        for node_name in manage.create_on:
            counter += 1
            pods[f"new{counter}"] = pod(f"new{counter}", node_name, "new", ready=False)
        available = sum(
            1
            for nd in nodes
            if any(
                p["spec"]["nodeName"] == nd["metadata"]["name"] and p["status"].get("conditions")
                for p in pods.values()
            )
        )
        assert n - available <= max_unavailable
        for p in pods.values():
            if not p["status"].get("conditions") and data.draw(st.booleans()):
                p["status"]["conditions"] = [{"type": "Ready", "status": "True", "lastTransitionTime": T0}]
        if all(p["metadata"]["labels"]["controller-revision-hash"] == "new" for p in pods.values()) and all(
            p["status"].get("conditions") for p in pods.values()
        ):
            break
        # Guarantee progress eventually, whatever hypothesis draws.
        if _ > 3 * n:
            for p in pods.values():
                p["status"]["conditions"] = [{"type": "Ready", "status": "True", "lastTransitionTime": T0}]
    assert len(pods) == n
    assert {p["metadata"]["labels"]["controller-revision-hash"] for p in pods.values()} == {"new"}


# --- tracking -----------------------------------------------------------------------------------


def test_backoff_doubles_caps_and_expires() -> None:
    b = FailedPodBackoff(initial=1.0, maximum=4.0)
    assert not b.in_backoff_since_update("k", 0.0)
    b.next("k", 0.0)
    assert b.in_backoff_since_update("k", 0.5) and not b.in_backoff_since_update("k", 1.0)
    for t in (1.0, 2.0, 3.0, 4.0):
        b.next("k", t)
    assert b.get("k") == 4.0
    b.gc(5.0)
    assert len(b) == 1
    b.gc(20.0)
    assert len(b) == 0
    b.next("k", 30.0)
    assert b.get("k") == 1.0


def test_plans_do_not_touch_their_inputs() -> None:
    ds = daemonset()
    nodes = [node("n1"), node("n2")]
    pods = by_node(pod("a", "n1", "old"), pod("b", "n2", "old"))
    frozen = copy.deepcopy((ds, nodes, pods))
    plan_rolling_update(ds, nodes, pods, "new", NOW)
    plan_manage(ds, nodes, pods, "new", FailedPodBackoff(), 0.0, NOW)
    compute_status(ds, nodes, pods, "new", NOW)
    assert (ds, nodes, pods) == frozen
