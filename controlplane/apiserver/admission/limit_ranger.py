"""LimitRanger: a namespace's LimitRanges default and bound what pods and claims ask for.

Mutating: containers without a request or limit get the LimitRange's `defaultRequest` /
`default` (noted in the `kubernetes.io/limit-ranger` annotation). Validating: every Container,
Pod and PersistentVolumeClaim item's min, max and maxLimitRequestRatio hold, or the request is
refused 403 with upstream's wording. Pod updates are not checked (containers' resources cannot
change through them); claim updates check only the requests that changed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controlplane.api import errors
from controlplane.api.quantity import Quantity, ResourceList, parse_resource_list
from controlplane.apiserver.admission.interface import Attributes, ValidationScope, forbidden
from controlplane.apiserver.admission.pod_resources import container_resources, pod_limits, pod_requests

if TYPE_CHECKING:
    from controlplane.apiserver.context import ServerContext

__all__ = [
    "LIMIT_RANGER_ANNOTATION",
    "LimitRanger",
    "aggregate",
    "defaulted_items",
    "merge_pod_defaults",
    "validate_pod",
    "validate_pvc",
]

LIMIT_RANGER_ANNOTATION = "kubernetes.io/limit-ranger"

Obj = dict[str, Any]


def defaulted_items(limit_range: Obj) -> list[Obj]:
    """The LimitRange's items with SetDefaults_LimitRangeItem applied: for Container items, a
    missing default limit is the max, a missing default request is the default limit, then the
    min."""
    items = ((limit_range.get("spec") or {}).get("limits")) or []
    out: list[Obj] = []
    for raw in items:
        if not isinstance(raw, dict):
            continue
        item = copy.deepcopy(raw)
        if item.get("type") == "Container":
            default = dict(item.get("default") or {})
            default_request = dict(item.get("defaultRequest") or {})
            for name, value in (item.get("max") or {}).items():
                default.setdefault(name, value)
            for name, value in default.items():
                default_request.setdefault(name, value)
            for name, value in (item.get("min") or {}).items():
                default_request.setdefault(name, value)
            item["default"], item["defaultRequest"] = default, default_request
        out.append(item)
    return out


def aggregate(messages: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one message alone, several in brackets, deduplicated."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# --- defaults ---------------------------------------------------------------------------------


def merge_pod_defaults(pod: Obj, items: list[Obj]) -> None:
    """PodMutateLimitFunc for one LimitRange's (defaulted) items."""
    default_requests: Obj = {}
    default_limits: Obj = {}
    for item in items:
        if item.get("type") == "Container":
            default_requests.update(item.get("defaultRequest") or {})
            default_limits.update(item.get("default") or {})
    if not default_requests and not default_limits:
        return
    spec = pod.get("spec") or {}
    notes: list[str] = []
    for key, prefix in (("containers", "container"), ("initContainers", "init container")):
        for ctr in spec.get(key) or []:
            if isinstance(ctr, dict):
                notes.extend(_merge_container(ctr, default_requests, default_limits, prefix))
    if notes:
        meta = pod.setdefault("metadata", {})
        annotations = meta.get("annotations")
        if not isinstance(annotations, dict):
            annotations = meta["annotations"] = {}
        annotations[LIMIT_RANGER_ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)


def _merge_container(ctr: Obj, default_requests: Obj, default_limits: Obj, prefix: str) -> list[str]:
    resources = ctr.get("resources")
    if not isinstance(resources, dict):
        resources = ctr["resources"] = {}
    notes = []
    set_limits = _fill(resources, "limits", default_limits)
    set_requests = _fill(resources, "requests", default_requests)
    if set_requests:
        notes.append(f"{', '.join(sorted(set_requests))} request for {prefix} {ctr.get('name', '')}")
    if set_limits:
        notes.append(f"{', '.join(sorted(set_limits))} limit for {prefix} {ctr.get('name', '')}")
    return notes


def _fill(resources: Obj, key: str, defaults: Obj) -> list[str]:
    current = resources.get(key)
    if not isinstance(current, dict):
        current = {}
    added = [name for name in defaults if name not in current]
    if added:
        resources[key] = {**current, **{name: defaults[name] for name in added}}
    return added


# --- constraints ------------------------------------------------------------------------------


def _min(
    kind: str, name: str, enforced: Quantity, requests: ResourceList, limits: ResourceList
) -> str | None:
    if name not in requests:
        return f"minimum {name} usage per {kind} is {enforced}.  No request is specified"
    if enforced > requests[name]:
        return f"minimum {name} usage per {kind} is {enforced}, but request is {requests[name]}"
    if name in limits and enforced > limits[name]:
        return f"minimum {name} usage per {kind} is {enforced}, but limit is {limits[name]}"
    return None


def _max(
    kind: str, name: str, enforced: Quantity, requests: ResourceList, limits: ResourceList
) -> str | None:
    if name not in limits:
        return f"maximum {name} usage per {kind} is {enforced}.  No limit is specified"
    if limits[name] > enforced:
        return f"maximum {name} usage per {kind} is {enforced}, but limit is {limits[name]}"
    if name in requests and requests[name] > enforced:
        return f"maximum {name} usage per {kind} is {enforced}, but request is {requests[name]}"
    return None


def _max_request(kind: str, name: str, enforced: Quantity, requests: ResourceList) -> str | None:
    if name not in requests:
        return f"maximum {name} usage per {kind} is {enforced}.  No request is specified"
    if requests[name] > enforced:
        return f"maximum {name} usage per {kind} is {enforced}, but request is {requests[name]}"
    return None


def _ratio(
    kind: str, name: str, enforced: Quantity, requests: ResourceList, limits: ResourceList
) -> str | None:
    prefix = f"{name} max limit to request ratio per {kind} is {enforced}"
    request, limit = requests.get(name), limits.get(name)
    if request is None or request.sign == 0:
        return f"{prefix}, but no request is specified or request is 0"
    if limit is None or limit.sign == 0:
        return f"{prefix}, but no limit is specified or limit is 0"
    ratio = limit.value / request.value
    if ratio > enforced.value:
        return f"{prefix}, but provided ratio is {float(ratio):f}"
    return None


def _check(kind: str, item: Obj, requests: ResourceList, limits: ResourceList) -> list[str]:
    found: list[str | None] = []
    for name, enforced in parse_resource_list(item.get("min")).items():
        found.append(_min(kind, name, enforced, requests, limits))
    for name, enforced in parse_resource_list(item.get("max")).items():
        found.append(_max(kind, name, enforced, requests, limits))
    for name, enforced in parse_resource_list(item.get("maxLimitRequestRatio")).items():
        found.append(_ratio(kind, name, enforced, requests, limits))
    return [message for message in found if message is not None]


def validate_pod(items: list[Obj], pod: Obj) -> list[str]:
    """PodValidateLimitFunc for a new pod: every violated constraint, in item order."""
    spec = pod.get("spec") or {}
    problems: list[str] = []
    for item in items:
        kind = item.get("type")
        if kind == "Container":
            for key in ("containers", "initContainers"):
                for ctr in spec.get(key) or []:
                    if isinstance(ctr, dict):
                        requests, limits = container_resources(ctr)
                        problems.extend(_check(kind, item, requests, limits))
        elif kind == "Pod":
            problems.extend(_check(kind, item, pod_requests(pod), pod_limits(pod)))
    return problems


def validate_pvc(items: list[Obj], pvc: Obj, old: Obj | None) -> list[str]:
    """PersistentVolumeClaimValidateLimitFunc: only requests count, and on an update only the
    ones that changed."""
    requests = parse_resource_list(((pvc.get("spec") or {}).get("resources") or {}).get("requests"))
    old_requests = (
        parse_resource_list(((old.get("spec") or {}).get("resources") or {}).get("requests")) if old else {}
    )

    def unchanged(name: str) -> bool:
        return name in requests and name in old_requests and requests[name] == old_requests[name]

    problems: list[str | None] = []
    for item in items:
        kind = item.get("type")
        if kind != "PersistentVolumeClaim":
            continue
        for name, enforced in parse_resource_list(item.get("min")).items():
            if not unchanged(name):
                problems.append(_min(kind, name, enforced, requests, {}))
        for name, enforced in parse_resource_list(item.get("max")).items():
            if not unchanged(name):
                problems.append(_max_request(kind, name, enforced, requests))
    return [p for p in problems if p is not None]


# --- the plugin -------------------------------------------------------------------------------


def _bad_quantity(exc: ValueError) -> errors.BadRequest:
    return errors.BadRequest(message=str(exc))


@dataclass
class LimitRanger:
    name: str = "LimitRanger"

    @staticmethod
    def _handles(attrs: Attributes) -> bool:
        if attrs.subresource:
            return False
        if attrs.is_resource("", "pods"):
            return attrs.operation == "CREATE"
        return attrs.is_resource("", "persistentvolumeclaims")

    async def _limit_ranges(self, ctx: ServerContext, attrs: Attributes) -> list[list[Obj]]:
        """The namespace's LimitRanges, read once per request (both phases use them)."""
        cached = attrs.memo.get(self.name)
        if cached is None:
            info = ctx.registry.get("", "v1", "limitranges")
            assert info is not None
            ranges = await ctx.store.latest_objects(info, attrs.namespace)
            cached = attrs.memo[self.name] = [defaulted_items(lr) for lr in ranges]
        result: list[list[Obj]] = cached
        return result

    async def admit(self, ctx: ServerContext, attrs: Attributes, obj: Obj, old: Obj | None) -> None:
        if not self._handles(attrs) or not attrs.is_resource("", "pods"):
            return
        for items in await self._limit_ranges(ctx, attrs):
            merge_pod_defaults(obj, items)

    async def validate(
        self, ctx: ServerContext, attrs: Attributes, obj: Obj, old: Obj | None, scope: ValidationScope
    ) -> None:
        if not self._handles(attrs):
            return
        if old is not None and (old.get("metadata") or {}).get("deletionTimestamp"):
            return  # objects on their way out are not held to new limits
        for items in await self._limit_ranges(ctx, attrs):
            try:
                if attrs.is_resource("", "pods"):
                    problems = validate_pod(items, obj)
                else:
                    problems = validate_pvc(items, obj, old)
            except ValueError as exc:
                raise _bad_quantity(exc) from exc
            if problems:
                raise forbidden(attrs, aggregate(problems))
