"""The autoscaler's IO: every `interval`, read NodePools, Machines, Nodes and Pods, ask the
planner what to do, and do it by writing only the NodePool's `spec.replicas` and the Machines'
delete annotation.

Lists rather than informers: one pass every ten seconds reads each kind once, and a pass decides
from one consistent look at the cluster instead of caches that move under it. A pass is skipped
entirely (no Machine, Node or Pod list) while no NodePool autoscales.

Writes: replicas by JSON merge patch carrying the `resourceVersion` read, so that a concurrent
`kubectl scale` or operator write fails the patch with a Conflict instead of being overwritten;
the next pass replans from fresh data. A scale-down annotates the Machine first and then lowers
replicas (cluster-autoscaler's clusterapi provider does the same), withdrawing the annotation if
lowering fails, so the operator never removes a machine nobody chose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ccm.provisioning.api import ANNOTATION_DELETE_MACHINE, GROUP, MACHINES, NODEPOOLS, VERSION
from ccm.provisioning.autoscaler.planner import REASON_SCALE_DOWN, REASON_SCALE_UP, Plan, PoolPlan, plan
from controlplane.api import errors
from controlplane.client import Client, ResourcePath
from controlplane.controllers.runtime import Clock, EventBroadcaster, EventRecorder, RealClock, rfc3339
from controlplane.controllers.runtime import resources as R

__all__ = ["COMPONENT", "Autoscaler", "run_autoscaler"]

log = logging.getLogger("pinnace.autoscaler")

COMPONENT = "cluster-autoscaler"
NODEPOOLS_PATH = ResourcePath(GROUP, VERSION, NODEPOOLS, namespaced=False)
MACHINES_PATH = ResourcePath(GROUP, VERSION, MACHINES, namespaced=False)
# Events on every pod of a large scale-up would flood the store; the NodePool's event says it all.
MAX_POD_EVENTS = 50

Obj = dict[str, Any]


def _items(listing: Mapping[str, Any], kind: str, api_version: str) -> list[Obj]:
    items: list[Obj] = listing.get("items") or []
    for item in items:
        item.setdefault("kind", kind)
        item.setdefault("apiVersion", api_version)
    return items


class Autoscaler:
    """One pass at a time (`run_once`); remembers since when each node has been empty."""

    def __init__(self, client: Client, recorder: EventRecorder, clock: Clock) -> None:
        self.client = client
        self.recorder = recorder
        self.clock = clock
        self.empty_since: dict[str, datetime] = {}
        self._reported: set[str] = set()

    async def run_once(self) -> Plan | None:
        pools = _items(await self.client.list(NODEPOOLS_PATH), "NodePool", f"{GROUP}/{VERSION}")
        if not any(((p.get("spec") or {}).get("autoscaling") or {}).get("enabled") for p in pools):
            self.empty_since.clear()
            return None
        machines, nodes, pods = await asyncio.gather(
            self.client.list(MACHINES_PATH), self.client.list(R.NODES), self.client.list(R.PODS)
        )
        # Pure but not free on a large cluster: off the event loop, which may be the server's.
        result = await asyncio.to_thread(
            plan,
            pools,
            _items(machines, "Machine", f"{GROUP}/{VERSION}"),
            _items(nodes, "Node", "v1"),
            _items(pods, "Pod", "v1"),
            now=self.clock.now(),
            empty_since=dict(self.empty_since),
        )
        self.empty_since = result.empty_since
        for problem in result.problems:
            if problem not in self._reported:
                log.warning("%s", problem)
        self._reported = set(result.problems)
        by_name = {str(p["metadata"]["name"]): p for p in pools}
        pods_by_key = {
            f"{p['metadata'].get('namespace', '')}/{p['metadata']['name']}": p for p in pods["items"]
        }
        nodes_by_name = {str(n["metadata"]["name"]): n for n in nodes["items"]}
        for decision in result.pools:
            try:
                await self._apply(decision, by_name[decision.pool], pods_by_key, nodes_by_name)
            except errors.Conflict:
                log.info("NodePool %s changed during the pass; replanning next pass", decision.pool)
            except errors.StatusError as exc:
                log.warning("NodePool %s: could not apply %s: %s", decision.pool, decision.reason, exc)
        return result

    async def _apply(
        self,
        decision: PoolPlan,
        pool: Obj,
        pods_by_key: Mapping[str, Obj],
        nodes_by_name: Mapping[str, Obj],
    ) -> None:
        for machine in decision.unmark:
            log.info("NodePool %s: withdrawing the stale delete mark on Machine %s", decision.pool, machine)
            await self._annotate(machine, None)
        for machine in decision.mark:
            await self._annotate(machine, rfc3339(self.clock.now()))
        if decision.replicas != decision.current:
            try:
                await self.client.patch(
                    NODEPOOLS_PATH,
                    decision.pool,
                    {
                        "metadata": {"resourceVersion": decision.resource_version},
                        "spec": {"replicas": decision.replicas},
                    },
                )
            except errors.StatusError:
                for machine in decision.mark:
                    with contextlib.suppress(errors.StatusError, OSError):
                        await self._annotate(machine, None)
                raise
        self._record(decision, pool, pods_by_key, nodes_by_name)

    async def _annotate(self, machine: str, value: str | None) -> None:
        # A Machine already gone needs no mark.
        with contextlib.suppress(errors.NotFound):
            await self.client.patch(
                MACHINES_PATH, machine, {"metadata": {"annotations": {ANNOTATION_DELETE_MACHINE: value}}}
            )

    def _record(
        self,
        decision: PoolPlan,
        pool: Obj,
        pods_by_key: Mapping[str, Obj],
        nodes_by_name: Mapping[str, Obj],
    ) -> None:
        if decision.reason == REASON_SCALE_UP:
            # cluster-autoscaler's wording, on the pods and on the group that grew.
            message = (
                f"pod triggered scale-up: [{{{decision.pool} {decision.current}->{decision.replicas} "
                f"(max: {decision.max_replicas})}}]"
            )
            log.info(
                "Scale-up: NodePool %s %d -> %d for %d pod(s)",
                decision.pool,
                decision.current,
                decision.replicas,
                len(decision.pods),
            )
            self.recorder.event(
                pool,
                "Normal",
                REASON_SCALE_UP,
                f"Scale-up: setting group {decision.pool} size to {decision.replicas} instead of "
                f"{decision.current} (max: {decision.max_replicas}) for {len(decision.pods)} pod(s)",
            )
            for key in decision.pods[:MAX_POD_EVENTS]:
                pod = pods_by_key.get(key)
                if pod is not None:
                    self.recorder.event(pod, "Normal", REASON_SCALE_UP, message)
        elif decision.reason == REASON_SCALE_DOWN:
            for node_name, machine in zip(decision.removed_nodes, decision.mark, strict=True):
                log.info(
                    "Scale-down: removing empty node %s (Machine %s) of NodePool %s",
                    node_name,
                    machine,
                    decision.pool,
                )
                self.recorder.event(
                    pool,
                    "Normal",
                    REASON_SCALE_DOWN,
                    f"Scale-down: removing empty node {node_name!r} (Machine {machine}), setting group "
                    f"{decision.pool} size to {decision.replicas} instead of {decision.current}",
                )
                node = nodes_by_name.get(node_name)
                if node is not None:
                    self.recorder.event(node, "Normal", REASON_SCALE_DOWN, "marked the node as toBeDeleted")
        elif decision.replicas != decision.current:
            log.info("NodePool %s raised to its minReplicas %d", decision.pool, decision.replicas)
            self.recorder.event(
                pool,
                "Normal",
                "ScaledUpGroup",
                f"Scale-up: setting group {decision.pool} size to {decision.replicas} instead of "
                f"{decision.current} (minReplicas)",
            )


async def _sleep_or_stop(clock: Clock, stop: asyncio.Event, seconds: float) -> None:
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        stopper.cancel()


async def run_autoscaler(
    client: Client, stop: asyncio.Event, *, clock: Clock | None = None, interval: float = 10.0
) -> None:
    """Autoscale every NodePool that opts in until `stop` is set; errors of one pass are
    logged and the next pass starts from scratch."""
    clock = clock or RealClock()
    broadcaster = EventBroadcaster(client, clock=clock)
    autoscaler = Autoscaler(client, broadcaster.recorder(COMPONENT), clock)
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(broadcaster.run(stop))
        while not stop.is_set():
            try:
                await autoscaler.run_once()
            except (errors.StatusError, OSError, TimeoutError) as exc:
                log.warning("autoscaler pass failed: %s", exc)
            await _sleep_or_stop(clock, stop, interval)
    with contextlib.suppress(errors.StatusError, OSError):
        await broadcaster.flush()
