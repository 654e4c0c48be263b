"""A pod's effective requests and limits for LimitRanger, from the one implementation quota uses
(controlplane.api.quota): LimitRanger's Pod limits leave out `spec.overhead` unless asked."""

from __future__ import annotations

from typing import Any

from controlplane.api import quota
from controlplane.api.quantity import ResourceList
from controlplane.api.quota import container_resources, is_best_effort

__all__ = ["container_resources", "is_best_effort", "pod_limits", "pod_requests"]


def pod_requests(pod: dict[str, Any], *, overhead: bool = False) -> ResourceList:
    """Raises ValueError on a malformed quantity."""
    return quota.pod_requests(pod, exclude_overhead=not overhead)


def pod_limits(pod: dict[str, Any], *, overhead: bool = False) -> ResourceList:
    """Raises ValueError on a malformed quantity."""
    return quota.pod_limits(pod, exclude_overhead=not overhead)
