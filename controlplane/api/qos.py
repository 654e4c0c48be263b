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


def pod_qos_class(pod: Mapping[str, Any]) -> str:
    """Guaranteed: every container (init included) limits cpu and memory and requests equal
    limits; BestEffort: nothing requested or limited; Burstable otherwise. Ephemeral containers
    cannot set resources and do not count."""
    spec = pod.get("spec") or {}
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
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
