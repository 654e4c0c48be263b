"""The ResourceQuota controller's own pure parts: the status it writes and which object changes
make it recompute (what objects charge is controlplane.api.quota, tested in tests/unit/api)."""

from __future__ import annotations

from typing import Any

from controlplane.api.quota import PODS, SERVICES, GroupResource, calculate_usage, evaluator_for
from controlplane.controllers.resourcequota import _usage_key
from controlplane.controllers.resourcequota_usage import quota_status
from controlplane.controllers.runtime import FakeClock

NOW = FakeClock().now()


def quota(hard: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "q", "namespace": "ns"}, "spec": {"hard": hard, **spec}}


def pod(cpu: str = "1", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}], **spec},
        "status": {"phase": "Running"},
    }


def nothing(_: GroupResource) -> list[dict[str, Any]]:
    return []


def test_status_mirrors_hard_and_is_only_dirty_on_change() -> None:
    q = quota({"pods": "1k", "cpu": "2000m"})
    usage, _ = calculate_usage(q, nothing, NOW)
    status, dirty = quota_status(q, usage)
    assert dirty and status == {"hard": {"cpu": "2", "pods": "1k"}, "used": {"cpu": "0", "pods": "0"}}
    q["status"] = status
    assert quota_status(q, usage) == (status, False)
    # Usage that could not be measured keeps its last value; resources no longer hard go away.
    q["spec"]["hard"] = {"pods": "1k"}
    status, dirty = quota_status(q, {})
    assert dirty and status == {"hard": {"pods": "1k"}, "used": {"pods": "0"}}


def test_status_of_a_quota_across_kinds() -> None:
    q = quota({"pods": "10", "requests.cpu": "4", "count/deployments.apps": "3"})
    listing: dict[GroupResource, list[dict[str, Any]]] = {
        PODS: [pod("500m"), pod("1")],
        GroupResource("apps", "deployments"): [{}],
    }
    usage, unmeasured = calculate_usage(q, listing.get, NOW)
    status, dirty = quota_status(q, usage)
    assert dirty and unmeasured == []
    assert status["used"] == {"count/deployments.apps": "1", "pods": "2", "requests.cpu": "1500m"}
    assert status["hard"] == {"count/deployments.apps": "3", "pods": "10", "requests.cpu": "4"}


def test_only_changes_to_what_an_object_charges_or_its_scopes_matter() -> None:
    pods = evaluator_for(PODS)
    running = pod()
    assert _usage_key(pods, running, NOW) == _usage_key(
        pods, {**running, "metadata": {"labels": {"a": "b"}}}, NOW
    )
    assert _usage_key(pods, running, NOW) != _usage_key(
        pods, {**running, "status": {"phase": "Succeeded"}}, NOW
    )
    assert _usage_key(pods, running, NOW) != _usage_key(pods, pod("2"), NOW)
    assert _usage_key(pods, running, NOW) != _usage_key(pods, pod(activeDeadlineSeconds=5), NOW)
    services = evaluator_for(SERVICES)
    cluster_ip = {"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}
    node_port = {"spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    assert _usage_key(services, cluster_ip, NOW) != _usage_key(services, node_port, NOW)
    assert _usage_key(services, cluster_ip, NOW) == _usage_key(
        services, {"spec": {"type": "ClusterIP", "ports": [{"port": 81}]}}, NOW
    )
