"""PrioritySort: higher priority first, then the pod that entered the queue earlier."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.scheduler.framework import Framework, QueueSortPlugin
from controlplane.scheduler.podinfo import QueuedPodInfo

__all__ = ["PrioritySort"]


class PrioritySort(QueueSortPlugin):
    name = "PrioritySort"

    def sort_key(self, pod: QueuedPodInfo) -> tuple[Any, ...]:
        return (-pod.pod_info.priority, pod.timestamp)

    def less(self, a: QueuedPodInfo, b: QueuedPodInfo) -> bool:
        return self.sort_key(a) < self.sort_key(b)


def new(_args: Mapping[str, Any], _fw: Framework) -> PrioritySort:
    return PrioritySort()
