"""What a ResourceQuota counts: pod compute usage, scopes, services, claims, object counts."""

from __future__ import annotations

from typing import Any

from controlplane.controllers.resourcequota_usage import (
    GroupResource,
    calculate_usage,
    is_best_effort,
    pod_requests,
    pod_usage,
    quota_status,
    resources_for_quota,
)
from controlplane.controllers.runtime import FakeClock

NOW = FakeClock().now()


def container(
    requests: dict[str, str] | None = None, limits: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return {"name": "c", "resources": resources, **extra}


def pod(*containers: dict[str, Any], init: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": list(containers), "initContainers": init or [], **spec},
        "status": {"phase": "Running"},
    }


def rendered(usage: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in sorted(usage.items())}


def test_pod_usage_sums_containers_and_counts_the_pod() -> None:
    p = pod(
        container({"cpu": "250m", "memory": "64Mi"}, {"cpu": "500m", "memory": "128Mi"}),
        container({"cpu": "250m", "memory": "64Mi", "nvidia.com/gpu": "1"}),
    )
    assert rendered(pod_usage(p, NOW)) == {
        "count/pods": "1",
        "cpu": "500m",
        "limits.cpu": "500m",
        "limits.memory": "128Mi",
        "memory": "128Mi",
        "pods": "1",
        "requests.cpu": "500m",
        "requests.memory": "128Mi",
        "requests.nvidia.com/gpu": "1",
    }


def test_init_containers_count_at_their_peak_and_sidecars_alongside() -> None:
    p = pod(
        container({"cpu": "100m"}),
        init=[
            container({"cpu": "1"}),
            container({"cpu": "200m"}, restartPolicy="Always"),
            container({"cpu": "900m"}),
        ],
        overhead={"cpu": "10m"},
    )
    # Containers 100m + sidecar 200m = 300m; the last init runs with the sidecar: 1100m is the peak.
    assert str(pod_requests(p)["cpu"]) == "1110m"


def test_finished_and_long_terminating_pods_only_count_as_objects() -> None:
    done = pod(container({"cpu": "1"}))
    done["status"]["phase"] = "Succeeded"
    assert rendered(pod_usage(done, NOW)) == {"count/pods": "1"}
    stuck = pod(container({"cpu": "1"}))
    stuck["metadata"].update(deletionTimestamp="2025-12-31T23:00:00Z", deletionGracePeriodSeconds=30)
    assert rendered(pod_usage(stuck, NOW)) == {"count/pods": "1"}


def test_best_effort() -> None:
    assert is_best_effort(pod(container()))
    assert is_best_effort(pod(container({"nvidia.com/gpu": "1"})))
    assert not is_best_effort(pod(container({"cpu": "1"})))


def quota(hard: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "q", "namespace": "ns"}, "spec": {"hard": hard, **spec}}


def objects(**kinds: list[dict[str, Any]]) -> Any:
    table = {
        GroupResource("", "pods"): kinds.get("pods", []),
        GroupResource("", "services"): kinds.get("services", []),
        GroupResource("", "persistentvolumeclaims"): kinds.get("pvcs", []),
        GroupResource("", "configmaps"): kinds.get("configmaps", []),
        GroupResource("apps", "deployments"): kinds.get("deployments", []),
    }
    return table.get


def test_quota_usage_across_kinds() -> None:
    q = quota(
        {
            "pods": "10",
            "requests.cpu": "4",
            "services": "5",
            "services.nodeports": "5",
            "services.loadbalancers": "1",
            "configmaps": "10",
            "count/deployments.apps": "3",
            "requests.storage": "10Gi",
            "fast.storageclass.storage.k8s.io/persistentvolumeclaims": "2",
        }
    )
    services = [
        {"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}},
        {"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}},
        {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}},
    ]
    claims: list[dict[str, Any]] = [
        {"metadata": {}, "spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}}},
        {
            "metadata": {},
            "spec": {"resources": {"requests": {"storage": "2Gi"}}},
            "status": {"allocatedResources": {"storage": "3Gi"}},
        },
    ]
    listing = objects(
        pods=[pod(container({"cpu": "500m"})), pod(container({"cpu": "1"}))],
        services=services,
        pvcs=claims,
        configmaps=[{}, {}],
        deployments=[{}],
    )
    usage, unmeasured = calculate_usage(q, listing, NOW)
    assert unmeasured == []
    status, dirty = quota_status(q, usage)
    assert dirty
    assert status["used"] == {
        "configmaps": "2",
        "count/deployments.apps": "1",
        "fast.storageclass.storage.k8s.io/persistentvolumeclaims": "1",
        "pods": "2",
        "requests.cpu": "1500m",
        "requests.storage": "4Gi",
        "services": "3",
        "services.loadbalancers": "1",
        "services.nodeports": "3",
    }
    assert status["hard"]["requests.storage"] == "10Gi"
    assert {r.resource for r in resources_for_quota(q["spec"]["hard"])} == {
        "pods",
        "services",
        "persistentvolumeclaims",
        "configmaps",
        "deployments",
    }


def test_scopes_select_pods_and_nothing_else() -> None:
    long_running = pod(container({"cpu": "1"}))
    batch = pod(container(), activeDeadlineSeconds=60)
    important = pod(container({"cpu": "2"}), priorityClassName="high")
    listing = objects(pods=[long_running, batch, important], configmaps=[{}])
    usage, _ = calculate_usage(quota({"pods": "9", "configmaps": "9"}, scopes=["Terminating"]), listing, NOW)
    assert rendered(usage) == {"configmaps": "0", "pods": "1"}
    usage, _ = calculate_usage(quota({"pods": "9"}, scopes=["NotTerminating", "NotBestEffort"]), listing, NOW)
    assert rendered(usage) == {"pods": "2"}
    selector = {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}
    usage, _ = calculate_usage(quota({"requests.cpu": "9"}, scopeSelector=selector), listing, NOW)
    assert rendered(usage) == {"requests.cpu": "2"}


def test_status_mirrors_hard_and_is_only_dirty_on_change() -> None:
    q = quota({"pods": "1k", "cpu": "2000m"})
    usage, _ = calculate_usage(q, objects(), NOW)
    status, dirty = quota_status(q, usage)
    assert dirty and status == {"hard": {"cpu": "2", "pods": "1k"}, "used": {"cpu": "0", "pods": "0"}}
    q["status"] = status
    assert quota_status(q, usage) == (status, False)
    # Usage that could not be measured keeps its last value; resources no longer hard go away.
    q["spec"]["hard"] = {"pods": "1k"}
    status, dirty = quota_status(q, {})
    assert dirty and status == {"hard": {"pods": "1k"}, "used": {"pods": "0"}}


def test_unavailable_kinds_are_reported_unmeasured() -> None:
    usage, unmeasured = calculate_usage(quota({"count/widgets.example.com": "3"}), objects(), NOW)
    assert usage == {} and unmeasured == ["count/widgets.example.com"]
