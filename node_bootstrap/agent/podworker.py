"""The kubelet's pod worker for one simulated pod: feed the state machine, write what it says.

One task per pod. It wakes when the pod changes (watch) or when the simulation has something
due (a container exits, a readiness delay ends, a grace period runs out), advances `SimPod`,
appends its log lines, and writes the status through `pods/status` as a merge patch carrying
the resourceVersion it was computed from (a 409 re-reads the pod and recomputes). A pod being
deleted is stopped, given its terminal status and removed with gracePeriodSeconds=0 and a uid
precondition, which is what finally deletes it, as the kubelet's status manager does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from node_bootstrap.agent.clock import Clock, wait_event
from node_bootstrap.agent.kube import PODS, Api, is_conflict, is_not_found
from node_bootstrap.agent.logs import LogStore, PodLogs
from node_bootstrap.agent.pods import Backoff, SimPod

__all__ = ["PodHost", "PodWorker"]

log = logging.getLogger("pinnace.nodeagent.pods")

Obj = dict[str, Any]
MAX_WRITE_ATTEMPTS = 8


class PodHost(Protocol):
    """What a pod worker needs from its node."""

    name: str
    images: set[str]

    @property
    def host_ips(self) -> list[str]: ...

    async def pod_ips(self, uid: str) -> tuple[list[str], str]: ...

    def reserve_ips(self, uid: str, ips: list[str]) -> bool: ...

    def release_ips(self, uid: str) -> None: ...


def _rv(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class PodWorker:
    def __init__(
        self,
        pod: Obj,
        *,
        host: PodHost,
        api: Api,
        clock: Clock,
        logs: LogStore,
        backoff: Backoff,
    ) -> None:
        meta = pod.get("metadata") or {}
        self.uid = str(meta.get("uid", ""))
        self.namespace = str(meta.get("namespace", ""))
        self.name = str(meta.get("name", ""))
        self.pod = pod
        self._host = host
        self._api = api
        self._clock = clock
        self._logs = logs
        self._backoff = backoff
        self._changed = asyncio.Event()
        self.gone = False
        self.done = asyncio.Event()
        self._last_sent: Obj | None = None
        self._last_result: Any = None
        self._delete_sent = False
        self.sim: SimPod | None = None

    # -- inputs from the watch ---------------------------------------------------------------------

    def update(self, pod: Obj) -> None:
        if _rv(pod) < _rv(self.pod):
            return  # an older event than a write's response we already hold
        self.pod = pod
        self._changed.set()

    def remove(self) -> None:
        self.gone = True
        self._changed.set()

    # -- the loop ----------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        except Exception:
            # One pod's failure must not take the node down; the pod keeps its last status.
            log.exception("pod worker for %s/%s failed", self.namespace, self.name)
        finally:
            self._host.release_ips(self.uid)
            self._logs.remove(self.namespace, self.name, self.uid)
            self.done.set()

    def _now(self) -> float:
        return self._clock.now().timestamp()

    async def _run(self) -> None:
        now = self._now()
        sim = SimPod.adopt(
            self.pod, now, host_ips=self._host.host_ips, backoff=self._backoff, images=self._host.images
        )
        self.sim = sim
        spec = self.pod.get("spec") or {}
        names = tuple(
            str(c.get("name")) for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
        )
        logs = self._logs.register(self.namespace, self.name, self.uid, names)
        # A pod already finished when we found it keeps the status it has.
        adopted_terminal = sim.terminal
        if (
            sim.sandbox
            and sim.pod_ips
            and not sim.host_network
            and not self._host.reserve_ips(self.uid, sim.pod_ips)
        ):
            log.warning(
                "pod %s/%s keeps addresses %s outside this node's ranges",
                self.namespace,
                self.name,
                sim.pod_ips,
            )
        retry = 0.5
        while not self.gone:
            self._changed.clear()
            now = self._now()
            try:
                if await self._step(
                    sim, logs, now, write=not (adopted_terminal and sim.deleting_since is None)
                ):
                    continue
                retry = 0.5
            except Exception as exc:
                # The client already retried 429/5xx; wait for a change or a while, then redo.
                log.warning("pod %s/%s: %s; retrying in %.1fs", self.namespace, self.name, exc, retry)
                await wait_event(self._clock, self._changed, retry)
                retry = min(retry * 2, 30.0)
                continue
            deadline = sim.next_deadline(now)
            await wait_event(self._clock, self._changed, None if deadline is None else deadline - now)

    async def _step(self, sim: SimPod, logs: PodLogs, now: float, *, write: bool) -> bool:
        """One round; True when another round should follow at once."""
        sim.observe(self.pod, now)
        sim.advance(now)
        _flush(sim, logs)
        if write:
            await self._write_status(sim, now)
            if self.gone:
                return False
        if sim.needs_sandbox:
            if sim.host_network:
                sim.set_sandbox([], self._now())  # the node's own addresses
            else:
                ips, note = await self._host.pod_ips(self.uid)
                sim.set_sandbox(ips, self._now(), note)
            return True
        if sim.terminal:
            self._host.release_ips(self.uid)
        if sim.deletable and not self._delete_sent:
            await self._delete()
            return True
        return False

    async def _write_status(self, sim: SimPod, now: float) -> None:
        for _ in range(MAX_WRITE_ATTEMPTS):
            current = self.pod.get("status") or {}
            desired = sim.status(current, now)
            if self._unchanged(current, desired):
                return
            body = {
                "metadata": {"resourceVersion": (self.pod.get("metadata") or {}).get("resourceVersion")},
                "status": desired,
            }
            try:
                result = await self._api.patch(PODS, self.name, body, self.namespace, subresource="status")
            except Exception as exc:
                if is_not_found(exc):
                    self.gone = True
                    return
                if not is_conflict(exc):
                    raise
                if not await self._reread():
                    return
                sim.observe(self.pod, now)
                continue
            self._last_sent = desired
            self._last_result = result.get("status")
            self.update(result)
            return
        log.warning(
            "pod %s/%s: status write kept conflicting; will retry on the next change",
            self.namespace,
            self.name,
        )

    def _unchanged(self, current: Obj, desired: Obj) -> bool:
        """Nothing to write: the stored status already says it, or it is what our last write
        produced (the server may normalise what it stores, which must not cause a write loop).
        A status someone else changed since (the node lifecycle controller marking pods not
        ready) is written again, as the status manager's reconcile does."""
        if all(current.get(k) == _without_nulls(v) for k, v in desired.items()):
            return True
        return desired == self._last_sent and current == self._last_result

    async def _reread(self) -> bool:
        """Fetch the pod after a conflict; False when it is gone (or replaced by another uid)."""
        try:
            fresh = await self._api.get(PODS, self.name, self.namespace)
        except Exception as exc:
            if is_not_found(exc):
                self.gone = True
                return False
            raise
        if (fresh.get("metadata") or {}).get("uid") != self.uid:
            self.gone = True
            return False
        self.pod = fresh
        return True

    async def _delete(self) -> None:
        self._delete_sent = True
        options = {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}}
        try:
            await self._api.delete(PODS, self.name, self.namespace, options=options)
        except Exception as exc:
            if is_not_found(exc) or is_conflict(exc):
                self.gone = True
                return
            self._delete_sent = False
            raise


def _without_nulls(value: Any) -> Any:
    """What a merge patch stores: object keys with null values are dropped."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _flush(sim: SimPod, logs: PodLogs) -> None:
    for event in sim.take_events():
        buffer = logs.new_run(event.container) if event.new_run else logs.buffer(event.container)
        buffer.append(event.at, event.message)
        if event.end_run:
            buffer.close()
