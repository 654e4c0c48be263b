"""SchedulingGates: a pod with spec.schedulingGates waits outside the active queue until its
gates are removed."""

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
from controlplane.scheduler.framework import EnqueueExtensions, Framework, PreEnqueuePlugin
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.status import Code, Status

__all__ = ["SchedulingGates"]


class SchedulingGates(PreEnqueuePlugin, EnqueueExtensions):
    name = "SchedulingGates"

    def pre_enqueue(self, pod: PodInfo) -> Status | None:
        gates = [str(g.get("name", "")) for g in pod.spec.get("schedulingGates") or []]
        if not gates:
            return None
        return Status.of(
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE, f"waiting for scheduling gates: [{' '.join(gates)}]"
        )

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [
            ClusterEventWithHint(
                ClusterEvent(Resource.POD, ActionType.UPDATE_POD_SCHEDULING_GATES_ELIMINATED),
                self._gates_removed,
            )
        ]

    @staticmethod
    def _gates_removed(pod: PodInfo, _old: Any, new: Any) -> QueueingHint:
        if isinstance(new, PodInfo) and new.uid == pod.uid and not new.spec.get("schedulingGates"):
            return QueueingHint.QUEUE
        return QueueingHint.SKIP


def new(_args: Mapping[str, Any], _fw: Framework) -> SchedulingGates:
    return SchedulingGates()
