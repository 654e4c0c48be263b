"""The conditions a terminating namespace reports, worded as upstream words them."""

from __future__ import annotations

from typing import Any

from controlplane.controllers.namespace import estimate_pod_termination
from controlplane.controllers.namespace_conditions import (
    CONDITION_TYPES,
    ConditionUpdater,
    GroupVersionResource,
    RemainingContent,
)


def by_type(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_all_is_well_sets_every_condition_false() -> None:
    status: dict[str, Any] = {"phase": "Terminating"}
    assert ConditionUpdater(now="T1").apply(status)
    conditions = by_type(status)
    assert list(conditions) == list(CONDITION_TYPES)
    assert conditions["NamespaceContentRemaining"] == {
        "type": "NamespaceContentRemaining",
        "status": "False",
        "lastTransitionTime": "T1",
        "reason": "ContentRemoved",
        "message": "All content successfully removed",
    }
    assert not ConditionUpdater(now="T2").apply(status), "nothing changed, nothing to write"


def test_remaining_content_and_failures_are_reported() -> None:
    status: dict[str, Any] = {}
    ConditionUpdater(now="T1").apply(status)
    updater = ConditionUpdater(now="T2")
    updater.discovery_failed(
        {"metrics.k8s.io/v1beta1": "the server is currently unable to handle the request"}
    )
    updater.delete_content_failed(
        "unexpected items still remain in namespace: x for gvr: {apps v1 deployments}"
    )
    updater.content_totals(
        RemainingContent(
            by_resource={
                GroupVersionResource("", "v1", "pods"): 2,
                GroupVersionResource("apps", "v1", "deployments"): 1,
            },
            by_finalizer={"example.com/hold": 1},
        )
    )
    assert updater.apply(status)
    c = by_type(status)
    assert c["NamespaceDeletionDiscoveryFailure"]["status"] == "True"
    assert c["NamespaceDeletionDiscoveryFailure"]["reason"] == "DiscoveryFailed"
    assert c["NamespaceDeletionDiscoveryFailure"]["message"] == (
        "Discovery failed for some groups, 1 failing: unable to retrieve the complete list of server APIs: "
        "metrics.k8s.io/v1beta1: the server is currently unable to handle the request"
    )
    assert c["NamespaceDeletionDiscoveryFailure"]["lastTransitionTime"] == "T2"
    assert c["NamespaceContentRemaining"]["message"] == (
        "Some resources are remaining: deployments.apps has 1 resource instances, pods. has 2 resource instances"
    )
    assert c["NamespaceFinalizersRemaining"]["message"] == (
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
    )
    assert c["NamespaceDeletionContentFailure"]["reason"] == "ContentDeletionFailed"
    assert c["NamespaceDeletionContentFailure"]["message"].startswith(
        "Failed to delete all resource types, 1 remaining: "
    )
    assert c["NamespaceDeletionGroupVersionParsingFailure"]["status"] == "False"
    assert str(GroupVersionResource("", "v1", "pods")) == "{ v1 pods}"


def test_pod_termination_estimate_ignores_finished_pods() -> None:
    pods: list[dict[str, Any]] = [
        {"spec": {"terminationGracePeriodSeconds": 30}, "status": {"phase": "Running"}},
        {"spec": {"terminationGracePeriodSeconds": 90}, "status": {"phase": "Succeeded"}},
        {"spec": {}, "status": {"phase": "Pending"}},
    ]
    assert estimate_pod_termination(pods) == 30
    assert estimate_pod_termination([]) == 0
