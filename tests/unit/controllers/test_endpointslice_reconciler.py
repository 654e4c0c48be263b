"""The EndpointSlice reconciler: what it creates, and how little it churns when things change."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from controlplane.controllers.endpointslice import EndpointSliceTracker
from controlplane.controllers.endpointslice_reconciler import (
    LABEL_MANAGED_BY,
    LABEL_SERVICE_NAME,
    MANAGED_BY,
    Plan,
    reconcile,
)

NODES = {"n1": {"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "zone-a"}}}}
_names = itertools.count()


def service(*, families: list[str] | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "web",
            "namespace": "ns",
            "uid": "svc-uid",
            "labels": labels or {"tier": "front"},
        },
        "spec": {
            "selector": {"app": "web"},
            "clusterIP": "10.0.0.10",
            "ipFamilies": families or ["IPv4"],
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def pod(i: int, *, ready: bool = True, port: int = 8080, node: str = "n1") -> dict[str, Any]:
    return {
        "metadata": {"name": f"p{i}", "namespace": "ns", "uid": f"uid-{i}", "labels": {"app": "web"}},
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": "c", "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}]}
            ],
        },
        "status": {
            "podIP": f"10.1.{i // 250}.{i % 250}",
            "podIPs": [{"ip": f"10.1.{i // 250}.{i % 250}"}, {"ip": f"fd00::{i:x}"}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def apply(plan: Plan, existing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the API would hold after the plan: names assigned, updates replacing by name."""
    by_name = {s["metadata"]["name"]: s for s in existing}
    for s in plan.delete:
        by_name.pop(s["metadata"]["name"])
    for s in plan.update:
        assert s["metadata"]["name"] in by_name, "update of a slice that does not exist"
        by_name[s["metadata"]["name"]] = copy.deepcopy(s)
    for s in plan.create:
        created = copy.deepcopy(s)
        created["metadata"]["name"] = f"{s['metadata']['generateName']}{next(_names)}"
        created["metadata"]["uid"] = created["metadata"]["name"]
        by_name[created["metadata"]["name"]] = created
    return list(by_name.values())


def run(
    pods: list[dict[str, Any]], existing: list[dict[str, Any]], **kw: Any
) -> tuple[Plan, list[dict[str, Any]]]:
    svc = kw.pop("svc", None) or service()
    plan = reconcile(svc, pods, existing, NODES.get, **kw)
    return plan, apply(plan, existing)


def ready_ips(slices: list[dict[str, Any]]) -> set[str]:
    return {e["addresses"][0] for s in slices for e in s["endpoints"] if e["conditions"]["ready"]}


def test_first_sync_creates_one_labelled_owned_slice() -> None:
    plan, slices = run([pod(1), pod(2, ready=False)], [])
    assert len(plan.create) == 1 and not plan.update and not plan.delete
    s = plan.create[0]
    assert s["metadata"]["generateName"] == "web-"
    assert s["metadata"]["labels"] == {
        "tier": "front",
        LABEL_SERVICE_NAME: "web",
        LABEL_MANAGED_BY: MANAGED_BY,
    }
    assert s["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "name": "web",
            "uid": "svc-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert s["addressType"] == "IPv4"
    assert s["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    endpoint = next(e for e in s["endpoints"] if e["targetRef"]["name"] == "p2")
    assert endpoint == {
        "addresses": ["10.1.0.2"],
        "conditions": {"ready": False, "serving": False, "terminating": False},
        "targetRef": {"kind": "Pod", "namespace": "ns", "name": "p2", "uid": "uid-2"},
        "nodeName": "n1",
        "zone": "zone-a",
    }
    assert ready_ips(slices) == {"10.1.0.1"}


def test_nothing_to_do_when_nothing_changed() -> None:
    pods = [pod(i) for i in range(5)]
    _, slices = run(pods, [])
    plan, _ = run(pods, slices)
    assert plan.empty


def test_readiness_change_updates_the_slice_in_place() -> None:
    pods = [pod(i) for i in range(3)]
    _, slices = run(pods, [])
    pods[1] = pod(1, ready=False)
    plan, after = run(pods, slices)
    assert not plan.create and not plan.delete and len(plan.update) == 1
    assert plan.update[0]["metadata"]["name"] == slices[0]["metadata"]["name"]
    assert ready_ips(after) == {"10.1.0.0", "10.1.0.2"}


def test_at_most_max_endpoints_per_slice() -> None:
    plan, slices = run([pod(i) for i in range(25)], [], max_endpoints=10)
    assert sorted(len(s["endpoints"]) for s in plan.create) == [5, 10, 10]
    assert len(ready_ips(slices)) == 25


def test_removing_one_endpoint_touches_only_its_slice() -> None:
    pods = [pod(i) for i in range(25)]
    _, slices = run(pods, [], max_endpoints=10)
    gone = slices[0]["endpoints"][0]["targetRef"]["name"]
    remaining = [p for p in pods if p["metadata"]["name"] != gone]
    plan, after = run(remaining, slices, max_endpoints=10)
    assert not plan.create and not plan.delete
    assert [s["metadata"]["name"] for s in plan.update] == [slices[0]["metadata"]["name"]]
    assert len(ready_ips(after)) == 24


def test_new_endpoints_fill_the_slice_already_being_updated() -> None:
    pods = [pod(i) for i in range(25)]
    _, slices = run(pods, [], max_endpoints=10)
    full = next(s for s in slices if len(s["endpoints"]) == 10)
    gone = full["endpoints"][0]["targetRef"]["name"]
    pods = [p for p in pods if p["metadata"]["name"] != gone] + [pod(100)]
    plan, after = run(pods, slices, max_endpoints=10)
    assert not plan.create and not plan.delete
    assert [s["metadata"]["name"] for s in plan.update] == [full["metadata"]["name"]]
    assert len(ready_ips(after)) == 25


def test_additions_go_into_the_unchanged_slice_they_fill_best() -> None:
    pods = [pod(i) for i in range(25)]
    _, slices = run(pods, [], max_endpoints=10)
    partial = next(s for s in slices if len(s["endpoints"]) == 5)
    plan, after = run([*pods, pod(100), pod(101)], slices, max_endpoints=10)
    assert not plan.create and not plan.delete
    assert [s["metadata"]["name"] for s in plan.update] == [partial["metadata"]["name"]]
    assert sorted(len(s["endpoints"]) for s in after) == [7, 10, 10]


def test_no_endpoints_keeps_a_single_placeholder() -> None:
    plan, slices = run([], [])
    assert len(plan.create) == 1 and plan.create[0]["endpoints"] == [] and plan.create[0]["ports"] == []
    plan, _ = run([], slices)
    assert plan.empty


def test_emptied_slice_is_reused_for_the_placeholder_instead_of_delete_and_create() -> None:
    _, slices = run([pod(1)], [])
    plan, after = run([], slices)
    assert not plan.create and not plan.delete
    assert plan.update[0]["metadata"]["name"] == slices[0]["metadata"]["name"]
    assert after[0]["endpoints"] == [] and after[0]["ports"] == []


def test_port_change_moves_endpoints_by_reusing_the_old_slice() -> None:
    _, slices = run([pod(1)], [])
    plan, after = run([pod(1, port=9090)], slices)
    assert not plan.create and not plan.delete
    assert after[0]["ports"] == [{"name": "http", "port": 9090, "protocol": "TCP"}]


def test_dual_stack_service_gets_a_slice_per_family_and_drops_removed_families() -> None:
    plan, slices = run([pod(1)], [], svc=service(families=["IPv4", "IPv6"]))
    assert sorted(s["addressType"] for s in plan.create) == ["IPv4", "IPv6"]
    v6 = next(s for s in plan.create if s["addressType"] == "IPv6")
    assert v6["endpoints"][0]["addresses"] == ["fd00::1"]
    plan, after = run([pod(1)], slices, svc=service(families=["IPv4"]))
    assert [s["addressType"] for s in plan.delete] == ["IPv6"]
    assert [s["addressType"] for s in after] == ["IPv4"]


def test_service_label_change_updates_slice_labels() -> None:
    _, slices = run([pod(1)], [])
    plan, after = run([pod(1)], slices, svc=service(labels={"tier": "back"}))
    assert len(plan.update) == 1
    assert after[0]["metadata"]["labels"]["tier"] == "back"


def test_pod_on_a_missing_node_is_skipped_with_an_error() -> None:
    plan, slices = run([pod(1), pod(2, node="ghost")], [])
    assert plan.errors and "Node ghost Not Found" in plan.errors[0]
    assert ready_ips(slices) == {"10.1.0.1"}


def test_slices_not_owned_by_the_service_are_replaced() -> None:
    _, slices = run([pod(1)], [])
    slices[0]["metadata"]["ownerReferences"][0]["uid"] = "old-service"
    plan, after = run([pod(1)], slices)
    assert len(plan.delete) == 1 and len(plan.create) == 1
    assert after[0]["metadata"]["ownerReferences"][0]["uid"] == "svc-uid"


def slice_obj(uid: str, rv: str) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "uid": uid,
            "resourceVersion": rv,
            "labels": {LABEL_SERVICE_NAME: "web"},
        }
    }


def test_tracker_ignores_own_writes_and_spots_stale_caches() -> None:
    tracker = EndpointSliceTracker()
    assert tracker.should_sync(slice_obj("a", "5"))
    tracker.update(slice_obj("a", "5"))
    assert not tracker.should_sync(slice_obj("a", "5"))  # our own write coming back
    assert tracker.should_sync(slice_obj("a", "7"))  # somebody else's
    assert tracker.stale("ns/web", [slice_obj("a", "4")])  # older than what we wrote
    assert tracker.stale("ns/web", [])  # our slice is not in the cache yet
    assert not tracker.stale("ns/web", [slice_obj("a", "5")])
    tracker.expect_deletion(slice_obj("a", "5"))
    assert tracker.stale("ns/web", [slice_obj("a", "5")])
    assert tracker.handle_deletion(slice_obj("a", "5"))  # expected
    tracker.update(slice_obj("b", "9"))
    assert not tracker.handle_deletion(slice_obj("b", "9"))  # not ours: resync
