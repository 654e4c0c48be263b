"""What a StatefulSet sync decides (upstream updateStatefulSet): ordered start and stop, Parallel,
partitioned rolling updates, OnDelete, failed pods, ordinals.start, and the status it reports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.controllers.statefulset_plan import Action, plan_statefulset
from controlplane.controllers.statefulset_pods import new_pod

Obj = dict[str, Any]
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T0 = "2026-01-01T11:00:00Z"
REF = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "set-uid", "controller": True}


def sts(
    replicas: int = 3,
    *,
    policy: str = "OrderedReady",
    partition: int | None = 0,
    start: int | None = None,
    generation: int = 1,
) -> Obj:
    spec: Obj = {
        "replicas": replicas,
        "podManagementPolicy": policy,
        "serviceName": "web",
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        },
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}
        if partition is not None
        else {"type": "OnDelete"},
    }
    if start is not None:
        spec["ordinals"] = {"start": start}
    return {
        "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid", "generation": generation},
        "spec": spec,
    }


def pod(
    ordinal: int, revision: str = "r1", *, phase: str = "Running", ready: bool = True, deleting: bool = False
) -> Obj:
    p = new_pod(sts(), ordinal, REF)
    p["metadata"]["labels"]["controller-revision-hash"] = revision
    p["metadata"]["uid"] = f"uid-{ordinal}"
    if deleting:
        p["metadata"]["deletionTimestamp"] = T0
    p["status"] = {"phase": phase}
    if ready:
        p["status"]["conditions"] = [{"type": "Ready", "status": "True", "lastTransitionTime": T0}]
    return p


def plan(
    s: Obj, pods: list[Obj], current: str = "r1", update: str = "r1", claims: dict[str, Obj] | None = None
) -> Any:
    return plan_statefulset(s, s, s, current, update, 0, pods, claims or {}, REF, NOW)


def summary(actions: list[Action]) -> list[tuple[str, str]]:
    return [(a.kind, a.pod["metadata"]["name"]) for a in actions]


def test_ordered_ready_creates_one_pod_at_a_time() -> None:
    assert summary(plan(sts(), []).actions()) == [("create", "web-0")]
    starting = plan(sts(), [pod(0, phase="Pending", ready=False)])
    assert summary(starting.actions()) == [("ensure_claims", "web-0")]
    running_unready = plan(sts(), [pod(0, ready=False)])
    assert running_unready.actions() == []
    assert summary(plan(sts(), [pod(0)]).actions()) == [("create", "web-1")]
    assert summary(plan(sts(), [pod(0), pod(1)]).actions()) == [("create", "web-2")]
    assert plan(sts(), [pod(0), pod(1), pod(2)]).actions() == []


def test_created_pod_carries_the_right_revision() -> None:
    s = sts(partition=1)
    current = {
        **s,
        "spec": {
            **s["spec"],
            "template": {**s["spec"]["template"], "metadata": {"labels": {"app": "web", "v": "1"}}},
        },
    }
    p = plan_statefulset(s, current, s, "r1", "r2", 0, [], {}, REF, NOW)
    created = p.actions()[0].pod
    assert created["metadata"]["labels"]["controller-revision-hash"] == "r1"
    assert created["metadata"]["labels"]["v"] == "1"
    p = plan_statefulset(s, current, s, "r1", "r2", 0, [pod(0, "r1")], {}, REF, NOW)
    assert p.actions()[0].pod["metadata"]["labels"]["controller-revision-hash"] == "r2"


def test_parallel_creates_everything_at_once() -> None:
    p = plan(sts(policy="Parallel"), [])
    assert summary(p.actions()) == [("create", "web-0"), ("create", "web-1"), ("create", "web-2")]
    assert not p.monotonic
    # Nor does it wait for readiness to scale down.
    p = plan(sts(1, policy="Parallel"), [pod(0, ready=False), pod(1, ready=False), pod(2)])
    assert summary(p.actions()) == [("delete", "web-2"), ("delete", "web-1")]


def test_ordered_scale_down_goes_from_the_top_one_at_a_time() -> None:
    pods = [pod(0), pod(1), pod(2)]
    assert summary(plan(sts(1), pods).actions()) == [("delete", "web-2")]
    waiting = [pod(0), pod(1), pod(2, deleting=True)]
    assert plan(sts(1), waiting).actions() == []
    assert summary(plan(sts(1), [pod(0), pod(1)]).actions()) == [("delete", "web-1")]
    # An unhealthy pod is deleted only if it is the first unhealthy one (the lowest ordinal);
    # a higher unhealthy pod waits for it, as upstream's processCondemned.
    assert plan(sts(1), [pod(0), pod(1, ready=False), pod(2, ready=False)]).actions() == []
    assert summary(plan(sts(1), [pod(0), pod(1), pod(2, ready=False)]).actions()) == [("delete", "web-2")]
    # An unhealthy replica that stays blocks scale down altogether.
    assert plan(sts(2), [pod(0), pod(1, ready=False), pod(2)]).actions() == []


def test_failed_pods_are_deleted_and_block_in_order() -> None:
    p = plan(sts(), [pod(0, phase="Failed", ready=False)])
    assert summary(p.actions()) == [("delete", "web-0")]
    # Already being deleted: wait for it to go.
    assert plan(sts(), [pod(0, phase="Failed", ready=False, deleting=True)]).actions() == []


def test_partitioned_rolling_update_from_the_top_down() -> None:
    s = sts(partition=1)
    old = [pod(0, "r1"), pod(1, "r1"), pod(2, "r1")]
    p = plan(s, old, "r1", "r2")
    assert summary(p.actions()) == [("delete", "web-2")]
    assert p.actions()[0].rolling
    # web-2 at the new revision but not ready yet: wait.
    assert plan(s, [pod(0, "r1"), pod(1, "r1"), pod(2, "r2", ready=False)], "r1", "r2").actions() == []
    p = plan(s, [pod(0, "r1"), pod(1, "r1"), pod(2, "r2")], "r1", "r2")
    assert summary(p.actions()) == [("delete", "web-1")]
    # Below the partition nothing moves.
    assert plan(s, [pod(0, "r1"), pod(1, "r2"), pod(2, "r2")], "r1", "r2").actions() == []


def test_on_delete_never_deletes_for_an_update() -> None:
    s = sts(partition=None)
    assert plan(s, [pod(0, "r1"), pod(1, "r1"), pod(2, "r1")], "r1", "r2").actions() == []


def test_start_ordinal_shifts_the_range() -> None:
    s = sts(2, start=5)
    p = plan(s, [pod(0), pod(1)])
    # web-0 and web-1 are outside 5..6; web-5 comes first and blocks the rest.
    assert summary(p.actions()) == [("create", "web-5")]
    p = plan(s, [pod(0), pod(1), pod(5), pod(6)])
    assert summary(p.actions()) == [("delete", "web-1")]


def test_deleting_set_only_reports_status() -> None:
    s = sts()
    s["metadata"]["deletionTimestamp"] = T0
    p = plan(s, [pod(0)])
    assert p.actions() == [] and p.status["replicas"] == 1


def test_status_counts() -> None:
    pods = [pod(0, "r1"), pod(1, "r2", ready=False), pod(2, "r2", deleting=True)]
    p = plan_statefulset(sts(), sts(), sts(), "r1", "r2", 4, pods, {}, REF, NOW)
    assert p.status == {
        "observedGeneration": 1,
        "currentRevision": "r1",
        "updateRevision": "r2",
        "collisionCount": 4,
        "replicas": 3,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "currentReplicas": 1,
        "updatedReplicas": 1,
    }


def test_drifted_identity_and_claim_owners_are_repaired() -> None:
    drifted = pod(0)
    del drifted["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"]
    assert summary(plan(sts(1), [drifted]).actions()) == [("update", "web-0")]
    s = sts(1)
    s["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {}}]
    s["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete", "whenScaled": "Retain"}
    with_claim = pod(0)
    with_claim["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}}]
    claims = {"data-web-0": {"metadata": {"name": "data-web-0"}}}
    assert summary(plan(s, [with_claim], claims=claims).actions()) == [("update", "web-0")]
    # Scaled-away pods get their claims' owners fixed before they are deleted.
    s["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Retain", "whenScaled": "Delete"}
    extra = pod(1)
    extra["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}}]
    claims["data-web-1"] = {"metadata": {"name": "data-web-1"}}
    p = plan(s, [with_claim, extra], claims=claims)
    assert [(stage, [summary(step) for step in steps]) for stage, steps in p.stages if steps] == [
        ("condemned_claims", [[("fix_claims", "web-1")]]),
        ("condemned", [[("delete", "web-1")]]),
    ]


# --- a whole ordered start, simulated ----------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=6), st.data())
def test_ordered_start_only_creates_after_predecessors_are_ready(n: int, data: st.DataObject) -> None:
    pods: dict[int, Obj] = {}
    for _ in range(4 * n + 4):
        p = plan(sts(n), list(pods.values()))
        creates = [a for a in p.actions() if a.kind == "create"]
        assert len(creates) <= 1
        for action in creates:
            ordinal = int(action.pod["metadata"]["name"].rsplit("-", 1)[1])
            assert all(
                o in pods and pods[o]["status"]["phase"] == "Running" and pods[o]["status"].get("conditions")
                for o in range(ordinal)
            )
            pods[ordinal] = pod(ordinal, phase="Pending", ready=False)
        for o, existing in list(pods.items()):
            if existing["status"]["phase"] == "Pending" and data.draw(st.booleans()):
                pods[o] = pod(o)
        if len(pods) == n and all(x["status"]["phase"] == "Running" for x in pods.values()):
            break
        if _ > 2 * n:
            pods = {o: pod(o) for o in pods}
    assert sorted(pods) == list(range(n))
