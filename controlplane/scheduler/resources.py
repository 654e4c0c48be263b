"""Resource arithmetic as the scheduler does it (framework.Resource and
k8s.io/component-helpers/resource.PodRequests): CPU in millicores, everything else in units,
quantities rounded up; a pod requests the larger of its app containers' sum and its init
containers' peak (sidecars counting towards both), plus its overhead."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from controlplane.api.quantity import parse_quantity

__all__ = [
    "DEFAULT_MEMORY_REQUEST",
    "DEFAULT_MILLI_CPU_REQUEST",
    "NON_MISSING_DEFAULTS",
    "Resource",
    "is_extended_resource_name",
    "is_scalar_resource_name",
    "pod_requests",
    "resource_list",
]

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"

# What a container without a request counts as when scoring (schedutil.DefaultMilliCPURequest,
# DefaultMemoryRequest), so best-effort pods still spread instead of piling onto one node.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
NON_MISSING_DEFAULTS: Mapping[str, int] = {CPU: DEFAULT_MILLI_CPU_REQUEST, MEMORY: DEFAULT_MEMORY_REQUEST}


def _is_native(name: str) -> bool:
    return "/" not in name or name.startswith("kubernetes.io/")


def is_extended_resource_name(name: str) -> bool:
    return not _is_native(name) and not name.startswith("requests.")


def is_scalar_resource_name(name: str) -> bool:
    return (
        is_extended_resource_name(name)
        or name.startswith("hugepages-")
        or name.startswith("kubernetes.io/")
        or name.startswith("attachable-volumes-")
    )


@lru_cache(maxsize=4096)
def _parsed(raw: str | int | float) -> tuple[int, int]:
    """(milli value, value) of a quantity, both rounded up; (0, 0) when malformed. Requests and
    capacities repeat ("100m", "500Mi", "4"), so each distinct string is parsed once, keeping
    exact (Fraction) parsing out of the hot path."""
    try:
        quantity = parse_quantity(raw)
    except ValueError:
        return 0, 0
    return quantity.milli_value(), quantity.int_value()


def _value(name: str, raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        return 0
    milli, units = _parsed(raw)
    return milli if name == CPU else units


def resource_list(raw: Any) -> dict[str, int]:
    """A ResourceList as integers: CPU in millicores, the rest in units (both rounded up)."""
    if not isinstance(raw, Mapping):
        return {}
    return {str(name): _value(str(name), value) for name, value in raw.items()}


def _add_into(target: dict[str, int], other: Mapping[str, int]) -> None:
    for name, value in other.items():
        target[name] = target.get(name, 0) + value


def _max_into(target: dict[str, int], other: Mapping[str, int]) -> None:
    for name, value in other.items():
        current = target.get(name)
        if current is None or value > current:
            target[name] = value


def _container_requests(
    container: Mapping[str, Any], non_missing: Mapping[str, int] | None
) -> dict[str, int]:
    reqs = resource_list((container.get("resources") or {}).get("requests"))
    if non_missing:
        for name, value in non_missing.items():
            reqs.setdefault(name, value)
    return reqs


def pod_requests(pod: Mapping[str, Any], *, non_missing: Mapping[str, int] | None = None) -> dict[str, int]:
    """resource.PodRequests: app containers summed; each init container runs alone except for
    the restartable (sidecar) ones started before it, which also run beside the app containers;
    the pod needs the larger of the two, plus spec.overhead. `non_missing` fills requests a
    container leaves out (an explicit zero stays zero)."""
    spec = pod.get("spec") or {}
    reqs: dict[str, int] = {}
    for container in spec.get("containers") or []:
        _add_into(reqs, _container_requests(container, non_missing))
    restartable: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for container in spec.get("initContainers") or []:
        creqs = _container_requests(container, non_missing)
        if container.get("restartPolicy") == "Always":
            _add_into(reqs, creqs)
            _add_into(restartable, creqs)
            creqs = dict(restartable)
        else:
            combined = dict(creqs)
            _add_into(combined, restartable)
            creqs = combined
        _max_into(init_peak, creqs)
    _max_into(reqs, init_peak)
    overhead = spec.get("overhead")
    if overhead:
        _add_into(reqs, resource_list(overhead))
    return reqs


@dataclass
class Resource:
    milli_cpu: int = 0
    memory: int = 0
    ephemeral_storage: int = 0
    allowed_pod_number: int = 0
    scalar: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_list(cls, values: Mapping[str, int]) -> Resource:
        out = cls()
        out.add(values)
        return out

    def add(self, values: Mapping[str, int]) -> None:
        for name, value in values.items():
            if name == CPU:
                self.milli_cpu += value
            elif name == MEMORY:
                self.memory += value
            elif name == PODS:
                self.allowed_pod_number += value
            elif name == EPHEMERAL_STORAGE:
                self.ephemeral_storage += value
            elif is_scalar_resource_name(name):
                self.scalar[name] = self.scalar.get(name, 0) + value

    def add_resource(self, other: Resource, sign: int = 1) -> None:
        self.milli_cpu += sign * other.milli_cpu
        self.memory += sign * other.memory
        self.ephemeral_storage += sign * other.ephemeral_storage
        self.allowed_pod_number += sign * other.allowed_pod_number
        for name, value in other.scalar.items():
            self.scalar[name] = self.scalar.get(name, 0) + sign * value

    def clone(self) -> Resource:
        return Resource(
            self.milli_cpu, self.memory, self.ephemeral_storage, self.allowed_pod_number, dict(self.scalar)
        )

    def is_zero_request(self) -> bool:
        return not (self.milli_cpu or self.memory or self.ephemeral_storage or self.scalar)

    def get(self, name: str) -> int:
        if name == CPU:
            return self.milli_cpu
        if name == MEMORY:
            return self.memory
        if name == EPHEMERAL_STORAGE:
            return self.ephemeral_storage
        if name == PODS:
            return self.allowed_pod_number
        return self.scalar.get(name, 0)
