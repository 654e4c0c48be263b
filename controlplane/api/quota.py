"""What a ResourceQuota charges: upstream's quota evaluators (k8s.io/kubernetes/pkg/quota/v1/
evaluator/core and k8s.io/apiserver/pkg/quota/v1/generic), as pure functions of objects.

The one implementation both sides use: the ResourceQuota admission plugin charges a write before it
lands, the ResourceQuota controller recomputes `status.used` from what is stored. Each evaluator
says which requests it handles, which quota resource names it covers, which quota scopes an
object falls in, what one object uses and which constraints it must meet:
- pods: `pods` (pods not finished), `count/pods` (every pod), cpu/memory/ephemeral-storage
  requests (the bare names are aliases of `requests.*`) and limits, hugepages and extended
  resources; the only kind quota scopes select;
- services: `services`, `count/services`, `services.nodeports`, `services.loadbalancers`;
- persistentvolumeclaims: counts and `requests.storage`, also per storage class;
- anything else: `count/<resource>[.<group>]` (and the legacy bare names of configmaps, secrets,
  replicationcontrollers and resourcequotas).

Feature gates are those of v1.33 by default: InPlacePodVerticalScaling on (a resized pod is
charged the larger of what it asks for and what it was given), PodLevelResources,
VolumeAttributesClass and DynamicResourceAllocation off. Malformed quantities raise ValueError.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any, Protocol

from controlplane.api.names import is_qualified_name
from controlplane.api.quantity import Quantity, ResourceList, add, mask, parse_quantity, parse_resource_list

__all__ = [
    "LEGACY_COUNT_ALIASES",
    "PODS",
    "PVCS",
    "SERVICES",
    "STORAGE_CLASS_SUFFIX",
    "Evaluator",
    "GroupResource",
    "ObjectCountEvaluator",
    "PersistentVolumeClaimEvaluator",
    "PodEvaluator",
    "ScopeSelector",
    "ServiceEvaluator",
    "calculate_usage",
    "container_resources",
    "evaluator_for",
    "hard_limits",
    "is_best_effort",
    "object_count_name",
    "pod_limits",
    "pod_requests",
    "quota_matches",
    "quota_scope_selectors",
    "quota_v1_pod",
    "resources_for_quota",
    "usage_stats",
]

Obj = Mapping[str, Any]
# What objects of a kind exist in the quota's namespace; None when they cannot be listed.
ListFunc = Callable[["GroupResource"], Sequence[Obj] | None]

STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
_ZERO = Quantity(Fraction(0), "DecimalSI")
_ONE = Quantity(Fraction(1), "DecimalSI")


@dataclass(frozen=True)
class GroupResource:
    group: str
    resource: str

    def count_name(self) -> str:
        return object_count_name(self.group, self.resource)


def object_count_name(group: str, resource: str) -> str:
    """generic.ObjectCountQuotaResourceNameFor: `count/pods`, `count/deployments.apps`."""
    return f"count/{resource}.{group}" if group else f"count/{resource}"


PODS = GroupResource("", "pods")
SERVICES = GroupResource("", "services")
PVCS = GroupResource("", "persistentvolumeclaims")
# core's legacyObjectCountAliases: the names simple object counts were quota'd by before count/.
LEGACY_COUNT_ALIASES = {
    GroupResource("", "configmaps"): "configmaps",
    GroupResource("", "resourcequotas"): "resourcequotas",
    GroupResource("", "replicationcontrollers"): "replicationcontrollers",
    GroupResource("", "secrets"): "secrets",
}
_ALIASED = {alias: resource for resource, alias in LEGACY_COUNT_ALIASES.items()}


# -- quotas -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScopeSelector:
    """One ScopedResourceSelectorRequirement; `spec.scopes` entries become Exists requirements."""

    scope: str
    operator: str = "Exists"
    values: tuple[str, ...] = ()


def quota_scope_selectors(quota: Obj) -> list[ScopeSelector]:
    """getScopeSelectorsFromQuota: the quota's scopes, then its scopeSelector's expressions."""
    spec = quota.get("spec") or {}
    out = [ScopeSelector(str(scope)) for scope in spec.get("scopes") or []]
    for expr in (spec.get("scopeSelector") or {}).get("matchExpressions") or []:
        if isinstance(expr, Mapping):
            out.append(
                ScopeSelector(
                    str(expr.get("scopeName", "")),
                    str(expr.get("operator", "")),
                    tuple(str(v) for v in expr.get("values") or []),
                )
            )
    return out


def _hard_names(quota: Obj) -> list[str]:
    hard = (quota.get("spec") or {}).get("hard")
    return [str(name) for name in hard] if isinstance(hard, Mapping) else []


def hard_limits(quota: Obj) -> ResourceList:
    """`spec.hard` as quantities; a malformed entry (never stored, validation refuses it) is left out."""
    hard = (quota.get("spec") or {}).get("hard")
    out: ResourceList = {}
    for name, value in hard.items() if isinstance(hard, Mapping) else ():
        try:
            out[str(name)] = parse_quantity(value)
        except ValueError:
            continue
    return out


# -- evaluators -------------------------------------------------------------------------------


class Evaluator(Protocol):
    @property
    def resource(self) -> GroupResource: ...

    def handles(self, operation: str, subresource: str = "") -> bool:
        """Whether a write with this operation on this subresource can change what is charged.
        The admission plugin ignores subresources but for a pod's resize, as upstream does."""

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        """The quota resource names among `names` this evaluator charges."""

    def matches_scope(self, selector: ScopeSelector, obj: Obj) -> bool: ...

    def constraints(self, required: Iterable[str], obj: Obj) -> str | None:
        """Why `obj` may not be charged to a quota limiting `required`, or None."""

    def usage(self, obj: Obj, now: datetime) -> ResourceList: ...


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class ObjectCountEvaluator:
    """generic.objectCountEvaluator: one of each of its names per object; no scope selects it."""

    resource: GroupResource

    @property
    def names(self) -> list[str]:
        alias = LEGACY_COUNT_ALIASES.get(self.resource)
        return [self.resource.count_name(), *([alias] if alias else [])]

    def handles(self, operation: str, subresource: str = "") -> bool:
        return operation == "CREATE" and not subresource

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        own = self.names
        return [n for n in _unique(names) if n in own]

    def matches_scope(self, selector: ScopeSelector, obj: Obj) -> bool:
        return False  # generic.MatchesNoScopeFunc

    def constraints(self, required: Iterable[str], obj: Obj) -> str | None:
        return None

    def usage_of(self, count: int) -> ResourceList:
        """What `count` objects use: each name, `count` times."""
        return dict.fromkeys(self.names, Quantity.of(count))

    def usage(self, obj: Obj, now: datetime) -> ResourceList:
        return self.usage_of(1)


# -- pods: requests and limits ----------------------------------------------------------------


def container_resources(container: Obj) -> tuple[ResourceList, ResourceList]:
    """A container's (requests, limits)."""
    resources = container.get("resources")
    if not isinstance(resources, Mapping):
        return {}, {}
    return parse_resource_list(resources.get("requests")), parse_resource_list(resources.get("limits"))


def _containers(spec: Obj, key: str) -> list[Obj]:
    value = spec.get(key)
    return [c for c in value if isinstance(c, Mapping)] if isinstance(value, list) else []


def _add_into(total: ResourceList, more: Mapping[str, Quantity]) -> None:
    for name, quantity in more.items():
        total[name] = total[name] + quantity if name in total else quantity


def _max_into(total: ResourceList, more: Mapping[str, Quantity]) -> None:
    for name, quantity in more.items():
        if name not in total or quantity > total[name]:
            total[name] = quantity


def _max(*lists: Mapping[str, Quantity]) -> ResourceList:
    out: ResourceList = {}
    for resources in lists:
        _max_into(out, resources)
    return out


def _resize_infeasible(pod: Obj) -> bool:
    """IsPodResizeInfeasible: the PodResizePending condition says Infeasible."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "PodResizePending":
            return cond.get("reason") == "Infeasible"
    return False


def _container_statuses(pod: Obj) -> dict[str, Obj]:
    status = pod.get("status") or {}
    out: dict[str, Obj] = {}
    for key in ("containerStatuses", "initContainerStatuses"):
        for cs in _containers(status, key):
            out[str(cs.get("name", ""))] = cs
    return out


def _effective(container: Obj, which: int, statuses: dict[str, Obj] | None, infeasible: bool) -> ResourceList:
    """determineContainerReqs / determineContainerLimits: with in-place resize, what the kubelet
    reports as given (and, for requests, allocated) counts when it is larger than the spec."""
    own = container_resources(container)[which]
    status = statuses.get(str(container.get("name", ""))) if statuses is not None else None
    if status is None or not isinstance(status.get("resources"), Mapping):
        return own
    actual = container_resources(status)[which]
    if which == 0:
        allocated = parse_resource_list(status.get("allocatedResources"))
        return _max(actual, allocated) if infeasible else _max(own, actual, allocated)
    return dict(actual) if infeasible else _max(own, actual)


def _aggregate(pod: Obj, which: int, use_status_resources: bool) -> ResourceList:
    """AggregateContainerRequests / AggregateContainerLimits: regular containers run together,
    so they add; classic init containers run one at a time before them, so the pod needs the
    largest; restartable init containers (sidecars) keep running, so they add to all after them."""
    spec = pod.get("spec") or {}
    statuses = _container_statuses(pod) if use_status_resources else None
    infeasible = use_status_resources and _resize_infeasible(pod)
    total: ResourceList = {}
    for ctr in _containers(spec, "containers"):
        _add_into(total, _effective(ctr, which, statuses, infeasible))
    sidecars: ResourceList = {}
    init_peak: ResourceList = {}
    for ctr in _containers(spec, "initContainers"):
        if ctr.get("restartPolicy") == "Always":
            own = _effective(ctr, which, statuses, infeasible)
            _add_into(total, own)
            _add_into(sidecars, own)
            during = dict(sidecars)
        else:
            during = dict(container_resources(ctr)[which])
            _add_into(during, sidecars)
        _max_into(init_peak, during)
    _max_into(total, init_peak)
    return total


def pod_requests(
    pod: Obj, *, exclude_overhead: bool = False, use_status_resources: bool = False
) -> ResourceList:
    """resourcehelper.PodRequests (pod-level resources skipped, as PodLevelResources is off)."""
    total = _aggregate(pod, 0, use_status_resources)
    if not exclude_overhead:
        _add_into(total, parse_resource_list((pod.get("spec") or {}).get("overhead")))
    return total


def pod_limits(
    pod: Obj, *, exclude_overhead: bool = False, use_status_resources: bool = False
) -> ResourceList:
    """resourcehelper.PodLimits: overhead counts only towards limits the pod has (non-zero ones);
    no limit stays no limit."""
    total = _aggregate(pod, 1, use_status_resources)
    if not exclude_overhead:
        for name, quantity in parse_resource_list((pod.get("spec") or {}).get("overhead")).items():
            if name in total and total[name].sign != 0:
                total[name] = total[name] + quantity
    return total


def is_best_effort(pod: Obj) -> bool:
    """qos.GetPodQOS == BestEffort: the class the pod's status records, else no container asks
    for or is capped in a positive amount of cpu or memory."""
    recorded = (pod.get("status") or {}).get("qosClass")
    if recorded:
        return bool(recorded == "BestEffort")
    spec = pod.get("spec") or {}
    for ctr in [*_containers(spec, "containers"), *_containers(spec, "initContainers")]:
        for resources in container_resources(ctr):
            if any(resources[name].sign > 0 for name in ("cpu", "memory") if name in resources):
                return False
    return True


# -- pods: quota ------------------------------------------------------------------------------

_POD_RESOURCES = (
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
_POD_PREFIXES = ("hugepages-", "requests.hugepages-")
# The names a quota may limit only if every container states them: a historical coupling of
# validation with counting that upstream keeps and does not extend.
_MUST_SPECIFY = frozenset(("cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"))


def _is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _is_extended(name: str) -> bool:
    """helper.IsExtendedResourceName: a domain-qualified name that is valid as `requests.<name>`."""
    if _is_native(name) or name.startswith("requests."):
        return False
    return not is_qualified_name(f"requests.{name}")


def _is_extended_quota_name(name: str) -> bool:
    # Extended resources cannot be overcommitted, so a quota names only their requests.
    return not _is_native(name) and name.startswith("requests.")


def _compute_usage(requests: Mapping[str, Quantity], limits: Mapping[str, Quantity]) -> ResourceList:
    """podComputeUsageHelper."""
    out: ResourceList = {"pods": _ONE}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            out[name] = requests[name]
            out[f"requests.{name}"] = requests[name]
        if name in limits:
            out[f"limits.{name}"] = limits[name]
    for name, quantity in requests.items():
        if name.startswith("hugepages-"):
            out[name] = quantity
            out[f"requests.{name}"] = quantity
        if _is_extended(name):
            out[f"requests.{name}"] = quantity
    return out


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def quota_v1_pod(pod: Obj, now: datetime) -> bool:
    """QuotaV1Pod: charged for compute unless finished, or stuck terminating past its grace period
    (a lost node must not keep its pods' quota from their replacements)."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    meta = pod.get("metadata") or {}
    deleted = _parse_time(meta.get("deletionTimestamp"))
    grace = meta.get("deletionGracePeriodSeconds")
    if deleted is None or not isinstance(grace, int) or isinstance(grace, bool):
        return True
    return not now > deleted + timedelta(seconds=grace)


def _is_terminating(pod: Obj) -> bool:
    deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    return isinstance(deadline, int) and not isinstance(deadline, bool) and deadline >= 0


def _cross_namespace_affinity(pod: Obj) -> bool:
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        section = affinity.get(kind) or {}
        terms = list(section.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        terms += [
            (weighted or {}).get("podAffinityTerm") or {}
            for weighted in section.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        ]
        for term in terms:
            if isinstance(term, Mapping) and (
                term.get("namespaces") or term.get("namespaceSelector") is not None
            ):
                return True
    return False


def _matches_priority_class(selector: ScopeSelector, pod: Obj) -> bool:
    """podMatchesSelector: a label selector over {PriorityClass: <name>}, the key absent when the
    pod names no class."""
    name = str((pod.get("spec") or {}).get("priorityClassName") or "")
    match selector.operator:
        case "Exists":
            return bool(name)
        case "DoesNotExist":
            return not name
        case "In":
            return bool(name) and name in selector.values
        case "NotIn":
            return not name or name not in selector.values
    return False


@dataclass(frozen=True)
class PodEvaluator:
    resource: GroupResource = PODS

    def handles(self, operation: str, subresource: str = "") -> bool:
        if subresource == "resize":
            return operation == "UPDATE"
        return operation == "CREATE" and not subresource

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        return [
            n
            for n in _unique(names)
            if n in _POD_RESOURCES or n.startswith(_POD_PREFIXES) or _is_extended_quota_name(n)
        ]

    def matches_scope(self, selector: ScopeSelector, obj: Obj) -> bool:
        match selector.scope:
            case "Terminating":
                return _is_terminating(obj)
            case "NotTerminating":
                return not _is_terminating(obj)
            case "BestEffort":
                return is_best_effort(obj)
            case "NotBestEffort":
                return not is_best_effort(obj)
            case "PriorityClass":
                return _matches_priority_class(selector, obj)
            case "CrossNamespacePodAffinity":
                return _cross_namespace_affinity(obj)
        return False

    def constraints(self, required: Iterable[str], obj: Obj) -> str | None:
        """Every container must state each cpu/memory resource the quota limits."""
        wanted = _MUST_SPECIFY.intersection(required)
        if not wanted:
            return None
        spec = obj.get("spec") or {}
        missing: dict[str, set[str]] = {}
        for ctr in [*_containers(spec, "containers"), *_containers(spec, "initContainers")]:
            stated = _compute_usage(*container_resources(ctr))
            for name in wanted - stated.keys():
                missing.setdefault(name, set()).add(str(ctr.get("name", "")))
        if not missing:
            return None
        parts = [f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing)]
        return "must specify " + "; ".join(parts)

    def usage(self, obj: Obj, now: datetime) -> ResourceList:
        """PodUsageFunc: every pod counts in `count/pods`; only pods still running charge compute."""
        out: ResourceList = {"count/pods": _ONE}
        if not quota_v1_pod(obj, now):
            return out
        requests = pod_requests(obj, use_status_resources=True)
        limits = pod_limits(obj, use_status_resources=True)
        return add(out, _compute_usage(requests, limits))


# -- services ---------------------------------------------------------------------------------

_SERVICE_RESOURCES = ("count/services", "services", "services.nodeports", "services.loadbalancers")


@dataclass(frozen=True)
class ServiceEvaluator:
    resource: GroupResource = SERVICES

    def handles(self, operation: str, subresource: str = "") -> bool:
        # Updates too: a Service can change type.
        return operation in ("CREATE", "UPDATE") and not subresource

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        return [n for n in _unique(names) if n in _SERVICE_RESOURCES]

    def matches_scope(self, selector: ScopeSelector, obj: Obj) -> bool:
        return False

    def constraints(self, required: Iterable[str], obj: Obj) -> str | None:
        return None

    def usage(self, obj: Obj, now: datetime) -> ResourceList:
        spec = obj.get("spec") or {}
        ports = [p for p in spec.get("ports") or [] if isinstance(p, Mapping)]
        out: ResourceList = {
            "count/services": _ONE,
            "services": _ONE,
            "services.loadbalancers": _ZERO,
            "services.nodeports": _ZERO,
        }
        match spec.get("type"):
            case "NodePort":
                out["services.nodeports"] = Quantity.of(len(ports))
            case "LoadBalancer":
                if spec.get("allocateLoadBalancerNodePorts") is False:
                    # Node ports are not allocated yet: count the ones the spec asks for by number.
                    out["services.nodeports"] = Quantity.of(sum(1 for p in ports if p.get("nodePort")))
                else:
                    out["services.nodeports"] = Quantity.of(len(ports))
                out["services.loadbalancers"] = _ONE
        return out


# -- persistent volume claims -----------------------------------------------------------------

_PVC_RESOURCES = ("count/persistentvolumeclaims", "persistentvolumeclaims", "requests.storage")
_PVC_BY_CLASS = (STORAGE_CLASS_SUFFIX + "persistentvolumeclaims", STORAGE_CLASS_SUFFIX + "requests.storage")


def _storage_class(claim: Obj) -> str:
    """GetPersistentVolumeClaimClass: the beta annotation, when present, wins even if empty."""
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    if "volume.beta.kubernetes.io/storage-class" in annotations:
        return str(annotations["volume.beta.kubernetes.io/storage-class"] or "")
    return str((claim.get("spec") or {}).get("storageClassName") or "")


def _whole(quantity: Quantity) -> Quantity:
    # Storage is charged in whole bytes (kubernetes#94313).
    if quantity.value.denominator == 1:
        return quantity
    return Quantity(Fraction(math.ceil(quantity.value)), quantity.format)


def _storage_usage(claim: Obj) -> Quantity | None:
    """getStorageUsage: the request, or what was allocated when more (a failed expansion being
    recovered, RecoverVolumeExpansionFailure)."""
    requests = parse_resource_list(((claim.get("spec") or {}).get("resources") or {}).get("requests"))
    if "storage" not in requests:
        return None
    result = _whole(requests["storage"])
    allocated = parse_resource_list((claim.get("status") or {}).get("allocatedResources")).get("storage")
    if allocated is not None and allocated > result:
        result = _whole(allocated)
    return result


@dataclass(frozen=True)
class PersistentVolumeClaimEvaluator:
    resource: GroupResource = PVCS

    def handles(self, operation: str, subresource: str = "") -> bool:
        # Updates too: a claim can be expanded.
        return operation in ("CREATE", "UPDATE") and not subresource

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        return [n for n in _unique(names) if n in _PVC_RESOURCES or n.endswith(_PVC_BY_CLASS)]

    def matches_scope(self, selector: ScopeSelector, obj: Obj) -> bool:
        return False

    def constraints(self, required: Iterable[str], obj: Obj) -> str | None:
        return None

    def usage(self, obj: Obj, now: datetime) -> ResourceList:
        out: ResourceList = {"persistentvolumeclaims": _ONE, "count/persistentvolumeclaims": _ONE}
        storage_class = _storage_class(obj)
        if storage_class:
            out[f"{storage_class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"] = _ONE
        storage = _storage_usage(obj)
        if storage is not None:
            out["requests.storage"] = storage
            if storage_class:
                out[f"{storage_class}{STORAGE_CLASS_SUFFIX}requests.storage"] = storage
        return out


_BUILTIN: dict[GroupResource, Evaluator] = {
    PODS: PodEvaluator(),
    SERVICES: ServiceEvaluator(),
    PVCS: PersistentVolumeClaimEvaluator(),
}


def evaluator_for(resource: GroupResource) -> Evaluator:
    """The evaluator for a kind: pods, services and claims have their own, anything else is
    counted (custom resources included)."""
    return _BUILTIN.get(resource) or ObjectCountEvaluator(resource)


# -- matching and totals ----------------------------------------------------------------------


def quota_matches(evaluator: Evaluator, quota: Obj, obj: Obj) -> bool:
    """generic.Matches: the quota limits something the evaluator charges, and the object falls in
    every one of the quota's scopes."""
    if not evaluator.matching_resources(_hard_names(quota)):
        return False
    return all(evaluator.matches_scope(selector, obj) for selector in quota_scope_selectors(quota))


def usage_stats(
    evaluator: Evaluator,
    objects: Iterable[Obj],
    resources: Iterable[str],
    selectors: Sequence[ScopeSelector],
    now: datetime,
) -> ResourceList:
    """generic.CalculateUsageStats: every tracked resource from zero, plus the usage of each
    object in all the scopes. An object with a malformed quantity (which validation never
    stores) charges nothing rather than hiding everyone else's usage."""
    used: ResourceList = dict.fromkeys(resources, _ZERO)
    for obj in objects:
        try:
            if all(evaluator.matches_scope(selector, obj) for selector in selectors):
                used = add(used, evaluator.usage(obj, now))
        except ValueError:
            continue
    return used


def _parse_count_name(name: str) -> GroupResource | None:
    if name in _ALIASED:
        return _ALIASED[name]
    if not name.startswith("count/"):
        return None
    resource, _, group = name[len("count/") :].partition(".")
    return GroupResource(group, resource) if resource else None


def resources_for_quota(hard_names: Iterable[str]) -> list[GroupResource]:
    """The kinds of object a quota with these hard limits has to look at."""
    names = list(hard_names)
    found = [resource for resource, evaluator in _BUILTIN.items() if evaluator.matching_resources(names)]
    for name in names:
        counted = _parse_count_name(name)
        if counted is not None and counted not in found:
            found.append(counted)
    return found


def calculate_usage(quota: Obj, list_objects: ListFunc, now: datetime) -> tuple[ResourceList, list[str]]:
    """quota.CalculateUsage: (the usage of every hard resource some evaluator tracks, the
    resource names that could not be measured because their objects could not be listed)."""
    hard = _hard_names(quota)
    selectors = quota_scope_selectors(quota)
    usage: ResourceList = {}
    measured: set[str] = set()
    unmeasured: list[str] = []
    for resource in resources_for_quota(hard):
        evaluator = evaluator_for(resource)
        tracked = evaluator.matching_resources(hard)
        if not tracked:
            continue
        objects = list_objects(resource)
        if objects is None:
            unmeasured += [name for name in tracked if name not in unmeasured]
            continue
        measured.update(tracked)
        usage = add(usage, usage_stats(evaluator, objects, tracked, selectors, now))
    return mask(usage, measured - set(unmeasured)), unmeasured
