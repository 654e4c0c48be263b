"""Pod garbage collector (upstream pkg/controller/podgc).

Every `pod_gc_period` seconds (on the controller's clock) it force-deletes:
- terminated pods beyond `terminated_pod_gc_threshold`, oldest first (by creation, then name);
- terminating pods on nodes that are NotReady and tainted `node.kubernetes.io/out-of-service`;
- pods bound to nodes that no longer exist, once the node has been missing for the quarantine
  (`orphaned_pod_grace`, 40 s) and a live GET confirms it is gone (an informer that has not yet
  seen a new node must not cost that node its pods); these get the DisruptionTarget condition
  (reason DeletionByPodGC);
- terminating pods that were never scheduled.
A pod that is not yet terminal is marked Failed before its deletion (1.26+), so an orphan that
no kubelet will ever update does not stay Running in a controller's eyes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from controlplane.api import errors
from controlplane.controllers.podutil import condition_is_true, is_pod_terminal, parse_time
from controlplane.controllers.runtime import Controller, R, rfc3339

__all__ = ["PodGCController", "oldest_terminated_beyond_threshold"]

Obj = Mapping[str, Any]

GC_KEY = "podgc"
OUT_OF_SERVICE_TAINT = "node.kubernetes.io/out-of-service"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
_ZERO = datetime(1, 1, 1, tzinfo=UTC)


def is_pod_terminated(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Pending", "Running", "Unknown")


def _by_creation(pod: Obj) -> tuple[datetime, str]:
    meta = pod.get("metadata") or {}
    return (parse_time(meta.get("creationTimestamp")) or _ZERO, str(meta.get("name", "")))


def oldest_terminated_beyond_threshold(pods: Iterable[Obj], threshold: int) -> list[Obj]:
    """The terminated pods to delete so that at most `threshold` remain, oldest first."""
    terminated = [p for p in pods if is_pod_terminated(p)]
    excess = len(terminated) - threshold
    if excess <= 0:
        return []
    return sorted(terminated, key=_by_creation)[:excess]


def _has_taint(node: Obj, key: str) -> bool:
    return any(t.get("key") == key for t in (node.get("spec") or {}).get("taints") or [])


class PodGCController(Controller):
    name = "podgc"
    event_source = "pod-garbage-collector"
    workers = 1

    def setup(self) -> None:
        self.pods = self.ctx.informers.informer(R.PODS)
        self.nodes = self.ctx.informers.informer(R.NODES)
        # node name -> monotonic time its quarantine ends (a delaying queue keeps the earliest).
        self.quarantine: dict[str, float] = {}
        self.enqueue(GC_KEY)

    async def reconcile(self, key: str) -> float | None:
        await self.gc()
        return float(self.ctx.config.pod_gc_period)

    async def gc(self) -> None:
        pods = self.pods.list()
        nodes = self.nodes.list()
        threshold = int(self.ctx.config.terminated_pod_gc_threshold)
        if threshold > 0:
            await self._gc_terminated(pods, threshold)
        await self._gc_terminating(pods)
        await self._gc_orphaned(pods, nodes)
        await self._gc_unscheduled_terminating(pods)

    async def _gc_terminated(self, pods: Sequence[Obj], threshold: int) -> None:
        victims = oldest_terminated_beyond_threshold(pods, threshold)
        if victims:
            self.log.info("garbage collecting %d pods", len(victims))
        for pod in victims:
            await self._mark_failed_and_delete(pod)

    async def _gc_terminating(self, pods: Sequence[Obj]) -> None:
        victims = []
        for pod in pods:
            if not (pod.get("metadata") or {}).get("deletionTimestamp"):
                continue
            node = self.nodes.get(str((pod.get("spec") or {}).get("nodeName") or ""))
            if node is None:
                continue
            if not condition_is_true(node, "Ready") and _has_taint(node, OUT_OF_SERVICE_TAINT):
                victims.append(pod)
        for pod in sorted(victims, key=_by_creation):
            await self._mark_failed_and_delete(pod)

    async def _gc_orphaned(self, pods: Sequence[Obj], nodes: Sequence[Obj]) -> None:
        existing = {str(n["metadata"]["name"]) for n in nodes}
        now = self.ctx.clock.monotonic()
        grace = float(self.ctx.config.orphaned_pod_grace)
        for pod in pods:
            node = str((pod.get("spec") or {}).get("nodeName") or "")
            if node and node not in existing:
                self.quarantine.setdefault(node, now + grace)
        deleted: set[str] = set()
        for node, due in list(self.quarantine.items()):
            if due > now:
                continue
            del self.quarantine[node]
            if node in existing:
                continue
            try:
                await self.ctx.client.get(R.NODES, node)
            except errors.NotFound:
                deleted.add(node)
            except (errors.StatusError, OSError) as exc:
                # Checked again on a later pass if it is still missing then.
                self.log.warning("getting node %s failed: %s", node, exc)
        for pod in pods:
            if str((pod.get("spec") or {}).get("nodeName") or "") not in deleted:
                continue
            self.log.info(
                "found orphaned pod %s/%s assigned to node %s, deleting",
                pod["metadata"].get("namespace"),
                pod["metadata"]["name"],
                pod["spec"]["nodeName"],
            )
            cond = {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByPodGC",
                "message": "PodGC: node no longer exists",
                "lastTransitionTime": rfc3339(self.ctx.clock.now()),
            }
            await self._mark_failed_and_delete(pod, cond)

    async def _gc_unscheduled_terminating(self, pods: Sequence[Obj]) -> None:
        for pod in pods:
            meta = pod.get("metadata") or {}
            if not meta.get("deletionTimestamp") or (pod.get("spec") or {}).get("nodeName"):
                continue
            self.log.info(
                "found unscheduled terminating pod %s/%s, deleting", meta.get("namespace"), meta["name"]
            )
            await self._mark_failed_and_delete(pod)

    async def _mark_failed_and_delete(self, pod: Obj, cond: dict[str, Any] | None = None) -> None:
        meta = pod["metadata"]
        name, namespace = str(meta["name"]), str(meta.get("namespace") or "")
        status: dict[str, Any] = {}
        if cond is not None:
            status["conditions"] = [cond]
        if not is_pod_terminal(pod):
            status["phase"] = "Failed"
        try:
            if status:
                await self.ctx.client.patch(
                    R.PODS,
                    name,
                    {"status": status},
                    namespace,
                    subresource="status",
                    patch_type=STRATEGIC_MERGE_PATCH,
                    params={"fieldManager": "PodGC"},
                )
            await self.ctx.client.delete(R.PODS, name, namespace, options={"gracePeriodSeconds": 0})
        except errors.NotFound:
            return
        except (errors.StatusError, OSError) as exc:
            self.log.warning("deleting pod %s/%s failed: %s", namespace, name, exc)
