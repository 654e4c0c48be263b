"""NodeUnschedulable: cordoned nodes (spec.unschedulable) take only pods that tolerate the
node.kubernetes.io/unschedulable:NoSchedule taint."""

from __future__ import annotations

from collections.abc import Mapping
from operator import attrgetter
from typing import Any

from controlplane.scheduler.cluster_events import (
    ActionType,
    ClusterEvent,
    ClusterEventWithHint,
    QueueingHint,
    Resource,
)
from controlplane.scheduler.cycle_state import CycleState
from controlplane.scheduler.framework import EnqueueExtensions, FilterPlugin, Framework
from controlplane.scheduler.node_columns import NodeWindow
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.status import Code, Status
from controlplane.scheduler.taints import NO_SCHEDULE, TAINT_NODE_UNSCHEDULABLE, tolerations_tolerate_taint

_UNSCHEDULABLE = attrgetter("unschedulable")
_UNSCHEDULABLE_COLUMN = ("NodeUnschedulable", "unschedulable")
__all__ = ["ERR_REASON_UNSCHEDULABLE", "NodeUnschedulable"]

ERR_REASON_UNSCHEDULABLE = "node(s) were unschedulable"
_TAINT = {"key": TAINT_NODE_UNSCHEDULABLE, "effect": NO_SCHEDULE}


def _tolerates(pod: PodInfo) -> bool:
    return tolerations_tolerate_taint(pod.tolerations, _TAINT)


class NodeUnschedulable(FilterPlugin, EnqueueExtensions):
    name = "NodeUnschedulable"

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.unschedulable or _tolerates(pod):
            return None
        return Status.of(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_UNSCHEDULABLE)

    def filter_nodes(
        self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], failed: dict[str, Status]
    ) -> list[NodeInfo]:
        if isinstance(nodes, NodeWindow):
            flags = nodes.values(_UNSCHEDULABLE_COLUMN, lambda missing: list(map(_UNSCHEDULABLE, missing)))
        else:
            flags = list(map(_UNSCHEDULABLE, nodes))
        if not any(flags) or _tolerates(pod):
            return nodes
        return super().filter_nodes(state, pod, nodes, failed)

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [
            ClusterEventWithHint(
                ClusterEvent(Resource.NODE, ActionType.ADD | ActionType.UPDATE_NODE_TAINT), self._node_changed
            ),
            ClusterEventWithHint(
                ClusterEvent(Resource.POD, ActionType.UPDATE_POD_TOLERATION), self._pod_changed
            ),
        ]

    @staticmethod
    def _node_changed(pod: PodInfo, old: Any, new: Any) -> QueueingHint:
        if new is None:
            return QueueingHint.SKIP
        was = old is not None and bool((old.get("spec") or {}).get("unschedulable"))
        now = bool((new.get("spec") or {}).get("unschedulable"))
        if old is not None and not was:
            return QueueingHint.SKIP  # it was schedulable already: this plugin did not reject on it
        return QueueingHint.QUEUE if not now else QueueingHint.SKIP

    @staticmethod
    def _pod_changed(pod: PodInfo, _old: Any, new: Any) -> QueueingHint:
        if isinstance(new, PodInfo) and new.uid == pod.uid and _tolerates(new):
            return QueueingHint.QUEUE
        return QueueingHint.SKIP


def new(_args: Mapping[str, Any], _fw: Framework) -> NodeUnschedulable:
    return NodeUnschedulable()
