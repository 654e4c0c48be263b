"""A pod's quality-of-service class, as upstream's ComputePodQOS (pkg/apis/core/helper/qos).

The API server records it in status.qosClass when a pod is created; quota, eviction and the
node agent read it from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from controlplane.api.quantity import parse_quantity

__all__ = ["pod_qos_class"]

_QOS_RESOURCES = ("cpu", "memory")


def _positive(resources: Mapping[str, Any] | None) -> dict[str, Fraction]:
    out: dict[str, Fraction] = {}
    for name, raw in (resources or {}).items():
        if name not in _QOS_RESOURCES:
            continue
        try:
            value = parse_quantity(raw).value
        except ValueError:
            continue  # validation reports it; QoS ignores what it cannot read
        if value > 0:
            out[name] = value
    return out


# The class by the containers' requests and limits as written: pods of one template repeat them,
# and summing Fractions costs more than building the key.
_MEMO: dict[tuple[Any, ...], str] = {}
_MEMO_ENTRIES = 1024


def _resources_key(containers: list[Any]) -> tuple[Any, ...] | None:
    key: list[tuple[Any, ...]] = []
    for container in containers:
        resources = container.get("resources") if isinstance(container, dict) else None
        if not resources:
            key.append(())
            continue
        if not isinstance(resources, dict):
            return None
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        if not isinstance(requests, dict) or not isinstance(limits, dict):
            return None
        # Strings only: 1, 1.0 and True are equal as keys but not as quantities.
        if not all(type(v) is str for v in requests.values()) or not all(
            type(v) is str for v in limits.values()
        ):
            return None
        key.append((tuple(requests.items()), tuple(limits.items())))
    return tuple(key)


def pod_qos_class(pod: Mapping[str, Any]) -> str:
    """Guaranteed: every container (init included) limits cpu and memory and requests equal
    limits; BestEffort: nothing requested or limited; Burstable otherwise. Ephemeral containers
    cannot set resources and do not count."""
    spec = pod.get("spec") or {}
    containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    key = _resources_key(containers)
    found = _MEMO.get(key) if key is not None else None
    if found is not None:
        return found
    found = _qos_class(containers)
    if key is not None:
        if len(_MEMO) >= _MEMO_ENTRIES:
            _MEMO.clear()
        _MEMO[key] = found
    return found


def _qos_class(containers: list[Any]) -> str:
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        for name, value in _positive(resources.get("requests")).items():
            requests[name] = requests.get(name, Fraction(0)) + value
        found = _positive(resources.get("limits"))
        for name, value in found.items():
            limits[name] = limits.get(name, Fraction(0)) + value
        if not set(_QOS_RESOURCES) <= set(found):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    matched = all(limits.get(name) == value for name, value in requests.items())
    return "Guaranteed" if guaranteed and matched and len(requests) == len(limits) else "Burstable"
