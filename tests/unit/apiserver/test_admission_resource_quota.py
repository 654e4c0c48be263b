"""ResourceQuota's pure parts: what objects cost and how a request is checked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.api.quantity import ResourceList, parse_quantity, pretty_print
from controlplane.api.resources import default_registry
from controlplane.apiserver.admission import Attributes
from controlplane.apiserver.admission.quota_evaluators import (
    ObjectCountEvaluator,
    PersistentVolumeClaimEvaluator,
    PodEvaluator,
    ScopeSelector,
    ServiceEvaluator,
    evaluator_for,
    object_count_name,
    quota_scope_selectors,
)
from controlplane.apiserver.admission.resource_quota import check_request, quota_matches

NOW = datetime(2026, 1, 1, tzinfo=UTC)
REGISTRY = default_registry()


def _attrs(plural: str, operation: str = "CREATE", group: str = "") -> Attributes:
    info = REGISTRY.get(group, "v1", plural)
    assert info is not None
    return Attributes(info, operation, "ns", "x")  # type: ignore[arg-type]


def _quota(name: str, hard: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"hard": hard, **spec}}


def _pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "x"}, "spec": {"containers": list(containers), **spec}}


def _ctr(
    name: str = "c", requests: dict[str, str] | None = None, limits: dict[str, str] | None = None
) -> dict[str, Any]:
    return {"name": name, "resources": {"requests": requests or {}, "limits": limits or {}}}


def _used(**values: str) -> ResourceList:
    return {k.replace("_", "."): parse_quantity(v) for k, v in values.items()}


def test_object_count_names() -> None:
    assert object_count_name("", "configmaps") == "count/configmaps"
    assert object_count_name("apps", "deployments") == "count/deployments.apps"
    assert ObjectCountEvaluator("", "secrets").names == ["count/secrets", "secrets"]
    assert ObjectCountEvaluator("apps", "deployments").names == ["count/deployments.apps"]
    assert isinstance(evaluator_for("", "pods"), PodEvaluator)
    assert isinstance(evaluator_for("", "services"), ServiceEvaluator)
    assert isinstance(evaluator_for("", "persistentvolumeclaims"), PersistentVolumeClaimEvaluator)


def test_pod_usage_counts_requests_limits_and_overhead() -> None:
    pod = _pod(
        _ctr("a", {"cpu": "250m", "memory": "64Mi"}, {"cpu": "500m", "memory": "128Mi"}),
        _ctr("b", {"cpu": "250m", "nvidia.com/gpu": "1"}),
        overhead={"cpu": "10m"},
    )
    usage = PodEvaluator().usage(pod, NOW)
    assert pretty_print(usage) == (
        "count/pods=1,cpu=510m,limits.cpu=510m,limits.memory=128Mi,memory=64Mi,pods=1,"
        "requests.cpu=510m,requests.memory=64Mi,requests.nvidia.com/gpu=1"
    )


@pytest.mark.parametrize(
    ("changes", "charged"),
    [
        ({"status": {"phase": "Succeeded"}}, False),
        ({"status": {"phase": "Running"}}, True),
        (
            {
                "metadata": {
                    "name": "x",
                    "deletionTimestamp": "2025-12-31T23:00:00Z",
                    "deletionGracePeriodSeconds": 30,
                }
            },
            False,
        ),
        (
            {
                "metadata": {
                    "name": "x",
                    "deletionTimestamp": "2026-01-01T00:00:10Z",
                    "deletionGracePeriodSeconds": 30,
                }
            },
            True,
        ),
    ],
)
def test_terminal_and_long_deleted_pods_are_not_charged(changes: dict[str, Any], charged: bool) -> None:
    pod = {**_pod(_ctr("c", {"cpu": "1"})), **changes}
    usage = PodEvaluator().usage(pod, NOW)
    assert ("pods" in usage) is charged
    assert usage["count/pods"] == parse_quantity("1")


def test_service_usage() -> None:
    ports = [{"port": 80}, {"port": 443}]
    evaluator = ServiceEvaluator()
    assert pretty_print(evaluator.usage({"spec": {"ports": ports}}, NOW)) == "count/services=1,services=1"
    assert evaluator.usage({"spec": {"type": "NodePort", "ports": ports}}, NOW)[
        "services.nodeports"
    ] == parse_quantity("2")
    lb = evaluator.usage(
        {"spec": {"type": "LoadBalancer", "ports": ports, "allocateLoadBalancerNodePorts": False}}, NOW
    )
    assert lb["services.nodeports"] == parse_quantity("0") and lb["services.loadbalancers"] == parse_quantity(
        "1"
    )


def test_claim_usage_is_charged_to_its_storage_class() -> None:
    pvc = {"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "5Gi"}}}}
    usage = PersistentVolumeClaimEvaluator().usage(pvc, NOW)
    assert pretty_print(usage) == (
        "count/persistentvolumeclaims=1,fast.storageclass.storage.k8s.io/persistentvolumeclaims=1,"
        "fast.storageclass.storage.k8s.io/requests.storage=5Gi,persistentvolumeclaims=1,requests.storage=5Gi"
    )
    assert PersistentVolumeClaimEvaluator().matching_resources(
        ["fast.storageclass.storage.k8s.io/requests.storage", "pods", "requests.storage"]
    ) == ["fast.storageclass.storage.k8s.io/requests.storage", "requests.storage"]


def test_pod_scopes() -> None:
    evaluator = PodEvaluator()
    best_effort = _pod(_ctr())
    burstable = _pod(_ctr("c", {"cpu": "100m"}), priorityClassName="high", activeDeadlineSeconds=60)
    assert evaluator.matches_scope(ScopeSelector("BestEffort"), best_effort)
    assert evaluator.matches_scope(ScopeSelector("NotBestEffort"), burstable)
    assert evaluator.matches_scope(ScopeSelector("Terminating"), burstable)
    assert evaluator.matches_scope(ScopeSelector("NotTerminating"), best_effort)
    assert evaluator.matches_scope(ScopeSelector("PriorityClass", "In", ("high",)), burstable)
    assert not evaluator.matches_scope(ScopeSelector("PriorityClass", "In", ("high",)), best_effort)
    assert evaluator.matches_scope(ScopeSelector("PriorityClass", "DoesNotExist"), best_effort)
    quota = _quota(
        "q",
        {"pods": "1"},
        scopes=["NotBestEffort"],
        scopeSelector={
            "matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]
        },
    )
    assert quota_scope_selectors(quota) == [
        ScopeSelector("NotBestEffort"),
        ScopeSelector("PriorityClass", "In", ("high",)),
    ]
    assert quota_matches(evaluator, quota, burstable)
    assert not quota_matches(evaluator, quota, best_effort)
    # Only pods fall in scopes: a scoped quota never charges other resources.
    assert not quota_matches(
        ServiceEvaluator(), _quota("s", {"services": "1"}, scopes=["BestEffort"]), {"spec": {}}
    )


def test_exceeded_quota_message() -> None:
    quota = _quota("q", {"pods": "2", "requests.cpu": "1"})
    with pytest.raises(errors.Forbidden) as info:
        check_request(
            _attrs("pods"),
            PodEvaluator(),
            [quota],
            {"q": _used(pods="2", requests_cpu="0")},
            _pod(_ctr("c", {"cpu": "1"})),
            None,
            NOW,
        )
    assert (
        info.value.message
        == 'pods "x" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2'
    )
    assert info.value.code == 403


def test_several_resources_exceeded_at_once() -> None:
    quota = _quota("compute", {"requests.cpu": "1", "requests.memory": "1Gi"})
    pod = _pod(_ctr("c", {"cpu": "600m", "memory": "800Mi"}))
    used = {"compute": _used(requests_cpu="500m", requests_memory="512Mi")}
    with pytest.raises(errors.Forbidden) as info:
        check_request(_attrs("pods"), PodEvaluator(), [quota], used, pod, None, NOW)
    assert info.value.message.endswith(
        "exceeded quota: compute, requested: requests.cpu=600m,requests.memory=800Mi, "
        "used: requests.cpu=500m,requests.memory=512Mi, limited: requests.cpu=1,requests.memory=1Gi"
    )


def test_compute_quota_requires_every_container_to_state_it() -> None:
    quota = _quota("q", {"limits.cpu": "4", "requests.memory": "1Gi", "pods": "10"})
    pod = _pod(_ctr("a", {"memory": "1Mi"}, {"cpu": "1"}), _ctr("b"), _ctr("c", {"memory": "1Mi"}))
    with pytest.raises(errors.Forbidden) as info:
        check_request(_attrs("pods"), PodEvaluator(), [quota], {}, pod, None, NOW)
    assert info.value.message == (
        'pods "x" is forbidden: failed quota: q: must specify limits.cpu for: b,c; requests.memory for: b'
    )


def test_a_request_within_quota_returns_the_new_usage() -> None:
    quota = _quota("q", {"pods": "2", "count/pods": "5", "secrets": "3"})
    charged = check_request(
        _attrs("pods"),
        PodEvaluator(),
        [quota],
        {"q": _used(pods="1", **{"count/pods": "1"})},
        _pod(_ctr()),
        None,
        NOW,
    )
    assert {k: str(v) for k, v in charged["q"].items()} == {"pods": "2", "count/pods": "2"}


def test_updates_charge_only_the_increase() -> None:
    quota = _quota("q", {"services.nodeports": "2", "services": "5"})
    old = {"spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    new = {"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}}
    used = {"q": _used(services="2", services_nodeports="1")}
    charged = check_request(_attrs("services", "UPDATE"), ServiceEvaluator(), [quota], used, new, old, NOW)
    assert {k: str(v) for k, v in charged["q"].items()} == {"services.nodeports": "2"}
    grown = {"spec": {"type": "NodePort", "ports": [{"port": p} for p in (80, 81, 82)]}}
    with pytest.raises(
        errors.Forbidden, match=r"requested: services\.nodeports=2, used: services\.nodeports=1"
    ):
        check_request(_attrs("services", "UPDATE"), ServiceEvaluator(), [quota], used, grown, old, NOW)
    # Nothing grows: nothing is charged.
    assert check_request(_attrs("services", "UPDATE"), ServiceEvaluator(), [quota], used, old, old, NOW) == {}


def test_quotas_that_limit_nothing_of_the_request_are_skipped() -> None:
    quota = _quota("q", {"secrets": "0"})
    assert check_request(_attrs("pods"), PodEvaluator(), [quota], {}, _pod(_ctr()), None, NOW) == {}


def test_negative_usage_is_refused() -> None:
    quota = _quota("q", {"requests.cpu": "1"})
    with pytest.raises(
        errors.Forbidden, match=r"quota usage is negative for resource\(s\): cpu,requests\.cpu"
    ):
        check_request(_attrs("pods"), PodEvaluator(), [quota], {}, _pod(_ctr("c", {"cpu": "-1"})), None, NOW)
