"""NodeName: a pod that names its node fits only that node."""

from __future__ import annotations

from collections.abc import Mapping
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
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.status import Code, Status

__all__ = ["ERR_REASON", "NodeName"]

ERR_REASON = "node(s) didn't match the requested node name"


class NodeName(FilterPlugin, EnqueueExtensions):
    name = "NodeName"

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        wanted = pod.node_name
        if not wanted or wanted == node.name:
            return None
        return Status.of(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON)

    def filter_nodes(
        self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], failed: dict[str, Status]
    ) -> list[NodeInfo]:
        if not pod.node_name:
            return nodes
        return super().filter_nodes(state, pod, nodes, failed)

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(ClusterEvent(Resource.NODE, ActionType.ADD), self._node_added)]

    @staticmethod
    def _node_added(pod: PodInfo, _old: Any, new: Any) -> QueueingHint:
        if new is None:
            return QueueingHint.SKIP
        name = (new.get("metadata") or {}).get("name")
        return QueueingHint.QUEUE if not pod.node_name or pod.node_name == name else QueueingHint.SKIP


def new(_args: Mapping[str, Any], _fw: Framework) -> NodeName:
    return NodeName()
