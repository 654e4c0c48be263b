"""What an object costs in quota, per resource type (upstream's pkg/quota/v1/evaluator/core).

Pure: each evaluator says which requests it handles, which quota resource names it knows, what
one object uses, which quota scopes it falls in and which constraints it must meet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any, Protocol

from controlplane.api.quantity import Quantity, ResourceList, add, parse_quantity
from controlplane.apiserver.admission.interface import Attributes
from controlplane.apiserver.admission.pod_resources import (
    container_resources,
    is_best_effort,
    pod_limits,
    pod_requests,
)

__all__ = [
    "Evaluator",
    "ObjectCountEvaluator",
    "PersistentVolumeClaimEvaluator",
    "PodEvaluator",
    "ScopeSelector",
    "ServiceEvaluator",
    "evaluator_for",
    "object_count_name",
    "quota_scope_selectors",
]

Obj = dict[str, Any]
ONE = Quantity(Fraction(1))

# pkg/apis/core: the legacy names simple object counts were quota'd by.
_LEGACY_COUNT_ALIASES = {
    "configmaps": "configmaps",
    "resourcequotas": "resourcequotas",
    "replicationcontrollers": "replicationcontrollers",
    "secrets": "secrets",
}
_STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
_HUGEPAGES = "hugepages-"
_NATIVE_PREFIX = "kubernetes.io/"


def object_count_name(group: str, plural: str) -> str:
    """generic.ObjectCountQuotaResourceNameFor: `count/pods`, `count/deployments.apps`."""
    return f"count/{plural}.{group}" if group else f"count/{plural}"


@dataclass(frozen=True)
class ScopeSelector:
    """One scopeSelector requirement; `spec.scopes` entries become Exists requirements."""

    scope: str
    operator: str = "Exists"
    values: tuple[str, ...] = ()


def quota_scope_selectors(quota: Obj) -> list[ScopeSelector]:
    spec = quota.get("spec") or {}
    out = [ScopeSelector(str(scope)) for scope in spec.get("scopes") or []]
    for expr in (spec.get("scopeSelector") or {}).get("matchExpressions") or []:
        if isinstance(expr, dict):
            out.append(
                ScopeSelector(
                    str(expr.get("scopeName", "")),
                    str(expr.get("operator", "")),
                    tuple(str(v) for v in expr.get("values") or []),
                )
            )
    return out


class Evaluator(Protocol):
    def handles(self, attrs: Attributes) -> bool: ...

    def matching_resources(self, names: list[str]) -> list[str]: ...

    def matches_scope(self, selector: ScopeSelector, obj: Obj) -> bool: ...

    def constraints(self, required: list[str], obj: Obj) -> str | None: ...

    def usage(self, obj: Obj, now: datetime) -> ResourceList: ...


def _no_scope(selector: ScopeSelector, obj: Obj) -> bool:
    # generic.MatchesNoScopeFunc: only pods fall in quota scopes.
    return False


@dataclass(frozen=True)
class ObjectCountEvaluator:
    group: str
    plural: str

    @property
    def names(self) -> list[str]:
        names = [object_count_name(self.group, self.plural)]
        if not self.group and self.plural in _LEGACY_COUNT_ALIASES:
            names.append(_LEGACY_COUNT_ALIASES[self.plural])
        return names

    def handles(self, attrs: Attributes) -> bool:
        return attrs.operation == "CREATE"

    def matching_resources(self, names: list[str]) -> list[str]:
        return [n for n in names if n in self.names]

    def matches_scope(self, selector: ScopeSelector, obj: Obj) -> bool:
        return _no_scope(selector, obj)

    def constraints(self, required: list[str], obj: Obj) -> str | None:
        return None

    def usage(self, obj: Obj, now: datetime) -> ResourceList:
        return dict.fromkeys(self.names, ONE)


# --- pods -------------------------------------------------------------------------------------

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
# The resources a quota may name only if every container states them (a historical coupling
# upstream keeps and does not extend).
_MUST_SPECIFY = ("cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory")


def _is_extended(name: str) -> bool:
    native = "/" not in name or _NATIVE_PREFIX in name
    return not native and not name.startswith("requests.")


def _compute_usage(requests: ResourceList, limits: ResourceList) -> ResourceList:
    """podComputeUsageHelper."""
    out: ResourceList = {"pods": ONE}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            out[name] = requests[name]
            out[f"requests.{name}"] = requests[name]
        if name in limits:
            out[f"limits.{name}"] = limits[name]
    for name, quantity in requests.items():
        if name.startswith(_HUGEPAGES):
            out[name] = quantity
            out[f"requests.{name}"] = quantity
        elif _is_extended(name):
            out[f"requests.{name}"] = quantity
    return out


def pod_is_charged(pod: Obj, now: datetime) -> bool:
    """QuotaV1Pod: terminal pods and pods past their deletion grace are not charged."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    meta = pod.get("metadata") or {}
    deletion, grace = meta.get("deletionTimestamp"), meta.get("deletionGracePeriodSeconds")
    if deletion and grace is not None:
        try:
            deleted_at = datetime.fromisoformat(str(deletion).replace("Z", "+00:00"))
        except ValueError:
            return True
        if now > deleted_at + timedelta(seconds=int(grace)):
            return False
    return True


def _terminating(pod: Obj) -> bool:
    deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    return isinstance(deadline, int) and deadline >= 0


def _cross_namespace_affinity(pod: Obj) -> bool:
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        terms = affinity.get(kind) or {}
        required = terms.get("requiredDuringSchedulingIgnoredDuringExecution") or []
        preferred = [
            (w or {}).get("podAffinityTerm") or {}
            for w in terms.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        ]
        for term in [*required, *preferred]:
            if isinstance(term, dict) and (
                term.get("namespaces") or term.get("namespaceSelector") is not None
            ):
                return True
    return False


def _matches_priority_class(selector: ScopeSelector, pod: Obj) -> bool:
    name = (pod.get("spec") or {}).get("priorityClassName") or ""
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
    def handles(self, attrs: Attributes) -> bool:
        return attrs.operation == "CREATE" and not attrs.subresource

    def matching_resources(self, names: list[str]) -> list[str]:
        return [
            n
            for n in names
            if n in _POD_RESOURCES
            or n.startswith((_HUGEPAGES, "requests." + _HUGEPAGES))
            or (n.startswith("requests.") and _is_extended(n[len("requests.") :]))
        ]

    def matches_scope(self, selector: ScopeSelector, obj: Obj) -> bool:
        match selector.scope:
            case "Terminating":
                return _terminating(obj)
            case "NotTerminating":
                return not _terminating(obj)
            case "BestEffort":
                return is_best_effort(obj)
            case "NotBestEffort":
                return not is_best_effort(obj)
            case "PriorityClass":
                return _matches_priority_class(selector, obj)
            case "CrossNamespacePodAffinity":
                return _cross_namespace_affinity(obj)
        return False

    def constraints(self, required: list[str], obj: Obj) -> str | None:
        """Every container must state each cpu/memory resource the quota names."""
        wanted = [name for name in required if name in _MUST_SPECIFY]
        if not wanted:
            return None
        spec = obj.get("spec") or {}
        missing: dict[str, set[str]] = {}
        for key in ("containers", "initContainers"):
            for ctr in spec.get(key) or []:
                if not isinstance(ctr, dict):
                    continue
                usage = _compute_usage(*container_resources(ctr))
                for name in wanted:
                    if name not in usage:
                        missing.setdefault(name, set()).add(str(ctr.get("name", "")))
        if not missing:
            return None
        parts = [f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing)]
        return "must specify " + "; ".join(parts)

    def usage(self, obj: Obj, now: datetime) -> ResourceList:
        out: ResourceList = {"count/pods": ONE}
        if not pod_is_charged(obj, now):
            return out
        return add(out, _compute_usage(pod_requests(obj, overhead=True), pod_limits(obj, overhead=True)))


# --- services ---------------------------------------------------------------------------------

_SERVICE_RESOURCES = ("count/services", "services", "services.nodeports", "services.loadbalancers")


@dataclass(frozen=True)
class ServiceEvaluator:
    def handles(self, attrs: Attributes) -> bool:
        return attrs.operation in ("CREATE", "UPDATE") and attrs.subresource != "status"

    def matching_resources(self, names: list[str]) -> list[str]:
        return [n for n in names if n in _SERVICE_RESOURCES]

    def matches_scope(self, selector: ScopeSelector, obj: Obj) -> bool:
        return _no_scope(selector, obj)

    def constraints(self, required: list[str], obj: Obj) -> str | None:
        return None

    def usage(self, obj: Obj, now: datetime) -> ResourceList:
        spec = obj.get("spec") or {}
        ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
        out: ResourceList = {"services": ONE, "count/services": ONE}
        kind = spec.get("type") or "ClusterIP"
        if kind == "NodePort":
            out["services.nodeports"] = Quantity.of(len(ports))
        elif kind == "LoadBalancer":
            if spec.get("allocateLoadBalancerNodePorts") is False:
                # Node ports are only what the spec asks for explicitly.
                out["services.nodeports"] = Quantity.of(sum(1 for p in ports if p.get("nodePort")))
            else:
                out["services.nodeports"] = Quantity.of(len(ports))
            out["services.loadbalancers"] = ONE
        return out


# --- persistent volume claims -----------------------------------------------------------------

_PVC_RESOURCES = ("persistentvolumeclaims", "count/persistentvolumeclaims", "requests.storage")


def _storage_class(pvc: Obj) -> str:
    annotations = (pvc.get("metadata") or {}).get("annotations") or {}
    beta = annotations.get("volume.beta.kubernetes.io/storage-class")
    if beta:
        return str(beta)
    return str((pvc.get("spec") or {}).get("storageClassName") or "")


@dataclass(frozen=True)
class PersistentVolumeClaimEvaluator:
    def handles(self, attrs: Attributes) -> bool:
        return attrs.operation in ("CREATE", "UPDATE") and not attrs.subresource

    def matching_resources(self, names: list[str]) -> list[str]:
        return [
            n
            for n in names
            if n in _PVC_RESOURCES
            or (
                _STORAGE_CLASS_SUFFIX in n
                and n.endswith(
                    (
                        _STORAGE_CLASS_SUFFIX + "requests.storage",
                        _STORAGE_CLASS_SUFFIX + "persistentvolumeclaims",
                    )
                )
            )
        ]

    def matches_scope(self, selector: ScopeSelector, obj: Obj) -> bool:
        return _no_scope(selector, obj)

    def constraints(self, required: list[str], obj: Obj) -> str | None:
        return None

    def usage(self, obj: Obj, now: datetime) -> ResourceList:
        out: ResourceList = {"persistentvolumeclaims": ONE, "count/persistentvolumeclaims": ONE}
        storage_class = _storage_class(obj)
        if storage_class:
            out[f"{storage_class}{_STORAGE_CLASS_SUFFIX}persistentvolumeclaims"] = ONE
        requested = (((obj.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
        if requested is not None:
            storage = parse_quantity(requested)
            out["requests.storage"] = storage
            if storage_class:
                out[f"{storage_class}{_STORAGE_CLASS_SUFFIX}requests.storage"] = storage
        return out


def evaluator_for(group: str, plural: str) -> Evaluator:
    if not group and plural == "pods":
        return PodEvaluator()
    if not group and plural == "services":
        return ServiceEvaluator()
    if not group and plural == "persistentvolumeclaims":
        return PersistentVolumeClaimEvaluator()
    return ObjectCountEvaluator(group, plural)
