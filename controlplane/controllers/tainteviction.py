"""Taint eviction controller (upstream pkg/controller/tainteviction): deletes pods from nodes with
NoExecute taints they do not tolerate, at once, or tolerationSeconds after the taint was added.

Node changes (their NoExecute taints) and pod changes (tolerations, node) are the keys: a node
key has no "/", a pod key is "ns/name". Scheduled evictions live in an EvictionSchedule and are
fired by one loop on the controller's clock; removing the taint, or the pod going away, cancels
them. A deleted pod first gets the DisruptionTarget condition (DeletionByTaintManager).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controlplane.api import errors
from controlplane.controllers.podutil import condition
from controlplane.controllers.runtime import Controller, R, rfc3339, split_key
from controlplane.controllers.tainteviction_schedule import EvictionSchedule, decide, no_execute_taints

__all__ = ["TaintEvictionController"]

Obj = Mapping[str, Any]

DELETE_RETRIES = 5
RETRY_SLEEP = 0.01
STRATEGIC = "application/strategic-merge-patch+json"


def _pod_ref(key: str) -> dict[str, Any]:
    namespace, name = split_key(key)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}}


class TaintEvictionController(Controller):
    name = "taint-eviction-controller"
    event_source = "taint-eviction-controller"
    workers = 8

    def setup(self) -> None:
        self.pods = self.ctx.informers.informer(R.PODS)
        self.nodes = self.ctx.informers.informer(R.NODES)
        self.tainted: dict[str, list[dict[str, Any]]] = {}
        self.schedule = EvictionSchedule()
        self._wake = asyncio.Event()
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)

    def _on_pod(self, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if event == "MODIFIED" and old is not None and new is not None:
            old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
            if (old_spec.get("tolerations") or []) == (new_spec.get("tolerations") or []) and old_spec.get(
                "nodeName"
            ) == new_spec.get("nodeName"):
                return
        self.enqueue_obj(new if new is not None else old)

    def _on_node(self, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if (
            event == "MODIFIED"
            and old is not None
            and new is not None
            and no_execute_taints((old.get("spec") or {}).get("taints"))
            == no_execute_taints((new.get("spec") or {}).get("taints"))
        ):
            return
        self.enqueue_obj(new if new is not None else old)

    # -- deciding --------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        if "/" in key:
            self._handle_pod(key)
        else:
            self._handle_node(key)
        return None

    def _cancel(self, key: str) -> None:
        if self.schedule.cancel(key):
            namespace, name = split_key(key)
            self.ctx.recorder.event(
                _pod_ref(key),
                "Normal",
                "TaintManagerEviction",
                f"Cancelling deletion of Pod {namespace}/{name}",
            )

    def _handle_pod(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None:
            self._cancel(key)
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or node not in self.tainted:
            return  # untainted node: any eviction was cancelled when its taints went
        self._process_pod(key, pod, self.tainted[node], self.ctx.clock.now())

    def _handle_node(self, name: str) -> None:
        node = self.nodes.get(name)
        if node is None:
            self.tainted.pop(name, None)
            return
        taints = no_execute_taints((node.get("spec") or {}).get("taints"))
        if taints:
            self.tainted[name] = taints
        else:
            self.tainted.pop(name, None)
        pods = self.pods.by_index("node", name)
        if not taints:
            for pod in pods:
                self._cancel(f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}")
            return
        now = self.ctx.clock.now()
        for pod in pods:
            self._process_pod(
                f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}", pod, taints, now
            )

    def _process_pod(self, key: str, pod: Obj, taints: list[dict[str, Any]], now: datetime) -> None:
        decision = decide(taints, (pod.get("spec") or {}).get("tolerations") or [], now)
        if decision.action in ("cancel", "never"):
            self._cancel(key)
            return
        assert decision.at is not None
        pending = self.schedule.get(key)
        if pending is not None:
            if pending.fire_at <= decision.at:
                return  # an earlier (or the same) deadline stands
            self._cancel(key)
        elif key in self.schedule:
            return  # evicted already; wait for the pod to go
        self.schedule.add(key, now, decision.at)
        self._wake.set()

    # -- firing ----------------------------------------------------------------------------

    async def run_extra(self, stop: asyncio.Event) -> None:
        clock = self.ctx.clock
        async with asyncio.TaskGroup() as tg:
            while not stop.is_set():
                self._wake.clear()
                now = clock.now()
                for key in self.schedule.due(now):
                    tg.create_task(self._evict(key), name=f"evict-{key}")
                next_fire = self.schedule.next_fire()
                waiters: list[asyncio.Future[Any]] = [
                    asyncio.ensure_future(self._wake.wait()),
                    asyncio.ensure_future(stop.wait()),
                ]
                if next_fire is not None:
                    waiters.append(asyncio.ensure_future(clock.sleep((next_fire - now).total_seconds())))
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()

    async def _evict(self, key: str) -> None:
        namespace, name = split_key(key)
        self.log.info("Deleting pod %s", key)
        self.ctx.recorder.event(
            _pod_ref(key), "Normal", "TaintManagerEviction", f"Marking for deletion Pod {namespace}/{name}"
        )
        ok = False
        for _ in range(DELETE_RETRIES):
            try:
                await self._add_condition_and_delete(namespace, name)
                ok = True
                break
            except errors.NotFound:
                ok = True
                break
            except (errors.StatusError, OSError) as exc:
                self.log.warning("evicting %s failed: %s", key, exc)
                await self.ctx.clock.sleep(RETRY_SLEEP)
        self.schedule.finish(key, ok)

    async def _add_condition_and_delete(self, namespace: str, name: str) -> None:
        client = self.ctx.client
        pod = await client.get(R.PODS, name, namespace)
        current = condition(pod, "DisruptionTarget")
        wanted = {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
        }
        if current is None or any(current.get(k) != v for k, v in wanted.items()):
            transition = (
                current.get("lastTransitionTime")
                if current is not None and current.get("status") == "True"
                else rfc3339(self.ctx.clock.now())
            )
            patch = {
                "metadata": {"uid": pod["metadata"].get("uid")},
                "status": {"conditions": [{**wanted, "lastTransitionTime": transition}]},
            }
            await client.patch(R.PODS, name, patch, namespace, subresource="status", patch_type=STRATEGIC)
        await client.delete(R.PODS, name, namespace)
