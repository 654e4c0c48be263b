"""What a ResourceQuota charges (controlplane.api.quota): one object's usage, the quota resource
names each evaluator covers, scopes, and totals over a namespace."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api.quantity import (
    Quantity,
    ResourceList,
    add,
    parse_quantity,
    pretty_print,
    subtract_non_negative,
)
from controlplane.api.quota import (
    PODS,
    PVCS,
    SERVICES,
    GroupResource,
    ObjectCountEvaluator,
    PersistentVolumeClaimEvaluator,
    PodEvaluator,
    ScopeSelector,
    ServiceEvaluator,
    calculate_usage,
    evaluator_for,
    hard_limits,
    is_best_effort,
    object_count_name,
    pod_limits,
    pod_requests,
    quota_matches,
    quota_scope_selectors,
    resources_for_quota,
    usage_stats,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PODS_EVAL = PodEvaluator()
SERVICES_EVAL = ServiceEvaluator()
PVCS_EVAL = PersistentVolumeClaimEvaluator()


def ctr(
    name: str = "c",
    requests: dict[str, str] | None = None,
    limits: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": name, "resources": resources, **extra}


def pod(*containers: dict[str, Any], init: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": list(containers), "initContainers": init or [], **spec},
        "status": {"phase": "Running"},
    }


def quota(hard: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "q", "namespace": "ns"}, "spec": {"hard": hard, **spec}}


def rendered(usage: ResourceList) -> dict[str, str]:
    return {k: str(v) for k, v in sorted(usage.items())}


def q(text: str) -> Quantity:
    return parse_quantity(text)


# -- names ------------------------------------------------------------------------------------


def test_object_count_names_and_evaluators() -> None:
    assert object_count_name("", "configmaps") == "count/configmaps"
    assert object_count_name("apps", "deployments") == "count/deployments.apps"
    assert ObjectCountEvaluator(GroupResource("", "secrets")).names == ["count/secrets", "secrets"]
    assert ObjectCountEvaluator(GroupResource("apps", "deployments")).names == ["count/deployments.apps"]
    assert evaluator_for(PODS) == PODS_EVAL
    assert evaluator_for(SERVICES) == SERVICES_EVAL
    assert evaluator_for(PVCS) == PVCS_EVAL
    assert evaluator_for(GroupResource("example.com", "widgets")) == ObjectCountEvaluator(
        GroupResource("example.com", "widgets")
    )
    count = ObjectCountEvaluator(GroupResource("", "configmaps"))
    assert rendered(count.usage({}, NOW)) == {"configmaps": "1", "count/configmaps": "1"}
    assert rendered(count.usage_of(3)) == {"configmaps": "3", "count/configmaps": "3"}


def test_matching_resources() -> None:
    names = [
        "pods",
        "count/pods",
        "cpu",
        "requests.memory",
        "limits.ephemeral-storage",
        "hugepages-2Mi",
        "requests.hugepages-1Gi",
        "requests.nvidia.com/gpu",
        "nvidia.com/gpu",
        "limits.nvidia.com/gpu",
        "requests.kubernetes.io/foo",
        "services",
        "services.nodeports",
        "requests.storage",
        "gold.storageclass.storage.k8s.io/requests.storage",
        "gold.storageclass.storage.k8s.io/persistentvolumeclaims",
        "gold.storageclass.storage.k8s.io/x/requests.storage.more",
        "configmaps",
        "count/configmaps",
        "pods",
    ]
    assert PODS_EVAL.matching_resources(names) == [
        "pods",
        "count/pods",
        "cpu",
        "requests.memory",
        "limits.ephemeral-storage",
        "hugepages-2Mi",
        "requests.hugepages-1Gi",
        "requests.nvidia.com/gpu",
    ]
    assert SERVICES_EVAL.matching_resources(names) == ["services", "services.nodeports"]
    assert PVCS_EVAL.matching_resources(names) == [
        "requests.storage",
        "gold.storageclass.storage.k8s.io/requests.storage",
        "gold.storageclass.storage.k8s.io/persistentvolumeclaims",
    ]
    assert ObjectCountEvaluator(GroupResource("", "configmaps")).matching_resources(names) == [
        "configmaps",
        "count/configmaps",
    ]


def test_handles_creates_and_the_updates_that_can_change_usage() -> None:
    count = ObjectCountEvaluator(GroupResource("", "secrets"))
    assert count.handles("CREATE") and not count.handles("UPDATE")
    assert PODS_EVAL.handles("CREATE") and not PODS_EVAL.handles("UPDATE")
    assert PODS_EVAL.handles("UPDATE", "resize") and not PODS_EVAL.handles("CREATE", "binding")
    for evaluator in (SERVICES_EVAL, PVCS_EVAL):
        assert evaluator.handles("CREATE") and evaluator.handles("UPDATE")
        assert not evaluator.handles("UPDATE", "status")
    # The admission plugin ignores subresource writes: a token request is no new ServiceAccount.
    assert not ObjectCountEvaluator(GroupResource("", "serviceaccounts")).handles("CREATE", "token")


# -- pods -------------------------------------------------------------------------------------


def test_pod_usage_sums_containers_and_counts_the_pod() -> None:
    p = pod(
        ctr("a", {"cpu": "250m", "memory": "64Mi"}, {"cpu": "500m", "memory": "128Mi"}),
        ctr("b", {"cpu": "250m", "memory": "64Mi", "nvidia.com/gpu": "1", "hugepages-2Mi": "4Mi"}),
    )
    assert rendered(PODS_EVAL.usage(p, NOW)) == {
        "count/pods": "1",
        "cpu": "500m",
        "hugepages-2Mi": "4Mi",
        "limits.cpu": "500m",
        "limits.memory": "128Mi",
        "memory": "128Mi",
        "pods": "1",
        "requests.cpu": "500m",
        "requests.hugepages-2Mi": "4Mi",
        "requests.memory": "128Mi",
        "requests.nvidia.com/gpu": "1",
    }


def test_pod_usage_adds_overhead_only_to_limits_the_pod_has() -> None:
    p = pod(
        ctr("a", {"cpu": "250m", "memory": "64Mi"}, {"cpu": "500m", "memory": "0"}),
        ctr("b", {"cpu": "250m", "nvidia.com/gpu": "1"}),
        overhead={"cpu": "10m", "memory": "1Mi"},
    )
    assert pretty_print(PODS_EVAL.usage(p, NOW)) == (
        "count/pods=1,cpu=510m,limits.cpu=510m,limits.memory=0,memory=65Mi,pods=1,"
        "requests.cpu=510m,requests.memory=65Mi,requests.nvidia.com/gpu=1"
    )


def test_init_containers_count_at_their_peak_and_sidecars_alongside() -> None:
    p = pod(
        ctr("app", {"cpu": "100m"}),
        init=[
            ctr("first", {"cpu": "1"}),
            ctr("sidecar", {"cpu": "200m"}, restartPolicy="Always"),
            ctr("last", {"cpu": "900m"}),
        ],
        overhead={"cpu": "10m"},
    )
    # Containers 100m + sidecar 200m = 300m; the last init runs with the sidecar: 1100m is the peak.
    assert str(pod_requests(p)["cpu"]) == "1110m"
    assert str(pod_requests(p, exclude_overhead=True)["cpu"]) == "1100m"


def test_pod_level_resources_are_not_counted_while_the_feature_is_off() -> None:
    p = pod(ctr("c", {"cpu": "100m"}), resources={"requests": {"cpu": "2", "memory": "1Gi"}})
    assert rendered(pod_requests(p)) == {"cpu": "100m"}
    assert not is_best_effort(p)


def test_a_resized_pod_is_charged_the_larger_of_asked_and_given() -> None:
    p = pod(ctr("c", {"cpu": "500m", "memory": "64Mi"}, {"cpu": "1"}))
    p["status"]["containerStatuses"] = [
        {
            "name": "c",
            "allocatedResources": {"cpu": "700m", "memory": "32Mi"},
            "resources": {"requests": {"cpu": "600m"}, "limits": {"cpu": "2"}},
        }
    ]
    usage = PODS_EVAL.usage(p, NOW)
    assert rendered(usage)["requests.cpu"] == "700m" and rendered(usage)["requests.memory"] == "64Mi"
    assert rendered(usage)["limits.cpu"] == "2"
    # A resize the node cannot fit: only what the kubelet reports counts.
    p["status"]["conditions"] = [{"type": "PodResizePending", "reason": "Infeasible"}]
    usage = PODS_EVAL.usage(p, NOW)
    assert rendered(usage)["requests.cpu"] == "700m" and rendered(usage)["requests.memory"] == "32Mi"
    # Without reported resources the spec is all there is.
    del p["status"]["containerStatuses"][0]["resources"]
    assert rendered(PODS_EVAL.usage(p, NOW))["requests.cpu"] == "500m"


@pytest.mark.parametrize(
    ("changes", "charged"),
    [
        ({"status": {"phase": "Succeeded"}}, False),
        ({"status": {"phase": "Failed"}}, False),
        ({"status": {"phase": "Running"}}, True),
        (
            {"metadata": {"deletionTimestamp": "2025-12-31T23:00:00Z", "deletionGracePeriodSeconds": 30}},
            False,
        ),
        ({"metadata": {"deletionTimestamp": "2026-01-01T00:00:10Z", "deletionGracePeriodSeconds": 30}}, True),
        ({"metadata": {"deletionTimestamp": "2025-12-31T23:00:00Z"}}, True),
    ],
)
def test_finished_and_long_terminating_pods_only_count_as_objects(
    changes: dict[str, Any], charged: bool
) -> None:
    p = {**pod(ctr("c", {"cpu": "1"})), **changes}
    usage = PODS_EVAL.usage(p, NOW)
    assert usage["count/pods"] == q("1")
    assert ("pods" in usage) is charged and ("requests.cpu" in usage) is charged


def test_best_effort() -> None:
    assert is_best_effort(pod(ctr()))
    assert is_best_effort(pod(ctr("c", {"nvidia.com/gpu": "1"})))
    assert is_best_effort(pod(ctr("c", {"cpu": "0"}, {"memory": "0"})))
    assert not is_best_effort(pod(ctr("c", {"cpu": "1"})))
    assert not is_best_effort(pod(ctr("c"), init=[ctr("i", limits={"memory": "1Mi"})]))
    # The class the pod was given at creation wins.
    recorded = pod(ctr("c", {"cpu": "1"}))
    recorded["status"]["qosClass"] = "BestEffort"
    assert is_best_effort(recorded)


def test_pod_scopes() -> None:
    best_effort = pod(ctr())
    burstable = pod(ctr("c", {"cpu": "100m"}), priorityClassName="high", activeDeadlineSeconds=60)
    assert PODS_EVAL.matches_scope(ScopeSelector("BestEffort"), best_effort)
    assert PODS_EVAL.matches_scope(ScopeSelector("NotBestEffort"), burstable)
    assert PODS_EVAL.matches_scope(ScopeSelector("Terminating"), burstable)
    assert PODS_EVAL.matches_scope(ScopeSelector("NotTerminating"), best_effort)
    assert PODS_EVAL.matches_scope(ScopeSelector("PriorityClass", "In", ("high",)), burstable)
    assert not PODS_EVAL.matches_scope(ScopeSelector("PriorityClass", "In", ("high",)), best_effort)
    assert PODS_EVAL.matches_scope(ScopeSelector("PriorityClass", "NotIn", ("high",)), best_effort)
    assert PODS_EVAL.matches_scope(ScopeSelector("PriorityClass", "DoesNotExist"), best_effort)
    assert PODS_EVAL.matches_scope(ScopeSelector("PriorityClass"), burstable)
    assert not PODS_EVAL.matches_scope(ScopeSelector("Unknown"), burstable)
    cross = pod(
        ctr(),
        affinity={
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 1, "podAffinityTerm": {"namespaceSelector": {}, "topologyKey": "zone"}}
                ]
            }
        },
    )
    assert PODS_EVAL.matches_scope(ScopeSelector("CrossNamespacePodAffinity"), cross)
    assert not PODS_EVAL.matches_scope(ScopeSelector("CrossNamespacePodAffinity"), burstable)

    scoped = quota(
        {"pods": "1"},
        scopes=["NotBestEffort"],
        scopeSelector={
            "matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]
        },
    )
    assert quota_scope_selectors(scoped) == [
        ScopeSelector("NotBestEffort"),
        ScopeSelector("PriorityClass", "In", ("high",)),
    ]
    assert quota_matches(PODS_EVAL, scoped, burstable)
    assert not quota_matches(PODS_EVAL, scoped, best_effort)
    assert not quota_matches(PODS_EVAL, quota({"services": "1"}), burstable)
    # Only pods fall in scopes: a scoped quota never charges anything else.
    assert not quota_matches(SERVICES_EVAL, quota({"services": "1"}, scopes=["BestEffort"]), {"spec": {}})


def test_a_quota_on_cpu_or_memory_needs_every_container_to_state_it() -> None:
    p = pod(ctr("a", {"memory": "1Mi"}, {"cpu": "1"}), ctr("b"), init=[ctr("i", {"memory": "1Mi"})])
    required = ["limits.cpu", "requests.memory", "pods", "requests.nvidia.com/gpu"]
    assert PODS_EVAL.constraints(required, p) == "must specify limits.cpu for: b,i; requests.memory for: b"
    assert PODS_EVAL.constraints(["pods", "requests.storage"], p) is None
    assert SERVICES_EVAL.constraints(["services"], {}) is None


def test_extended_resources_need_a_name_quota_can_charge() -> None:
    p = pod(ctr("c", {"example.com/a/b": "1", "example.com/fpga": "2", "kubernetes.io/thing": "3"}))
    usage = rendered(PODS_EVAL.usage(p, NOW))
    assert usage.get("requests.example.com/fpga") == "2"
    assert "requests.example.com/a/b" not in usage and "requests.kubernetes.io/thing" not in usage


def test_malformed_quantities_raise() -> None:
    with pytest.raises(ValueError, match="quantities must match"):
        PODS_EVAL.usage(pod(ctr("c", {"cpu": "lots"})), NOW)


# -- services and claims ----------------------------------------------------------------------


def test_service_usage() -> None:
    ports = [{"port": 80}, {"port": 443, "nodePort": 30443}]
    assert rendered(SERVICES_EVAL.usage({"spec": {"ports": ports}}, NOW)) == {
        "count/services": "1",
        "services": "1",
        "services.loadbalancers": "0",
        "services.nodeports": "0",
    }
    node_port = SERVICES_EVAL.usage({"spec": {"type": "NodePort", "ports": ports}}, NOW)
    assert node_port["services.nodeports"] == q("2") and node_port["services.loadbalancers"] == q("0")
    lb = SERVICES_EVAL.usage({"spec": {"type": "LoadBalancer", "ports": ports}}, NOW)
    assert lb["services.nodeports"] == q("2") and lb["services.loadbalancers"] == q("1")
    # No node ports allocated for the balancer: only the ones asked for by number count.
    lb = SERVICES_EVAL.usage(
        {"spec": {"type": "LoadBalancer", "ports": ports, "allocateLoadBalancerNodePorts": False}}, NOW
    )
    assert lb["services.nodeports"] == q("1") and lb["services.loadbalancers"] == q("1")


def test_claim_usage_is_charged_to_its_storage_class() -> None:
    claim = {"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "5Gi"}}}}
    assert pretty_print(PVCS_EVAL.usage(claim, NOW)) == (
        "count/persistentvolumeclaims=1,fast.storageclass.storage.k8s.io/persistentvolumeclaims=1,"
        "fast.storageclass.storage.k8s.io/requests.storage=5Gi,persistentvolumeclaims=1,requests.storage=5Gi"
    )
    # The beta annotation wins over the field, even when it names no class.
    claim["metadata"] = {"annotations": {"volume.beta.kubernetes.io/storage-class": ""}}
    assert rendered(PVCS_EVAL.usage(claim, NOW)) == {
        "count/persistentvolumeclaims": "1",
        "persistentvolumeclaims": "1",
        "requests.storage": "5Gi",
    }


def test_claim_storage_is_the_larger_of_requested_and_allocated_in_whole_bytes() -> None:
    def storage(spec: dict[str, Any], status: dict[str, Any] | None = None) -> str | None:
        usage = rendered(PVCS_EVAL.usage({"spec": {"resources": spec}, "status": status or {}}, NOW))
        return usage.get("requests.storage")

    assert storage({"requests": {"storage": "2Gi"}}, {"allocatedResources": {"storage": "3Gi"}}) == "3Gi"
    assert storage({"requests": {"storage": "3Gi"}}, {"allocatedResources": {"storage": "2Gi"}}) == "3Gi"
    assert storage({}, {"allocatedResources": {"storage": "3Gi"}}) is None
    assert storage({"requests": {"storage": "1500m"}}) == "2"


# -- totals -----------------------------------------------------------------------------------


def objects(**kinds: list[dict[str, Any]]) -> Any:
    table: dict[GroupResource, list[dict[str, Any]]] = {
        PODS: kinds.get("pods", []),
        SERVICES: kinds.get("services", []),
        PVCS: kinds.get("pvcs", []),
        GroupResource("", "configmaps"): kinds.get("configmaps", []),
        GroupResource("apps", "deployments"): kinds.get("deployments", []),
    }
    return table.get


def test_quota_usage_across_kinds() -> None:
    hard = {
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
        pods=[pod(ctr("c", {"cpu": "500m"})), pod(ctr("c", {"cpu": "1"}))],
        services=services,
        pvcs=claims,
        configmaps=[{}, {}],
        deployments=[{}],
    )
    usage, unmeasured = calculate_usage(quota(hard), listing, NOW)
    assert unmeasured == []
    assert rendered(usage) == {
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
    assert set(resources_for_quota(hard)) == {
        PODS,
        SERVICES,
        PVCS,
        GroupResource("", "configmaps"),
        GroupResource("apps", "deployments"),
    }


def test_scopes_select_pods_and_nothing_else() -> None:
    long_running = pod(ctr("c", {"cpu": "1"}))
    batch = pod(ctr(), activeDeadlineSeconds=60)
    important = pod(ctr("c", {"cpu": "2"}), priorityClassName="high")
    listing = objects(pods=[long_running, batch, important], configmaps=[{}])
    usage, _ = calculate_usage(quota({"pods": "9", "configmaps": "9"}, scopes=["Terminating"]), listing, NOW)
    assert rendered(usage) == {"configmaps": "0", "pods": "1"}
    usage, _ = calculate_usage(quota({"pods": "9"}, scopes=["NotTerminating", "NotBestEffort"]), listing, NOW)
    assert rendered(usage) == {"pods": "2"}
    selector = {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}
    usage, _ = calculate_usage(quota({"requests.cpu": "9"}, scopeSelector=selector), listing, NOW)
    assert rendered(usage) == {"requests.cpu": "2"}


def test_unavailable_kinds_are_reported_unmeasured() -> None:
    usage, unmeasured = calculate_usage(
        quota({"count/widgets.example.com": "3", "pods": "1"}), objects(), NOW
    )
    assert rendered(usage) == {"pods": "0"} and unmeasured == ["count/widgets.example.com"]


def test_usage_stats_counts_from_zero_and_skips_what_cannot_be_measured() -> None:
    pods = [pod(ctr("c", {"cpu": "1"})), pod(ctr("c", {"cpu": "many"})), pod(ctr("c", {"cpu": "250m"}))]
    used = usage_stats(PODS_EVAL, pods, ["requests.cpu", "requests.memory"], [], NOW)
    assert rendered(used)["requests.cpu"] == "1250m" and rendered(used)["requests.memory"] == "0"


def test_hard_limits_leave_out_malformed_entries() -> None:
    assert rendered(hard_limits(quota({"pods": "1k", "cpu": "lots"}))) == {"pods": "1k"}
    assert hard_limits({"spec": {}}) == {}


# -- properties -------------------------------------------------------------------------------

_NAMES = ("cpu", "memory", "ephemeral-storage", "hugepages-2Mi", "example.com/gpu")
_SUFFIXES = ("", "m", "k", "Ki", "Mi", "Gi")

quantities = st.builds(lambda n, suffix: f"{n}{suffix}", st.integers(0, 10_000), st.sampled_from(_SUFFIXES))
resource_maps = st.dictionaries(st.sampled_from(_NAMES), quantities, max_size=len(_NAMES))
containers = st.builds(
    lambda requests, limits: {"name": "c", "resources": {"requests": requests, "limits": limits}},
    resource_maps,
    resource_maps,
)
resource_lists = st.dictionaries(
    st.sampled_from(("pods", "requests.cpu", "limits.memory", "count/secrets", "services")),
    st.builds(lambda n, d: Quantity(Fraction(n, d)), st.integers(0, 10**6), st.sampled_from((1, 1000, 1024))),
)


def _with_zeros(usage: ResourceList, names: Sequence[str]) -> ResourceList:
    return {**dict.fromkeys(names, Quantity(Fraction(0))), **usage}


@settings(max_examples=60, deadline=None)
@given(st.lists(containers, max_size=4), st.lists(containers, max_size=4))
def test_pod_requests_and_limits_are_additive_over_containers(
    first: list[dict[str, Any]], second: list[dict[str, Any]]
) -> None:
    together = pod(*first, *second)
    for measure in (pod_requests, pod_limits):
        assert measure(together) == add(measure(pod(*first)), measure(pod(*second)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(containers, min_size=1, max_size=3), max_size=5), st.integers(0, 5))
def test_namespace_usage_is_the_sum_of_each_objects_usage(
    groups: list[list[dict[str, Any]]], cut: int
) -> None:
    pods = [pod(*group) for group in groups]
    tracked = PODS_EVAL.matching_resources(
        ["pods", "count/pods", "cpu", "requests.memory", "limits.cpu", "requests.example.com/gpu"]
    )
    whole = usage_stats(PODS_EVAL, pods, tracked, [], NOW)
    parts = add(
        usage_stats(PODS_EVAL, pods[:cut], tracked, [], NOW),
        usage_stats(PODS_EVAL, pods[cut:], tracked, [], NOW),
    )
    assert whole == parts
    expected: ResourceList = {}
    for p in pods:
        expected = add(expected, PODS_EVAL.usage(p, NOW))
    assert whole == _with_zeros(expected, tracked)
    # Order does not matter either.
    assert usage_stats(PODS_EVAL, list(reversed(pods)), tracked, [], NOW) == whole


@settings(max_examples=100, deadline=None)
@given(resource_lists, resource_lists, resource_lists)
def test_adding_usage_commutes_and_associates(a: ResourceList, b: ResourceList, c: ResourceList) -> None:
    assert add(a, b) == add(b, a)
    assert add(add(a, b), c) == add(a, add(b, c))
    assert add(a, {}) == a


@settings(max_examples=100, deadline=None)
@given(resource_lists, resource_lists)
def test_subtraction_inverts_addition(a: ResourceList, b: ResourceList) -> None:
    # What b-only names are left with is zero, as upstream's SubtractWithNonNegativeResult does.
    assert subtract_non_negative(add(a, b), b) == _with_zeros(a, list(b))
    assert all(v.sign >= 0 for v in subtract_non_negative(a, b).values())


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 10**12), st.sampled_from(("", "m", "k", "Mi")), st.integers(0, 10**12))
def test_claims_are_charged_whole_bytes_never_less_than_asked(
    amount: int, suffix: str, allocated: int
) -> None:
    requested = q(f"{amount}{suffix}")
    claim = {
        "spec": {"resources": {"requests": {"storage": f"{amount}{suffix}"}}},
        "status": {"allocatedResources": {"storage": str(allocated)}},
    }
    charged = PVCS_EVAL.usage(claim, NOW)["requests.storage"]
    assert charged.value.denominator == 1
    assert charged >= requested and charged.value >= allocated
    assert charged.value - max(requested.value, Fraction(allocated)) < 1
