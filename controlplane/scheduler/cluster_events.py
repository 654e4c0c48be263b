"""Cluster events that may make an unschedulable pod schedulable (framework/events.go), and the
queueing hints plugins register for them: a pod rejected by plugin P is retried on an event
only when one of P's hints says the event could change P's verdict."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any

from controlplane.scheduler.podinfo import PodInfo

__all__ = [
    "ActionType",
    "ClusterEvent",
    "ClusterEventWithHint",
    "QueueingHint",
    "Resource",
    "node_scheduling_properties_change",
    "pod_scheduling_properties_change",
]

Obj = Mapping[str, Any]


class ActionType(IntFlag):
    ADD = 1
    DELETE = 2
    UPDATE_NODE_ALLOCATABLE = 4
    UPDATE_NODE_LABEL = 8
    UPDATE_NODE_TAINT = 16
    UPDATE_NODE_CONDITION = 32
    UPDATE_NODE_ANNOTATION = 64
    UPDATE_POD_LABEL = 128
    UPDATE_POD_SCALE_DOWN = 256
    UPDATE_POD_TOLERATION = 512
    UPDATE_POD_SCHEDULING_GATES_ELIMINATED = 1024
    UPDATE_POD_OTHER = 2048
    UPDATE = 4092  # every UPDATE_* bit
    ALL = 4095


class Resource:
    POD = "Pod"  # registrations for Pod match assigned and unscheduled pods alike
    ASSIGNED_POD = "AssignedPod"
    UNSCHEDULED_POD = "UnscheduledPod"
    NODE = "Node"
    PDB = "PodDisruptionBudget"
    WILDCARD = "*"


@dataclass(frozen=True)
class ClusterEvent:
    resource: str
    action: ActionType
    label: str = ""

    def matches(self, registered: ClusterEvent) -> bool:
        """Whether this (incoming) event is covered by a plugin's `registered` interest."""
        if registered.resource == Resource.WILDCARD:
            return True
        if registered.resource != self.resource and not (
            registered.resource == Resource.POD
            and self.resource in (Resource.ASSIGNED_POD, Resource.UNSCHEDULED_POD)
        ):
            return False
        return bool(registered.action & self.action)

    def __str__(self) -> str:
        return self.label or f"{self.resource}{self.action.name}"


# The events the queue itself raises.
ASSIGNED_POD_ADD = ClusterEvent(Resource.ASSIGNED_POD, ActionType.ADD, "AssignedPodAdd")
ASSIGNED_POD_DELETE = ClusterEvent(Resource.ASSIGNED_POD, ActionType.DELETE, "AssignedPodDelete")
UNSCHEDULED_POD_DELETE = ClusterEvent(Resource.UNSCHEDULED_POD, ActionType.DELETE, "UnscheduledPodDelete")
NODE_ADD = ClusterEvent(Resource.NODE, ActionType.ADD, "NodeAdd")
NODE_DELETE = ClusterEvent(Resource.NODE, ActionType.DELETE, "NodeDelete")
UNSCHEDULABLE_TIMEOUT = ClusterEvent(Resource.WILDCARD, ActionType.ALL, "UnschedulableTimeout")
FORCE_ACTIVATE = ClusterEvent(Resource.WILDCARD, ActionType.ALL, "ForceActivate")


class QueueingHint(IntEnum):
    SKIP = 0
    QUEUE = 1


# hint(pod being requeued, old object, new object): for pod events the objects are PodInfos,
# for node events node dicts; None on the missing side of an add or a delete.
HintFn = Callable[[PodInfo, Any, Any], QueueingHint]


@dataclass(frozen=True)
class ClusterEventWithHint:
    event: ClusterEvent
    hint: HintFn | None = None  # None: always worth retrying


def _labels(obj: Obj) -> Mapping[str, str]:
    labels: Mapping[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels


def node_scheduling_properties_change(new: Obj, old: Obj) -> list[ClusterEvent]:
    """The update events a node change amounts to (nodeSchedulingPropertiesChange)."""
    events: list[ClusterEvent] = []
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    old_status, new_status = old.get("status") or {}, new.get("status") or {}
    if bool(old_spec.get("unschedulable")) != bool(new_spec.get("unschedulable")):
        events.append(
            ClusterEvent(Resource.NODE, ActionType.UPDATE_NODE_TAINT, "NodeSpecUnschedulableChange")
        )
    if old_status.get("allocatable") != new_status.get("allocatable"):
        events.append(
            ClusterEvent(Resource.NODE, ActionType.UPDATE_NODE_ALLOCATABLE, "NodeAllocatableChange")
        )
    if _labels(old) != _labels(new):
        events.append(ClusterEvent(Resource.NODE, ActionType.UPDATE_NODE_LABEL, "NodeLabelChange"))
    if (old_spec.get("taints") or []) != (new_spec.get("taints") or []):
        events.append(ClusterEvent(Resource.NODE, ActionType.UPDATE_NODE_TAINT, "NodeTaintChange"))
    if _conditions(old_status) != _conditions(new_status):
        events.append(ClusterEvent(Resource.NODE, ActionType.UPDATE_NODE_CONDITION, "NodeConditionChange"))
    old_ann = (old.get("metadata") or {}).get("annotations") or {}
    new_ann = (new.get("metadata") or {}).get("annotations") or {}
    if old_ann != new_ann:
        events.append(ClusterEvent(Resource.NODE, ActionType.UPDATE_NODE_ANNOTATION, "NodeAnnotationChange"))
    return events


def _conditions(status: Obj) -> dict[str, str]:
    # Heartbeat timestamps change every few seconds and never matter to scheduling.
    return {str(c.get("type")): str(c.get("status")) for c in status.get("conditions") or []}


def _requests_decreased(old: PodInfo, new: PodInfo) -> bool:
    o, n = old.requests, new.requests
    if n.milli_cpu < o.milli_cpu or n.memory < o.memory or n.ephemeral_storage < o.ephemeral_storage:
        return True
    return any(n.scalar.get(k, 0) < v for k, v in o.scalar.items())


def pod_scheduling_properties_change(new: PodInfo, old: PodInfo, *, assigned: bool) -> list[ClusterEvent]:
    """The update events a pod change amounts to (podSchedulingPropertiesChange)."""
    resource = Resource.ASSIGNED_POD if assigned else Resource.UNSCHEDULED_POD
    prefix = "AssignedPod" if assigned else "UnscheduledPod"
    events: list[ClusterEvent] = []
    if old.labels != new.labels:
        events.append(ClusterEvent(resource, ActionType.UPDATE_POD_LABEL, f"{prefix}UpdatePodLabel"))
    if _requests_decreased(old, new):
        events.append(ClusterEvent(resource, ActionType.UPDATE_POD_SCALE_DOWN, f"{prefix}UpdatePodScaleDown"))
    if old.spec.get("tolerations") != new.spec.get("tolerations"):
        events.append(
            ClusterEvent(resource, ActionType.UPDATE_POD_TOLERATION, f"{prefix}UpdatePodToleration")
        )
    if old.spec.get("schedulingGates") and not new.spec.get("schedulingGates"):
        events.append(
            ClusterEvent(
                resource,
                ActionType.UPDATE_POD_SCHEDULING_GATES_ELIMINATED,
                f"{prefix}UpdatePodSchedulingGatesEliminated",
            )
        )
    if not events:
        events.append(ClusterEvent(resource, ActionType.UPDATE_POD_OTHER, f"{prefix}UpdatePodOther"))
    return events
