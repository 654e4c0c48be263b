"""Node lifecycle controller (upstream pkg/controller/nodelifecycle): watches node health, marks
silent nodes Unknown, taints unhealthy nodes and marks their pods not ready.

- Every node_monitor_period the health of every node is judged (nodelifecycle_health): a node
  whose Ready heartbeat and Lease renewTime have both stood still for node_monitor_grace_period
  (node_startup_grace_period if it never reported) gets every condition set to Unknown.
- A node that is not ready is queued for the NoExecute taint (`node.kubernetes.io/not-ready` for
  False, `node.kubernetes.io/unreachable` for Unknown, each with timeAdded). Tainting is paced by
  one token bucket per zone: node_eviction_rate normally, the secondary rate (or none, in small
  clusters) for a partially disrupted zone, and nothing at all when every zone is fully disrupted
  (then the control plane itself is the likelier culprit, so the NoExecute taints come off).
  The taint eviction controller does the evicting.
- NoSchedule taints follow the conditions (TaintNodesByCondition) and spec.unschedulable.
- Pods on a node that stops being ready get Ready=False (MarkPodsNotReady).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.nodelifecycle_health import (
    NOT_READY_TAINT,
    UNREACHABLE_TAINT,
    NodeHealth,
    RateLimitedTimedQueue,
    TimedValue,
    ZoneState,
    add_or_update_taint,
    compute_zone_state,
    no_schedule_taints,
    remove_taints,
    taint_exists,
    taint_set_diff,
    try_update_node_health,
    zone_key,
)
from controlplane.controllers.podutil import status_condition
from controlplane.controllers.runtime import Controller, R, rfc3339, split_key

__all__ = ["NodeLifecycleController", "swap_node_taints"]

Obj = Mapping[str, Any]

NODE_LEASE_NAMESPACE = "kube-node-lease"
# Upstream NodeEvictionPeriod: how often the tainting queues are drained.
EVICTION_PERIOD = 0.1
HEALTH_UPDATE_RETRIES = 5
RETRY_SLEEP = 0.02
TAINT_UPDATE_RETRIES = 5
EXCLUDE_DISRUPTION_LABEL = "node.kubernetes.io/exclude-disruption"
# Reconciled labels: (primary, secondary); the secondary follows the stable one.
LABEL_PAIRS = (
    ("kubernetes.io/os", "beta.kubernetes.io/os"),
    ("kubernetes.io/arch", "beta.kubernetes.io/arch"),
)


def _node_ref(node: Obj) -> dict[str, Any]:
    meta = node.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": meta.get("name"), "uid": meta.get("uid")},
    }


async def swap_node_taints(
    client: Client, name: str, add: list[dict[str, Any]], remove: list[dict[str, Any]], now: datetime
) -> bool:
    """Upstream SwapNodeControllerTaint: add (with timeAdded now) and remove taints in one write,
    conditional on the node's resourceVersion, retried on conflict. False on failure."""
    stamped = [{**t, "timeAdded": rfc3339(now)} for t in add]
    for _ in range(TAINT_UPDATE_RETRIES):
        try:
            node = await client.get(R.NODES, name)
        except errors.NotFound:
            return False
        taints = list((node.get("spec") or {}).get("taints") or [])
        changed = False
        for taint in stamped:
            taints, updated = add_or_update_taint(taints, taint)
            changed = changed or updated
        taints, removed = remove_taints(taints, remove)
        if not changed and not removed:
            return True
        patch = {
            "metadata": {"resourceVersion": node["metadata"].get("resourceVersion")},
            "spec": {"taints": taints or None},
        }
        try:
            await client.patch(R.NODES, name, patch)
            return True
        except errors.Conflict:
            continue
        except errors.StatusError:
            return False
    return False


class NodeLifecycleController(Controller):
    name = "nodelifecycle"
    event_source = "node-controller"
    workers = 8

    def setup(self) -> None:
        config = self.ctx.config
        informers = self.ctx.informers
        self.nodes = informers.informer(R.NODES)
        self.pods = informers.informer(R.PODS)
        self.leases = informers.informer(R.LEASES)
        self.monitor_period = config.node_monitor_period
        self.monitor_grace = config.node_monitor_grace_period
        self.startup_grace = config.node_startup_grace_period
        self.eviction_qps = config.node_eviction_rate
        self.secondary_qps = config.secondary_node_eviction_rate
        self.large_cluster = config.large_cluster_size_threshold
        self.unhealthy_threshold = config.unhealthy_zone_threshold
        self.health: dict[str, NodeHealth] = {}
        self.known: dict[str, dict[str, Any]] = {}
        self.zone_states: dict[str, str] = {}
        self.tainters: dict[str, RateLimitedTimedQueue] = {}
        self.to_retry: set[str] = set()
        # Node keys have no "/", pod keys ("ns/name") always do.
        self.nodes.add_handler(self._on_node)
        self.pods.add_handler(self._on_pod)

    def _on_node(self, event: str, _old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if event == "DELETED":
            if new is not None:
                self.to_retry.discard(new["metadata"]["name"])
            return
        self.enqueue_obj(new)

    def _on_pod(self, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if event == "DELETED" or new is None:
            return
        node = (new.get("spec") or {}).get("nodeName")
        if node and (old is None or (old.get("spec") or {}).get("nodeName") != node):
            self.enqueue_obj(new)

    # -- the periodic passes ---------------------------------------------------------------

    async def run_extra(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._every(stop, self.monitor_period, self.monitor_node_health))
            tg.create_task(self._every(stop, EVICTION_PERIOD, self.no_execute_tainting_pass))

    async def _every(self, stop: asyncio.Event, period: float, fn: Any) -> None:
        while not stop.is_set():
            try:
                await fn()
            except (errors.StatusError, OSError, TimeoutError) as exc:
                self.log.warning("%s failed: %s", fn.__name__, exc)
            except Exception:
                # One bad pass must not stop the monitor; the next pass starts from scratch.
                self.log.exception("%s crashed", fn.__name__)
            await self.ctx.clock.sleep(period)

    def _now(self) -> datetime:
        return self.ctx.clock.now()

    def _tainter(self, node: Obj) -> RateLimitedTimedQueue:
        zone = zone_key(node)
        if zone not in self.zone_states:
            self.zone_states[zone] = ZoneState.INITIAL
            self.tainters[zone] = RateLimitedTimedQueue(self.eviction_qps, self.ctx.clock.monotonic)
        return self.tainters[zone]

    async def monitor_node_health(self) -> None:
        # Read-only cache objects: the health check works on its own copy.
        nodes = self.nodes.list()
        names = {n["metadata"]["name"] for n in nodes}
        for node in nodes:
            name = node["metadata"]["name"]
            if name not in self.known:
                self.ctx.recorder.event(
                    _node_ref(node),
                    "Normal",
                    "RegisteredNode",
                    f"Node {name} event: Registered Node {name} in Controller",
                )
                self.known[name] = node
                self._tainter(node)
                await self.mark_node_as_reachable(node)
            else:
                self._tainter(node)  # a node that moved into a new zone
        for name in [n for n in self.known if n not in names]:
            gone = self.known.pop(name)
            self.health.pop(name, None)
            self.ctx.recorder.event(
                _node_ref(gone),
                "Normal",
                "RemovingNode",
                f"Node {name} event: Removing Node {name} from Controller",
            )

        zone_conditions: dict[str, list[dict[str, Any] | None]] = {}
        semaphore = asyncio.Semaphore(8)

        async def one(node: dict[str, Any]) -> None:
            async with semaphore:
                result = await self._update_node(node)
            if result is None:
                return
            node, observed, current = result
            if EXCLUDE_DISRUPTION_LABEL not in (node["metadata"].get("labels") or {}):
                zone_conditions.setdefault(zone_key(node), []).append(current)
            if current is None:
                return
            await self.process_taint_based_eviction(node, observed)
            name = node["metadata"]["name"]
            pods = self.pods.by_index("node", name)
            went_down = current.get("status") != "True" and observed.get("status") == "True"
            if went_down:
                self.ctx.recorder.event(
                    _node_ref(node), "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady"
                )
            retry = name in self.to_retry and observed.get("status") != "True"
            if (went_down or retry) and not await self.mark_pods_not_ready(pods, name):
                self.to_retry.add(name)
                return
            self.to_retry.discard(name)

        await asyncio.gather(*(one(node) for node in nodes))
        await self.handle_disruption(zone_conditions, nodes)

    async def _update_node(
        self, node: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None] | None:
        """tryUpdateNodeHealth with upstream's retries: (node, observed Ready, current Ready)."""
        name = node["metadata"]["name"]
        for attempt in range(HEALTH_UPDATE_RETRIES):
            lease = self.leases.get(f"{NODE_LEASE_NAMESPACE}/{name}")
            update = try_update_node_health(
                node,
                self.health.get(name),
                lease,
                self._now(),
                monitor_grace=self.monitor_grace,
                startup_grace=self.startup_grace,
            )
            self.health[name] = update.health
            if update.write is None:
                return node, update.observed_ready, update.current_ready
            try:
                await self.ctx.client.request("PUT", R.NODES.url(None, name, "status"), body=update.write)
            except errors.StatusError as exc:
                self.log.warning("updating node %s failed: %s", name, exc)
                if attempt + 1 < HEALTH_UPDATE_RETRIES:
                    await self.ctx.clock.sleep(RETRY_SLEEP)
                try:
                    node = await self.ctx.client.get(R.NODES, name)
                except errors.StatusError:
                    return None
                continue
            assert update.health_after_write is not None
            self.health[name] = update.health_after_write
            return update.write, update.observed_ready, update.current_ready
        self.log.error("update health of node %s failed; skipping, no pods will be evicted", name)
        return None

    async def process_taint_based_eviction(self, node: dict[str, Any], observed: Obj) -> None:
        taints = (node.get("spec") or {}).get("taints") or []
        name = node["metadata"]["name"]
        status = observed.get("status")
        if status == "False":
            if taint_exists(taints, UNREACHABLE_TAINT):
                if not await swap_node_taints(
                    self.ctx.client, name, [dict(NOT_READY_TAINT)], [dict(UNREACHABLE_TAINT)], self._now()
                ):
                    self.log.error("failed to instantly swap UnreachableTaint to NotReadyTaint on %s", name)
            else:
                self.mark_node_for_tainting(node, "False")
        elif status == "Unknown":
            if taint_exists(taints, NOT_READY_TAINT):
                if not await swap_node_taints(
                    self.ctx.client, name, [dict(UNREACHABLE_TAINT)], [dict(NOT_READY_TAINT)], self._now()
                ):
                    self.log.error("failed to instantly swap NotReadyTaint to UnreachableTaint on %s", name)
            else:
                self.mark_node_for_tainting(node, "Unknown")
        elif status == "True":
            await self.mark_node_as_reachable(node)

    def mark_node_for_tainting(self, node: Obj, status: str) -> bool:
        tainter = self._tainter(node)
        taints = (node.get("spec") or {}).get("taints") or []
        name = node["metadata"]["name"]
        if (status == "False" and not taint_exists(taints, NOT_READY_TAINT)) or (
            status == "Unknown" and not taint_exists(taints, UNREACHABLE_TAINT)
        ):
            tainter.remove(name)
        return tainter.add(name, str(node["metadata"].get("uid", "")))

    async def mark_node_as_reachable(self, node: Obj) -> bool:
        taints = (node.get("spec") or {}).get("taints") or []
        name = node["metadata"]["name"]
        tainted = taint_exists(taints, UNREACHABLE_TAINT) or taint_exists(taints, NOT_READY_TAINT)
        if tainted and not await swap_node_taints(
            self.ctx.client, name, [], [dict(UNREACHABLE_TAINT), dict(NOT_READY_TAINT)], self._now()
        ):
            self.log.error("failed to remove NoExecute taints from node %s", name)
            return False
        return self._tainter(node).remove(name)

    async def no_execute_tainting_pass(self) -> None:
        for zone in list(self.tainters):
            await self.tainters[zone].try_process(self._taint_one)

    async def _taint_one(self, value: TimedValue) -> tuple[bool, float]:
        node = self.nodes.get(value.value)
        if node is None:
            return True, 0.0
        ready = status_condition(node.get("status"), "Ready")
        if ready is None:
            return False, 0.05
        if ready.get("status") == "False":
            add, opposite = NOT_READY_TAINT, UNREACHABLE_TAINT
        elif ready.get("status") == "Unknown":
            add, opposite = UNREACHABLE_TAINT, NOT_READY_TAINT
        else:
            return True, 0.0  # ready again: nothing to taint
        done = await swap_node_taints(
            self.ctx.client, value.value, [dict(add)], [dict(opposite)], self._now()
        )
        return done, 0.0

    async def handle_disruption(
        self, zone_conditions: dict[str, list[dict[str, Any] | None]], nodes: list[dict[str, Any]]
    ) -> None:
        new_states: dict[str, str] = {}
        all_fully_disrupted = True
        for zone, conditions in zone_conditions.items():
            _unhealthy, state = compute_zone_state(conditions, self.unhealthy_threshold)
            if state != ZoneState.FULL_DISRUPTION:
                all_fully_disrupted = False
            new_states[zone] = state
            self.zone_states.setdefault(zone, ZoneState.INITIAL)
        all_were_fully_disrupted = True
        for zone in list(self.zone_states):
            if zone not in zone_conditions:
                del self.zone_states[zone]
                continue
            if self.zone_states[zone] != ZoneState.FULL_DISRUPTION:
                all_were_fully_disrupted = False
                break
        if all_fully_disrupted and all_were_fully_disrupted:
            return
        if all_fully_disrupted:
            self.log.info("Controller detected that all Nodes are not-Ready. Entering master disruption mode")
            for node in nodes:
                await self.mark_node_as_reachable(node)
            for zone in self.zone_states:
                self._zone_tainter(zone).swap_limiter(0)
                self.zone_states[zone] = ZoneState.FULL_DISRUPTION
            return
        if all_were_fully_disrupted:
            self.log.info("Controller detected that some Nodes are Ready. Exiting master disruption mode")
            now = self._now()
            for node in nodes:
                health = self.health.get(node["metadata"]["name"])
                if health is not None:
                    health.probe_timestamp = now
                    health.ready_transition_timestamp = now
            for zone in self.zone_states:
                self._set_limiter(zone, len(zone_conditions.get(zone, [])), new_states.get(zone, ""))
                self.zone_states[zone] = new_states.get(zone, "")
            return
        for zone, state in list(self.zone_states.items()):
            new_state = new_states.get(zone, "")
            if state == new_state:
                continue
            self.log.info("zone %r is now in state %s", zone, new_state)
            self._set_limiter(zone, len(zone_conditions.get(zone, [])), new_state)
            self.zone_states[zone] = new_state

    def _zone_tainter(self, zone: str) -> RateLimitedTimedQueue:
        tainter = self.tainters.get(zone)
        if tainter is None:
            tainter = self.tainters[zone] = RateLimitedTimedQueue(self.eviction_qps, self.ctx.clock.monotonic)
        return tainter

    def _set_limiter(self, zone: str, size: int, state: str) -> None:
        tainter = self._zone_tainter(zone)
        if state == ZoneState.NORMAL:
            tainter.swap_limiter(self.eviction_qps)
        elif state == ZoneState.PARTIAL_DISRUPTION:
            # Large zones slow down; small ones stop: a partial outage there is likelier ours.
            tainter.swap_limiter(self.secondary_qps if size > self.large_cluster else 0)
        elif state == ZoneState.FULL_DISRUPTION:
            tainter.swap_limiter(self.eviction_qps)

    async def mark_pods_not_ready(self, pods: list[dict[str, Any]], node_name: str) -> bool:
        """Upstream MarkPodsNotReady: Ready=False on every pod of the node. False if any failed."""
        ok = True
        now = rfc3339(self._now())
        for pod in pods:
            if (pod.get("spec") or {}).get("nodeName") != node_name:
                continue
            status = copy.deepcopy(pod.get("status") or {})
            ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
            if ready is None or ready.get("status") == "False":
                continue
            ready["status"] = "False"
            ready["lastTransitionTime"] = now
            updated = {**pod, "status": status}
            ns, name = pod["metadata"].get("namespace", ""), pod["metadata"]["name"]
            try:
                await self.ctx.client.request("PUT", R.PODS.url(ns, name, "status"), body=updated)
            except errors.NotFound:
                continue
            except errors.StatusError as exc:
                self.log.info("failed to update status for pod %s/%s: %s", ns, name, exc)
                ok = False
                continue
            self.ctx.recorder.event(pod, "Warning", "NodeNotReady", "Node is not ready")
        return ok

    # -- per-node and per-pod work ---------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        if "/" in key:
            return await self._process_pod(key)
        node = self.nodes.get(key)
        if node is None:
            return None
        add, remove = taint_set_diff(no_schedule_taints(node), node)
        if (add or remove) and not await swap_node_taints(self.ctx.client, key, add, remove, self._now()):
            raise errors.InternalError(message=f"failed to swap taints of node {key}")
        await self._reconcile_labels(node)
        return None

    async def _reconcile_labels(self, node: Obj) -> None:
        labels = (node.get("metadata") or {}).get("labels") or {}
        wanted = {
            secondary: labels[primary]
            for primary, secondary in LABEL_PAIRS
            if primary in labels and labels.get(secondary) != labels[primary]
        }
        if wanted:
            await self.ctx.client.patch(R.NODES, node["metadata"]["name"], {"metadata": {"labels": wanted}})

    async def _process_pod(self, key: str) -> float | None:
        pod = self.pods.get(key)
        if pod is None:
            return None
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        health = self.health.get(node_name)
        if health is None or self.nodes.get(node_name) is None:
            return None
        ready = status_condition(health.status, "Ready")
        if ready is None or ready.get("status") == "True":
            return None
        if not await self.mark_pods_not_ready([dict(pod)], node_name):
            ns, name = split_key(key)
            raise errors.InternalError(message=f"unable to mark pod {ns}/{name} NotReady on node {node_name}")
        return None
