"""What a ResourceQuota counts, as pure functions (upstream pkg/quota/v1/evaluator/core and
k8s.io/apiserver/pkg/quota/v1/generic).

Evaluators know which quota resource names they answer for and what one object uses:
- pods: `pods` (pods that have not finished), `count/pods` (every pod), cpu/memory/
  ephemeral-storage requests (bare names too) and limits, hugepages and extended resources;
- services: `services`, `count/services`, `services.nodeports`, `services.loadbalancers`;
- persistentvolumeclaims: counts and `requests.storage`, also per storage class;
- anything else: `count/<resource>[.<group>]` (and the legacy bare names of configmaps,
  secrets, replicationcontrollers and resourcequotas).
Scopes (Terminating, NotTerminating, BestEffort, NotBestEffort, PriorityClass,
CrossNamespacePodAffinity) select pods; a scoped quota counts nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from controlplane.api.quantity import Quantity, ResourceList, add, parse_quantity
from controlplane.controllers.podutil import parse_time

__all__ = [
    "GroupResource",
    "calculate_usage",
    "evaluator_for",
    "is_best_effort",
    "pod_limits",
    "pod_requests",
    "pod_usage",
    "quota_status",
    "resources_for_quota",
]

Obj = Mapping[str, Any]
ListFunc = Callable[["GroupResource"], list[Obj] | None]

STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
_ZERO = Quantity(Fraction(0), "DecimalSI")
_ONE = Quantity(Fraction(1), "DecimalSI")


@dataclass(frozen=True)
class GroupResource:
    group: str
    resource: str

    def count_name(self) -> str:
        return f"count/{self.resource}" if not self.group else f"count/{self.resource}.{self.group}"


PODS = GroupResource("", "pods")
SERVICES = GroupResource("", "services")
PVCS = GroupResource("", "persistentvolumeclaims")
LEGACY_COUNTS = {
    "configmaps": GroupResource("", "configmaps"),
    "secrets": GroupResource("", "secrets"),
    "replicationcontrollers": GroupResource("", "replicationcontrollers"),
    "resourcequotas": GroupResource("", "resourcequotas"),
}

POD_RESOURCES = (
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
)
POD_PREFIXES = ("hugepages-", "requests.hugepages-")
SERVICE_RESOURCES = ("count/services", "services", "services.nodeports", "services.loadbalancers")
PVC_RESOURCES = ("count/persistentvolumeclaims", "persistentvolumeclaims", "requests.storage")


def _is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _is_extended_quota_name(name: str) -> bool:
    return name.startswith("requests.") and not _is_native(name)


def _is_extended(name: str) -> bool:
    return not _is_native(name) and not name.startswith("requests.")


# -- pods -----------------------------------------------------------------------------------


def _resources(container: Obj, kind: str) -> ResourceList:
    try:
        return {
            str(k): parse_quantity(v) for k, v in ((container.get("resources") or {}).get(kind) or {}).items()
        }
    except ValueError:
        return {}


def _max_into(target: ResourceList, other: Mapping[str, Quantity]) -> None:
    for name, quantity in other.items():
        if name not in target or quantity > target[name]:
            target[name] = quantity


def _pod_resources(pod: Obj, kind: str) -> ResourceList:
    """Upstream resourcehelper.PodRequests / PodLimits: the containers summed, the init containers'
    peak (sidecars run alongside), pod overhead on top."""
    spec = pod.get("spec") or {}
    total: ResourceList = {}
    for container in spec.get("containers") or []:
        total = add(total, _resources(container, kind))
    sidecars: ResourceList = {}
    init_peak: ResourceList = {}
    for container in spec.get("initContainers") or []:
        own = _resources(container, kind)
        if container.get("restartPolicy") == "Always":
            total = add(total, own)
            sidecars = add(sidecars, own)
            during = dict(sidecars)
        else:
            during = add(own, sidecars)
        _max_into(init_peak, during)
    _max_into(total, init_peak)
    pod_level = _resources(spec, kind)
    for name in ("cpu", "memory"):
        if name in pod_level:
            total[name] = pod_level[name]
    try:
        overhead = {str(k): parse_quantity(v) for k, v in (spec.get("overhead") or {}).items()}
    except ValueError:
        overhead = {}
    if kind == "requests":
        total = add(total, overhead)
    else:
        for name, quantity in overhead.items():
            if name in total:
                total[name] = total[name] + quantity
    return total


def pod_requests(pod: Obj) -> ResourceList:
    return _pod_resources(pod, "requests")


def pod_limits(pod: Obj) -> ResourceList:
    return _pod_resources(pod, "limits")


def _compute_usage(requests: Mapping[str, Quantity], limits: Mapping[str, Quantity]) -> ResourceList:
    """Upstream podComputeUsageHelper."""
    result: ResourceList = {"pods": _ONE}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            result[name] = requests[name]
            result[f"requests.{name}"] = requests[name]
        if name in limits:
            result[f"limits.{name}"] = limits[name]
    for name, quantity in requests.items():
        if name.startswith("hugepages-"):
            result[name] = quantity
            result[f"requests.{name}"] = quantity
        if _is_extended(name):
            result[f"requests.{name}"] = quantity
    return result


def quota_v1_pod(pod: Obj, now: datetime) -> bool:
    """Charged for compute: not finished, and not stuck terminating past its grace period."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    meta = pod.get("metadata") or {}
    deleted = parse_time(meta.get("deletionTimestamp"))
    grace = meta.get("deletionGracePeriodSeconds")
    return not (deleted is not None and grace is not None and now > deleted + timedelta(seconds=int(grace)))


def pod_usage(pod: Obj, now: datetime) -> ResourceList:
    result: ResourceList = {"count/pods": _ONE}
    if not quota_v1_pod(pod, now):
        return result
    return add(result, _compute_usage(pod_requests(pod), pod_limits(pod)))


def is_best_effort(pod: Obj) -> bool:
    """QoS BestEffort: no cpu or memory request or limit anywhere in the pod."""
    spec = pod.get("spec") or {}
    holders = [*(spec.get("containers") or []), *(spec.get("initContainers") or []), spec]
    for holder in holders:
        for kind in ("requests", "limits"):
            for name, quantity in _resources(holder, kind).items():
                if name in ("cpu", "memory") and quantity.sign != 0:
                    return False
    return True


def _is_terminating(pod: Obj) -> bool:
    deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    return deadline is not None and int(deadline) >= 0


def _cross_namespace_affinity(pod: Obj) -> bool:
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        section = affinity.get(kind) or {}
        terms = list(section.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        terms += [
            t.get("podAffinityTerm") or {}
            for t in section.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        ]
        if any(t.get("namespaces") or t.get("namespaceSelector") is not None for t in terms):
            return True
    return False


def _priority_matches(pod: Obj, requirement: Obj) -> bool:
    name = (pod.get("spec") or {}).get("priorityClassName") or ""
    operator = requirement.get("operator")
    values = requirement.get("values") or []
    if operator == "Exists":
        return bool(name)
    if operator == "DoesNotExist":
        return not name
    if operator == "In":
        return bool(name) and name in values
    if operator == "NotIn":
        return not name or name not in values
    return False


def pod_matches_scope(requirement: Obj, pod: Obj) -> bool:
    scope = requirement.get("scopeName")
    if scope == "Terminating":
        return _is_terminating(pod)
    if scope == "NotTerminating":
        return not _is_terminating(pod)
    if scope == "BestEffort":
        return is_best_effort(pod)
    if scope == "NotBestEffort":
        return not is_best_effort(pod)
    if scope == "PriorityClass":
        return _priority_matches(pod, requirement)
    if scope == "CrossNamespacePodAffinity":
        return _cross_namespace_affinity(pod)
    return False


# -- services and claims --------------------------------------------------------------------


def service_usage(service: Obj, _now: datetime) -> ResourceList:
    spec = service.get("spec") or {}
    ports = len(spec.get("ports") or [])
    result: ResourceList = {
        "count/services": _ONE,
        "services": _ONE,
        "services.loadbalancers": _ZERO,
        "services.nodeports": _ZERO,
    }
    if spec.get("type") == "NodePort":
        result["services.nodeports"] = Quantity.of(ports)
    elif spec.get("type") == "LoadBalancer":
        allocate = spec.get("allocateLoadBalancerNodePorts")
        result["services.nodeports"] = Quantity.of(0 if allocate is False else ports)
        result["services.loadbalancers"] = _ONE
    return result


def _storage_class(claim: Obj) -> str:
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    beta = annotations.get("volume.beta.kubernetes.io/storage-class")
    if beta is not None:
        return str(beta)
    return str((claim.get("spec") or {}).get("storageClassName") or "")


def claim_usage(claim: Obj, _now: datetime) -> ResourceList:
    result: ResourceList = {"count/persistentvolumeclaims": _ONE, "persistentvolumeclaims": _ONE}
    storage_class = _storage_class(claim)
    if storage_class:
        result[f"{storage_class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"] = _ONE
    requested = _resources(claim.get("spec") or {}, "requests").get("storage")
    try:
        allocated_raw = ((claim.get("status") or {}).get("allocatedResources") or {}).get("storage")
        allocated = parse_quantity(allocated_raw) if allocated_raw is not None else None
    except ValueError:
        allocated = None
    if allocated is not None and (requested is None or allocated > requested):
        requested = allocated
    if requested is not None:
        result["requests.storage"] = requested
        if storage_class:
            result[f"{storage_class}{STORAGE_CLASS_SUFFIX}requests.storage"] = requested
    return result


# -- evaluators -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluator:
    resource: GroupResource
    usage: Callable[[Obj, datetime], ResourceList]
    scoped: bool  # whether scopes can select these objects (only pods)

    def matching(self, names: Iterable[str]) -> list[str]:
        out = []
        for name in names:
            if self.resource == PODS:
                if name in POD_RESOURCES or name.startswith(POD_PREFIXES) or _is_extended_quota_name(name):
                    out.append(name)
            elif self.resource == SERVICES:
                if name in SERVICE_RESOURCES:
                    out.append(name)
            elif self.resource == PVCS:
                if name in PVC_RESOURCES or (
                    STORAGE_CLASS_SUFFIX in name
                    and name.endswith(("/requests.storage", "/persistentvolumeclaims"))
                ):
                    out.append(name)
            elif name == self.resource.count_name() or LEGACY_COUNTS.get(name) == self.resource:
                out.append(name)
        return out

    def matches_scope(self, requirement: Obj, obj: Obj) -> bool:
        return self.scoped and pod_matches_scope(requirement, obj)


def _count_usage(resource: GroupResource) -> Callable[[Obj, datetime], ResourceList]:
    def usage(_obj: Obj, _now: datetime) -> ResourceList:
        result: ResourceList = {resource.count_name(): _ONE}
        for legacy, target in LEGACY_COUNTS.items():
            if target == resource:
                result[legacy] = _ONE
        return result

    return usage


_BUILTIN = {
    PODS: Evaluator(PODS, pod_usage, True),
    SERVICES: Evaluator(SERVICES, service_usage, False),
    PVCS: Evaluator(PVCS, claim_usage, False),
}


def evaluator_for(resource: GroupResource) -> Evaluator:
    return _BUILTIN.get(resource) or Evaluator(resource, _count_usage(resource), False)


def _parse_count_name(name: str) -> GroupResource | None:
    if name in LEGACY_COUNTS:
        return LEGACY_COUNTS[name]
    if not name.startswith("count/"):
        return None
    resource, _, group = name[len("count/") :].partition(".")
    return GroupResource(group, resource) if resource else None


def resources_for_quota(hard_names: Iterable[str]) -> list[GroupResource]:
    """The kinds of object a quota with these hard limits has to look at."""
    found: list[GroupResource] = []
    names = list(hard_names)
    for resource in (PODS, SERVICES, PVCS):
        if _BUILTIN[resource].matching(names) and resource not in found:
            found.append(resource)
    for name in names:
        counted = _parse_count_name(name)
        if counted is not None and counted not in found:
            found.append(counted)
    return found


def _scope_requirements(quota: Obj) -> list[dict[str, Any]]:
    spec = quota.get("spec") or {}
    requirements = [{"scopeName": s, "operator": "Exists"} for s in spec.get("scopes") or []]
    requirements += list((spec.get("scopeSelector") or {}).get("matchExpressions") or [])
    return requirements


def calculate_usage(quota: Obj, list_objects: ListFunc, now: datetime) -> tuple[ResourceList, list[str]]:
    """Upstream quota.CalculateUsage: (usage of every tracked hard resource, resource names that
    could not be measured because their objects are not available)."""
    hard = parse_hard(quota)
    requirements = _scope_requirements(quota)
    usage: ResourceList = {}
    unmeasured: list[str] = []
    for resource in resources_for_quota(hard):
        evaluator = evaluator_for(resource)
        tracked = [n for n in evaluator.matching(hard) if n in hard]
        if not tracked:
            continue
        objects = list_objects(resource)
        if objects is None:
            unmeasured += tracked
            continue
        used: ResourceList = {name: _ZERO for name in tracked}
        for obj in objects:
            if all(evaluator.matches_scope(r, obj) for r in requirements):
                used = add(used, evaluator.usage(obj, now))
        usage = add(usage, used)
    return {name: q for name, q in usage.items() if name in hard}, unmeasured


def parse_hard(quota: Obj) -> ResourceList:
    out: ResourceList = {}
    for name, value in ((quota.get("spec") or {}).get("hard") or {}).items():
        try:
            out[str(name)] = parse_quantity(value)
        except ValueError:
            continue
    return out


def _parse_list(raw: Any) -> ResourceList | None:
    if raw is None:
        return None
    out: ResourceList = {}
    for name, value in (raw or {}).items():
        try:
            out[str(name)] = parse_quantity(value)
        except ValueError:
            continue
    return out


def _render(resources: Mapping[str, Quantity]) -> dict[str, str]:
    return {name: str(resources[name]) for name in sorted(resources)}


def quota_status(quota: Obj, usage: Mapping[str, Quantity]) -> tuple[dict[str, Any], bool]:
    """(the status the quota should have, whether it differs from the current one). Usage not
    measured this time keeps its previous value; only hard resources are reported."""
    hard = parse_hard(quota)
    status = quota.get("status") or {}
    old_hard = _parse_list(status.get("hard"))
    old_used = _parse_list(status.get("used"))
    used: ResourceList = dict(old_used or {})
    used.update(usage)
    used = {name: q for name, q in used.items() if name in hard}
    dirty = old_hard is None or old_used is None or old_hard != hard or old_used != used
    return {"hard": _render(hard), "used": _render(used)}, dirty
