"""A pod's effective requests and limits, as upstream's resource helpers add them up.

Regular containers run together, so they add; classic init containers run one at a time before
them, so the pod needs the largest of them; restartable init containers (sidecars) keep running,
so they add to everything after them. Quota also charges `spec.overhead`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.api.quantity import Quantity, ResourceList, parse_resource_list

__all__ = ["container_resources", "is_best_effort", "pod_limits", "pod_requests"]

Obj = dict[str, Any]


def _containers(spec: Obj, key: str) -> list[Obj]:
    value = spec.get(key)
    return [c for c in value if isinstance(c, dict)] if isinstance(value, list) else []


def container_resources(container: Obj) -> tuple[ResourceList, ResourceList]:
    """(requests, limits); raises ValueError on a malformed quantity."""
    resources = container.get("resources") or {}
    if not isinstance(resources, dict):
        return {}, {}
    return parse_resource_list(resources.get("requests")), parse_resource_list(resources.get("limits"))


def _add_into(total: ResourceList, more: Mapping[str, Quantity]) -> None:
    for name, quantity in more.items():
        total[name] = total[name] + quantity if name in total else quantity


def _max_into(total: ResourceList, more: Mapping[str, Quantity]) -> None:
    for name, quantity in more.items():
        if name not in total or quantity > total[name]:
            total[name] = quantity


def _aggregate(spec: Obj, which: int) -> ResourceList:
    total: ResourceList = {}
    for ctr in _containers(spec, "containers"):
        _add_into(total, container_resources(ctr)[which])
    sidecars: ResourceList = {}
    init_max: ResourceList = {}
    for ctr in _containers(spec, "initContainers"):
        own = container_resources(ctr)[which]
        if ctr.get("restartPolicy") == "Always":
            _add_into(total, own)
            _add_into(sidecars, own)
            effective = dict(sidecars)
        else:
            effective = dict(own)
            _add_into(effective, sidecars)
        _max_into(init_max, effective)
    _max_into(total, init_max)
    return total


def pod_requests(pod: Obj, *, overhead: bool = False) -> ResourceList:
    spec = pod.get("spec") or {}
    total = _aggregate(spec, 0)
    if overhead:
        _add_into(total, parse_resource_list(spec.get("overhead")))
    return total


def pod_limits(pod: Obj, *, overhead: bool = False) -> ResourceList:
    spec = pod.get("spec") or {}
    total = _aggregate(spec, 1)
    if overhead:
        # Overhead counts only towards limits the pod has: no limit stays no limit.
        for name, quantity in parse_resource_list(spec.get("overhead")).items():
            if name in total:
                total[name] = total[name] + quantity
    return total


def is_best_effort(pod: Obj) -> bool:
    """QoS class BestEffort: no container asks for or is capped in cpu or memory."""
    spec = pod.get("spec") or {}
    for ctr in [*_containers(spec, "initContainers"), *_containers(spec, "containers")]:
        requests, limits = container_resources(ctr)
        for resources in (requests, limits):
            if any(resources[name].sign != 0 for name in ("cpu", "memory") if name in resources):
                return False
    return True
