"""The Endpoints a Service should have: subsets grouped by resolved ports, readiness, truncation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from controlplane.controllers.endpoints_subsets import (
    MAX_CAPACITY,
    capacity_annotation_set_correctly,
    desired_subsets,
    normalize_subsets,
    repack_subsets,
    truncate,
)
from controlplane.controllers.endpointslice_util import (
    TriggerTimeTracker,
    find_port,
    rfc3339nano,
    services_to_update_on_pod_change,
)


def service(
    *, ports: list[dict[str, Any]] | None = None, publish: bool = False, cluster_ip: str = "10.0.0.10"
) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "ns", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {
            "selector": {"app": "web"},
            "clusterIP": cluster_ip,
            "ipFamilies": ["IPv4"],
            "publishNotReadyAddresses": publish,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
            if ports is None
            else ports,
        },
    }


def pod(
    name: str,
    ip: str,
    *,
    ready: bool = True,
    http_port: int = 8080,
    node: str = "n1",
    deleting: bool = False,
    phase: str = "Running",
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": "c", "ports": [{"name": "http", "containerPort": http_port, "protocol": "TCP"}]}
            ],
        },
        "status": {
            "phase": phase,
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "lastTransitionTime": "2026-01-01T00:01:00Z",
                }
            ],
        },
    }


def ips(subset: dict[str, Any], field: str = "addresses") -> list[str]:
    return [a["ip"] for a in subset.get(field) or []]


def test_ready_and_not_ready_pods_share_a_subset() -> None:
    subsets, ready, not_ready = desired_subsets(
        service(), [pod("a", "10.1.0.2"), pod("b", "10.1.0.1", ready=False)]
    )
    assert (ready, not_ready) == (1, 1)
    assert len(subsets) == 1
    assert ips(subsets[0]) == ["10.1.0.2"]
    assert ips(subsets[0], "notReadyAddresses") == ["10.1.0.1"]
    assert subsets[0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    address = subsets[0]["addresses"][0]
    assert address["nodeName"] == "n1"
    assert address["targetRef"] == {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"}


def test_pods_whose_named_port_resolves_differently_get_their_own_subsets() -> None:
    subsets, _, _ = desired_subsets(
        service(),
        [pod("a", "10.1.0.1", http_port=8080), pod("b", "10.1.0.2", http_port=9090), pod("c", "10.1.0.3")],
    )
    by_port = {s["ports"][0]["port"]: ips(s) for s in subsets}
    assert by_port == {8080: ["10.1.0.1", "10.1.0.3"], 9090: ["10.1.0.2"]}


def test_addresses_serving_the_same_ports_are_packed_together() -> None:
    two_ports = [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
        {"name": "metrics", "port": 9100, "targetPort": 9100, "protocol": "TCP"},
    ]
    subsets, ready, _ = desired_subsets(
        service(ports=two_ports), [pod("a", "10.1.0.1"), pod("b", "10.1.0.2")]
    )
    assert ready == 4  # one per (pod, port), as upstream counts
    assert len(subsets) == 1
    assert sorted(p["port"] for p in subsets[0]["ports"]) == [8080, 9100]
    assert ips(subsets[0]) == ["10.1.0.1", "10.1.0.2"]


def test_not_ready_on_one_port_is_not_ready_everywhere() -> None:
    port_a = {"port": 80, "protocol": "TCP"}
    address = {"ip": "10.1.0.1", "targetRef": {"uid": "u"}}
    repacked = repack_subsets(
        [{"addresses": [address], "ports": [port_a]}, {"notReadyAddresses": [address], "ports": [port_a]}]
    )
    assert repacked == [{"notReadyAddresses": [address], "ports": [port_a]}]


def test_publish_not_ready_addresses_makes_everything_ready_even_terminating() -> None:
    subsets, ready, not_ready = desired_subsets(
        service(publish=True), [pod("a", "10.1.0.1", ready=False), pod("b", "10.1.0.2", deleting=True)]
    )
    assert (ready, not_ready) == (2, 0)
    assert ips(subsets[0]) == ["10.1.0.1", "10.1.0.2"]


def test_terminating_finished_and_ipless_pods_are_left_out() -> None:
    no_ip = pod("c", "")
    no_ip["status"]["podIPs"] = []
    subsets, ready, not_ready = desired_subsets(
        service(), [pod("a", "10.1.0.1", deleting=True), pod("b", "10.1.0.2", phase="Succeeded"), no_ip]
    )
    assert (subsets, ready, not_ready) == ([], 0, 0)


def test_headless_service_without_ports_keeps_its_addresses() -> None:
    subsets, ready, _ = desired_subsets(service(ports=[], cluster_ip="None"), [pod("a", "10.1.0.1")])
    assert ready == 1
    assert subsets == [{"addresses": [subsets[0]["addresses"][0]]}]


def test_hostname_is_set_for_pods_in_the_service_subdomain() -> None:
    p = pod("a", "10.1.0.1")
    p["spec"].update(hostname="web-0", subdomain="web")
    other = pod("b", "10.1.0.2")
    other["spec"].update(hostname="x", subdomain="elsewhere")
    subsets, _, _ = desired_subsets(service(), [p, other])
    hostnames = {a["ip"]: a.get("hostname") for a in subsets[0]["addresses"]}
    assert hostnames == {"10.1.0.1": "web-0", "10.1.0.2": None}


def test_find_port_by_number_by_name_and_by_sidecar() -> None:
    p = pod("a", "10.1.0.1")
    p["spec"]["initContainers"] = [
        {"name": "side", "restartPolicy": "Always", "ports": [{"name": "side", "containerPort": 7000}]}
    ]
    assert find_port(p, {"port": 80, "targetPort": 8081}) == 8081
    assert find_port(p, {"port": 80, "targetPort": "http"}) == 8080
    assert find_port(p, {"port": 80, "targetPort": "side"}) == 7000
    assert find_port(p, {"port": 80, "targetPort": "http", "protocol": "UDP"}) is None
    assert find_port(p, {"port": 80, "targetPort": "nope"}) is None


def test_truncation_keeps_ready_first_and_shares_by_proportion() -> None:
    def addrs(prefix: str, n: int) -> list[dict[str, Any]]:
        return [{"ip": f"{prefix}.{i // 250}.{i % 250}"} for i in range(n)]

    subsets = [
        {"addresses": addrs("10.1", 600), "notReadyAddresses": addrs("10.2", 100)},
        {"addresses": addrs("10.3", 300), "notReadyAddresses": addrs("10.4", 100)},
    ]
    assert truncate(subsets)
    ready = [len(s.get("addresses") or []) for s in subsets]
    not_ready = [len(s.get("notReadyAddresses") or []) for s in subsets]
    assert ready == [600, 300]
    assert sum(not_ready) == 100
    assert not_ready == [50, 50]
    assert not capacity_annotation_set_correctly({}, [{"addresses": addrs("10.5", MAX_CAPACITY + 1)}])


@given(st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=4))
def test_truncation_never_exceeds_capacity(sizes: list[int]) -> None:
    subsets = [
        {"addresses": [{"ip": f"10.{j}.{i // 250}.{i % 250}"} for i in range(n)]} for j, n in enumerate(sizes)
    ]
    cut = truncate(subsets)
    total = sum(len(s.get("addresses") or []) for s in subsets)
    assert cut == (sum(sizes) > MAX_CAPACITY)
    assert total == min(sum(sizes), MAX_CAPACITY)


def test_normalize_ignores_empty_lists_and_target_resource_versions() -> None:
    ours = [{"addresses": [{"ip": "1.2.3.4", "targetRef": {"kind": "Pod", "name": "a", "uid": "u"}}]}]
    stored = [
        {
            "addresses": [
                {
                    "ip": "1.2.3.4",
                    "targetRef": {"kind": "Pod", "name": "a", "uid": "u", "resourceVersion": "9"},
                }
            ],
            "notReadyAddresses": [],
        }
    ]
    assert normalize_subsets(ours) == normalize_subsets(stored)


def test_trigger_time_is_creation_first_then_the_earliest_new_ready_transition() -> None:
    tracker = TriggerTimeTracker()
    svc = service()
    a, b = pod("a", "10.1.0.1"), pod("b", "10.1.0.2")
    assert tracker.compute(svc, [a, b]) == datetime(2026, 1, 1, tzinfo=UTC)
    assert tracker.compute(svc, [a, b]) is None  # nothing changed since
    b["status"]["conditions"][0]["lastTransitionTime"] = "2026-01-01T00:05:00Z"
    assert tracker.compute(svc, [a, b]) == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert rfc3339nano(datetime(2026, 1, 1, 0, 5, 0, 120000, tzinfo=UTC)) == "2026-01-01T00:05:00.12Z"


def test_only_pod_changes_that_matter_enqueue_services() -> None:
    svc = service()
    old = pod("a", "10.1.0.1")
    new = pod("a", "10.1.0.1")
    old["metadata"]["resourceVersion"], new["metadata"]["resourceVersion"] = "1", "2"
    assert services_to_update_on_pod_change([svc], old, new) == set()
    new["status"]["conditions"][0]["status"] = "False"
    assert services_to_update_on_pod_change([svc], old, new) == {"ns/web"}
    relabelled = pod("a", "10.1.0.1")
    relabelled["metadata"].update(resourceVersion="3", labels={"app": "other"})
    assert services_to_update_on_pod_change([svc], old, relabelled) == {"ns/web"}
