"""DefaultBinder: POST pods/<name>/binding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.api import errors
from controlplane.scheduler.cycle_state import CycleState
from controlplane.scheduler.framework import BindPlugin, Framework
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.status import Status

__all__ = ["DefaultBinder"]


class DefaultBinder(BindPlugin):
    name = "DefaultBinder"

    def __init__(self, fw: Framework) -> None:
        self.fw = fw

    async def bind(self, state: CycleState, pod: PodInfo, node: str) -> Status | None:
        if self.fw.api is None:
            return Status.error("no API to bind with")
        try:
            await self.fw.api.bind(pod.pod, node)
        except (errors.StatusError, OSError, TimeoutError) as exc:
            return Status.error(str(exc))
        return None


def new(_args: Mapping[str, Any], fw: Framework) -> DefaultBinder:
    return DefaultBinder(fw)
