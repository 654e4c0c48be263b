"""Small pure helpers about pods, status conditions and controller references that several
controllers share (upstream's k8s.io/kubernetes/pkg/api/v1/pod and controller_utils). Making
controller references and claiming objects is controller_ref's."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = [
    "condition",
    "condition_is_true",
    "controller_of",
    "is_pod_active",
    "is_pod_available",
    "is_pod_ready",
    "is_pod_terminal",
    "parse_time",
    "status_condition",
]

Obj = Mapping[str, Any]


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def status_condition(status: Obj | None, type_: str) -> dict[str, Any] | None:
    """A copy of the status condition of that type (GetPodCondition, GetNodeCondition,
    GetDeploymentCondition: they all look alike)."""
    for cond in (status or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def condition(obj: Obj, type_: str) -> dict[str, Any] | None:
    return status_condition(obj.get("status"), type_)


def condition_is_true(obj: Obj, type_: str) -> bool:
    cond = condition(obj, type_)
    return cond is not None and cond.get("status") == "True"


def is_pod_ready(pod: Obj) -> bool:
    return condition_is_true(pod, "Ready")


def is_pod_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_pod_active(pod: Obj) -> bool:
    """Neither finished nor being deleted: what ReplicaSets count (upstream IsPodActive)."""
    return not is_pod_terminal(pod) and not (pod.get("metadata") or {}).get("deletionTimestamp")


def is_pod_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """Ready for at least minReadySeconds (upstream IsPodAvailable)."""
    cond = condition(pod, "Ready")
    if cond is None or cond.get("status") != "True":
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time(cond.get("lastTransitionTime"))
    return since is not None and (now - since).total_seconds() >= min_ready_seconds


def controller_of(obj: Obj) -> Mapping[str, Any] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None
