"""NodePorts: a pod's host ports must be free on the node."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controlplane.scheduler.cluster_events import (
    ActionType,
    ClusterEvent,
    ClusterEventWithHint,
    QueueingHint,
    Resource,
)
from controlplane.scheduler.cycle_state import CycleState
from controlplane.scheduler.framework import EnqueueExtensions, FilterPlugin, Framework, PreFilterPlugin
from controlplane.scheduler.nodeinfo import DEFAULT_BIND_ALL_HOST_IP, NodeInfo
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.status import Code, PreFilterResult, Status

__all__ = ["ERR_REASON", "NodePorts"]

ERR_REASON = "node(s) didn't have free ports for the requested pod ports"


def _conflicts(a: tuple[str, str, int], b: tuple[str, str, int]) -> bool:
    ip_a, proto_a, port_a = a
    ip_b, proto_b, port_b = b
    if port_a != port_b or (proto_a or "TCP") != (proto_b or "TCP"):
        return False
    ip_a, ip_b = ip_a or DEFAULT_BIND_ALL_HOST_IP, ip_b or DEFAULT_BIND_ALL_HOST_IP
    return ip_a == ip_b or DEFAULT_BIND_ALL_HOST_IP in (ip_a, ip_b)


class NodePorts(PreFilterPlugin, FilterPlugin, EnqueueExtensions):
    name = "NodePorts"

    def pre_filter(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status | None]:
        if not pod.host_ports:
            return None, Status(Code.SKIP)
        return None, None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        for ip, protocol, port in pod.host_ports:
            if node.used_ports.check_conflict(ip, protocol, port):
                return Status.of(Code.UNSCHEDULABLE, ERR_REASON)
        return None

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [
            ClusterEventWithHint(ClusterEvent(Resource.ASSIGNED_POD, ActionType.DELETE), self._pod_deleted),
            ClusterEventWithHint(ClusterEvent(Resource.NODE, ActionType.ADD)),
        ]

    @staticmethod
    def _pod_deleted(pod: PodInfo, old: Any, _new: Any) -> QueueingHint:
        if not isinstance(old, PodInfo) or not old.node_name:
            return QueueingHint.SKIP
        for theirs in old.host_ports:
            if any(_conflicts(theirs, ours) for ours in pod.host_ports):
                return QueueingHint.QUEUE
        return QueueingHint.SKIP


def new(_args: Mapping[str, Any], _fw: Framework) -> NodePorts:
    return NodePorts()
