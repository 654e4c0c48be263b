"""The scheduler's writes, over controlplane.client: bindings, pod status (the PodScheduled
condition and status.nominatedNodeName, patched only when they change, as upstream's
updatePod does) and preemption (DisruptionTarget condition, then delete)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.runtime import resources as R
from controlplane.controllers.runtime import rfc3339
from controlplane.scheduler.status import NominatingInfo, NominatingMode

__all__ = ["ClientAPI", "pod_status_patch", "truncate_message"]

log = logging.getLogger("pinnace.scheduler.api")

STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
NOTE_LENGTH_LIMIT = 1024

Obj = Mapping[str, Any]


def truncate_message(message: str) -> str:
    """Event notes are capped at 1024 characters; upstream cuts with a " ..." marker."""
    if len(message) <= NOTE_LENGTH_LIMIT:
        return message
    suffix = " ..."
    return message[: NOTE_LENGTH_LIMIT - len(suffix)] + suffix


def pod_status_patch(
    pod: Obj, condition: Mapping[str, Any] | None, nominating: NominatingInfo | None, now: str
) -> dict[str, Any] | None:
    """The status patch that sets `condition` and the nomination, or None when neither changes
    anything (podutil.UpdatePodCondition: the transition time moves only with the status)."""
    status = pod.get("status") or {}
    out: dict[str, Any] = {}
    if nominating is not None and nominating.mode == NominatingMode.OVERRIDE:
        wanted = nominating.nominated_node_name
        if (status.get("nominatedNodeName") or "") != wanted:
            out["nominatedNodeName"] = wanted or None
    if condition is not None:
        existing = next(
            (c for c in status.get("conditions") or [] if c.get("type") == condition["type"]), None
        )
        new = {"lastProbeTime": None, **condition, "lastTransitionTime": now}
        if existing is not None and existing.get("status") == new.get("status"):
            new["lastTransitionTime"] = existing.get("lastTransitionTime")
        fields = ("status", "reason", "message", "lastProbeTime", "lastTransitionTime")
        if existing is None or any(existing.get(f) != new.get(f) for f in fields):
            out["conditions"] = [new]
    return {"status": out} if out else None


class ClientAPI:
    def __init__(self, client: Client, *, now: Callable[[], datetime]) -> None:
        self._client = client
        self._now = now

    async def bind(self, pod: Obj, node: str) -> None:
        meta = pod.get("metadata") or {}
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
            },
            "target": {"kind": "Node", "name": node},
        }
        await self._client.request(
            "POST", R.PODS.url(meta.get("namespace"), str(meta.get("name")), "binding"), body=body
        )

    async def patch_pod_status(
        self, pod: Obj, condition: dict[str, Any] | None, nominating: NominatingInfo | None
    ) -> None:
        patch = pod_status_patch(pod, condition, nominating, rfc3339(self._now()))
        if patch is None:
            return
        meta = pod.get("metadata") or {}
        try:
            await self._client.patch(
                R.PODS,
                str(meta.get("name")),
                patch,
                str(meta.get("namespace")),
                subresource="status",
                patch_type=STRATEGIC_MERGE_PATCH,
            )
        except errors.NotFound:
            log.debug("pod %s/%s is gone; status not updated", meta.get("namespace"), meta.get("name"))

    async def preempt(self, victim: Obj, preemptor: Obj) -> None:
        meta = victim.get("metadata") or {}
        scheduler = (preemptor.get("spec") or {}).get("schedulerName") or "default-scheduler"
        condition = {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "PreemptionByScheduler",
            "message": f"{scheduler}: preempting to accommodate a higher priority pod",
        }
        try:
            await self.patch_pod_status(victim, condition, None)
            await self._client.delete(R.PODS, str(meta.get("name")), str(meta.get("namespace")))
        except errors.NotFound:
            log.debug("victim %s/%s is already gone", meta.get("namespace"), meta.get("name"))
