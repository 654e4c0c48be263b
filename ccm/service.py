"""Service controller (k8s.io/cloud-provider controllers/service): a cloud load balancer for every
Service of type LoadBalancer that has no `spec.loadBalancerClass`, or ours (`pinnace.dev/cloud`).

- The `service.kubernetes.io/load-balancer-cleanup` finalizer goes on before anything is made in
  the cloud, and comes off only after `ensure_load_balancer_deleted` succeeded: a Service cannot
  vanish leaving its load balancer behind.
- `status.loadBalancer.ingress` is written through the status subresource.
- The hosts are upstream's stable node set (KEP-3458): every Node of ours not being deleted, not
  labelled `node.kubernetes.io/exclude-from-external-load-balancers`, not tainted for deletion by
  the autoscaler; readiness does not count (the cloud's health checks judge it), so a cluster
  whose kubelets all miss heartbeats does not empty every load balancer. Arrival, departure, the
  exclusion label or a providerID changing update every load balancer whose hosts changed, as
  does a resync every `nodeSyncPeriod` (100 s).
- Switching a Service away from LoadBalancer, or deleting it, deletes the load balancer.
- Events as upstream: EnsuringLoadBalancer, EnsuredLoadBalancer, SyncLoadBalancerFailed,
  DeletingLoadBalancer, DeletedLoadBalancer, UpdatedLoadBalancer, UpdateLoadBalancerFailed,
  UnAvailableLoadBalancer, DeleteLoadBalancerFailed.
- Failures back off 5 s -> 300 s per Service (upstream minRetryDelay/maxRetryDelay); a failure a
  retry cannot fix (an invalid annotation, an unsupported shape, a quota) waits the full 300 s
  unless the Service changes, and also shows on the Service as a `LoadBalancerProvisioned`
  condition saying what is wrong.

Only Nodes whose providerID belongs to this cloud are load balancer targets: a target is an
instance, and a Node the cloud does not know cannot be one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
from collections.abc import Mapping, Sequence
from typing import Any

from ccm.base import CloudController
from ccm.nodeutil import (
    LABEL_EXCLUDE_FROM_LB,
    TAINT_TO_BE_DELETED,
    has_taint,
    node_ref,
    provider_id,
)
from ccm.settings import CloudSettings, cloud_settings
from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.runtime import R, WorkQueue, rfc3339
from providers.capabilities import LoadBalancers
from providers.errors import RETRYABLE, CloudError, InvalidConfiguration
from providers.model import LoadBalancerService, LoadBalancerStatus, ServicePort

__all__ = [
    "CONDITION_TYPE",
    "FINALIZER",
    "NODES_KEY",
    "ServiceController",
    "fetch_service",
    "load_balancer_service",
    "needs_cleanup",
    "needs_update",
    "wants_load_balancer",
]

Obj = Mapping[str, Any]

FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
NODES_KEY = "\x00nodes"  # never a Service key: "sync the node set of every load balancer"
CONDITION_TYPE = "LoadBalancerProvisioned"
DELETED, ENSURED = "deleted", "ensured"


def _spec(svc: Obj) -> Mapping[str, Any]:
    return svc.get("spec") or {}


def _meta(svc: Obj) -> Mapping[str, Any]:
    return svc.get("metadata") or {}


def wants_load_balancer(svc: Obj, our_class: str) -> bool:
    spec = _spec(svc)
    cls = spec.get("loadBalancerClass")
    return spec.get("type") == "LoadBalancer" and (cls is None or cls == our_class)


def has_finalizer(svc: Obj) -> bool:
    return FINALIZER in (_meta(svc).get("finalizers") or [])


def needs_cleanup(svc: Obj, our_class: str) -> bool:
    """The finalizer is ours to honour: the Service is going away or no longer wants a load balancer."""
    if not has_finalizer(svc):
        return False
    return bool(_meta(svc).get("deletionTimestamp")) or not wants_load_balancer(svc, our_class)


def _ports_for_lb(svc: Obj) -> list[tuple[Any, ...]]:
    return [
        (
            p.get("name"),
            p.get("protocol", "TCP"),
            p.get("port"),
            p.get("nodePort"),
            p.get("targetPort"),
            p.get("appProtocol"),
        )
        for p in _spec(svc).get("ports") or []
    ]


def needs_update(old: Obj, new: Obj, our_class: str) -> list[tuple[str, str]] | None:
    """Upstream needsUpdate: None when the load balancer need not change, otherwise the Normal
    Events (reason, message) upstream records for the change (possibly none)."""
    was, wants = wants_load_balancer(old, our_class), wants_load_balancer(new, our_class)
    if not was and not wants:
        return None
    o, n = _spec(old), _spec(new)
    if was != wants:
        return [("Type", f"{o.get('type')} -> {n.get('type')}")]
    checks: list[tuple[bool, str, str]] = [
        (
            o.get("loadBalancerSourceRanges") != n.get("loadBalancerSourceRanges"),
            "LoadBalancerSourceRanges",
            f"{o.get('loadBalancerSourceRanges') or []} -> {n.get('loadBalancerSourceRanges') or []}",
        ),
        (_ports_for_lb(old) != _ports_for_lb(new), "", ""),
        (o.get("sessionAffinity") != n.get("sessionAffinity"), "", ""),
        (o.get("sessionAffinityConfig") != n.get("sessionAffinityConfig"), "", ""),
        (
            o.get("loadBalancerIP") != n.get("loadBalancerIP"),
            "LoadbalancerIP",
            f"{o.get('loadBalancerIP', '')} -> {n.get('loadBalancerIP', '')}",
        ),
        (
            (o.get("externalIPs") or []) != (n.get("externalIPs") or []),
            "ExternalIP",
            f"Count: {len(o.get('externalIPs') or [])} -> {len(n.get('externalIPs') or [])}",
        ),
        ((_meta(old).get("annotations") or {}) != (_meta(new).get("annotations") or {}), "", ""),
        (
            _meta(old).get("uid") != _meta(new).get("uid"),
            "UID",
            f"{_meta(old).get('uid')} -> {_meta(new).get('uid')}",
        ),
        (
            o.get("externalTrafficPolicy") != n.get("externalTrafficPolicy"),
            "ExternalTrafficPolicy",
            f"{o.get('externalTrafficPolicy')} -> {n.get('externalTrafficPolicy')}",
        ),
        (
            o.get("healthCheckNodePort") != n.get("healthCheckNodePort"),
            "HealthCheckNodePort",
            f"{o.get('healthCheckNodePort')} -> {n.get('healthCheckNodePort')}",
        ),
        (
            len(o.get("ipFamilies") or []) != len(n.get("ipFamilies") or []),
            "IPFamilies",
            f"Count: {len(o.get('ipFamilies') or [])} -> {len(n.get('ipFamilies') or [])}",
        ),
    ]
    for changed, reason, message in checks:
        if changed:
            return [(reason, message)] if reason else []
    return None


def load_balancer_service(svc: Obj) -> LoadBalancerService:
    """The Service as providers see it; shapes no cloud load balancer can serve are refused here,
    before anything is made."""
    meta, spec = _meta(svc), _spec(svc)
    ports = []
    for p in spec.get("ports") or []:
        node_port = int(p.get("nodePort") or 0)
        if not node_port:
            raise InvalidConfiguration(
                f"port {p.get('name') or p.get('port')} has no nodePort: load balancers forward to "
                "NodePorts, so spec.allocateLoadBalancerNodePorts=false is not supported"
            )
        ports.append(
            ServicePort(
                name=str(p.get("name") or ""),
                protocol=str(p.get("protocol") or "TCP"),
                port=int(p["port"]),
                node_port=node_port,
            )
        )
    return LoadBalancerService(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        ports=tuple(ports),
        annotations=dict(meta.get("annotations") or {}),
        load_balancer_source_ranges=tuple(spec.get("loadBalancerSourceRanges") or ()),
        external_traffic_policy=str(spec.get("externalTrafficPolicy") or "Cluster"),
        health_check_node_port=int(spec.get("healthCheckNodePort") or 0),
        session_affinity=str(spec.get("sessionAffinity") or "None"),
        load_balancer_ip=str(spec.get("loadBalancerIP") or ""),
    )


def _included(node: Obj) -> bool:
    """Upstream nodeIncludedPredicate: the exclusion label, parsed as a Go bool; a value that is
    not one excludes the node too."""
    labels = _meta(node).get("labels") or {}
    if LABEL_EXCLUDE_FROM_LB not in labels:
        return True
    return str(labels[LABEL_EXCLUDE_FROM_LB]) in {"0", "f", "F", "false", "FALSE", "False"}


def _host_set(hosts: Sequence[Obj]) -> frozenset[tuple[str, str]]:
    """Upstream nodesSufficientlyEqual: the hosts' names and providerIDs."""
    return frozenset((str(h["metadata"]["name"]), provider_id(h)) for h in hosts)


def _ingress(status: LoadBalancerStatus) -> list[dict[str, str]]:
    out = []
    for entry in status.ingress:
        item = {}
        if entry.ip:
            item["ip"] = entry.ip
        if entry.hostname:
            item["hostname"] = entry.hostname
        out.append(item)
    return out


def _current_ingress(svc: Obj) -> list[dict[str, str]]:
    lb = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [{k: str(v) for k, v in e.items() if k in ("ip", "hostname") and v} for e in lb]


class ServiceController(CloudController):
    name = "service"
    event_source = "service-controller"
    workers = 4

    def setup(self) -> None:
        self.settings: CloudSettings = cloud_settings(self.ctx)
        self.balancers: LoadBalancers = self.settings.provider.require(
            self.settings.provider.load_balancers, "load balancers"
        )
        self.queue = WorkQueue(
            clock=self.ctx.clock,
            base_delay=self.settings.service_min_retry_delay,
            max_delay=self.settings.service_max_retry_delay,
        )
        self.give_up_delay = self.settings.service_max_retry_delay
        self.cls = self.settings.load_balancer_class
        # The last Service synced per key: to delete a load balancer whose Service vanished
        # without our finalizer, and the node names each load balancer was last given.
        self.cache: dict[str, Obj] = {}
        self.synced_hosts: dict[str, frozenset[tuple[str, str]]] = {}
        self._locks: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self.services = self.ctx.informers.informer(R.SERVICES)
        self.nodes = self.ctx.informers.informer(R.NODES)
        self.services.add_handler(self._on_service)
        self.nodes.add_handler(self._on_node)

    # -- events -------------------------------------------------------------------------------

    def _on_service(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "DELETED":
            self.enqueue_obj(dict(old or new or {}) or None)
            return
        if new is None:
            return
        if old is None:
            if wants_load_balancer(new, self.cls) or needs_cleanup(new, self.cls):
                self.enqueue_obj(dict(new))
            return
        changes = needs_update(old, new, self.cls)
        if changes is not None:
            for reason, message in changes:
                self.ctx.recorder.event(new, "Normal", reason, message)
        if changes is not None or needs_cleanup(new, self.cls):
            self.enqueue_obj(dict(new))

    def _on_node(self, event: str, old: Obj | None, new: Obj | None) -> None:
        # Upstream shouldSyncUpdatedNode: the exclusion label or the providerID changed. Taints
        # and deletion are picked up by the next sync without forcing one (connection draining).
        if (
            event != "MODIFIED"
            or old is None
            or new is None
            or _included(old) != _included(new)
            or provider_id(old) != provider_id(new)
        ):
            self.enqueue(NODES_KEY)

    def hosts(self, svc: Obj) -> list[Obj]:
        """Upstream's stableNodeSetPredicates (not deleted, not excluded, not tainted for deletion),
        and an instance of ours. Readiness is not one of them: see the module docstring."""
        chosen = [
            node
            for node in self.nodes.list()
            if not _meta(node).get("deletionTimestamp")
            and _included(node)
            and not has_taint(node, TAINT_TO_BE_DELETED)
            and self.settings.owns_provider_id(provider_id(node))
        ]
        return sorted(chosen, key=lambda n: str(n["metadata"]["name"]))

    async def run_extra(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sleep_or_stop(stop, self.settings.node_sync_period)
            self.enqueue(NODES_KEY)

    # -- one Service ----------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        if key == NODES_KEY:
            await self.sync_nodes()
            return None
        async with self._locks[key]:
            svc = self.services.get(key)
            if svc is None:
                cached = self.cache.pop(key, None)
                self.synced_hosts.pop(key, None)
                if cached is not None and wants_load_balancer(cached, self.cls):
                    await self._delete_vanished(cached)
                return None
            self.cache[key] = svc
            try:
                if await self._sync(svc) == DELETED:
                    self.cache.pop(key, None)  # done: its disappearance needs no second delete
            except CloudError as exc:
                self.ctx.recorder.event(
                    svc, "Warning", "SyncLoadBalancerFailed", f"Error syncing load balancer: {exc}"
                )
                if not isinstance(exc, RETRYABLE):
                    await self._set_condition(svc, "False", type(exc).__name__, str(exc))
                raise
        return None

    async def _sync(self, svc: Obj) -> str:
        """Upstream syncLoadBalancerIfNeeded; returns which of DELETED or ENSURED it did."""
        cluster_id = self.settings.cluster_id
        key = f"{_meta(svc).get('namespace')}/{_meta(svc).get('name')}"
        if not wants_load_balancer(svc, self.cls) or needs_cleanup(svc, self.cls):
            target = _cleanup_target(svc)
            try:
                exists = await self.balancers.get_load_balancer(cluster_id, target) is not None
            except CloudError as exc:
                raise _context(exc, "failed to check if load balancer exists before cleanup") from exc
            if not exists and not has_finalizer(svc):
                return DELETED  # never ours: the finalizer goes on before anything is made
            if exists:
                self.ctx.recorder.event(svc, "Normal", "DeletingLoadBalancer", "Deleting load balancer")
            try:
                # Even when no load balancer shows: pieces a crash left half-made (a target group
                # without its load balancer) must not outlive the finalizer.
                await self.balancers.ensure_load_balancer_deleted(cluster_id, target)
            except CloudError as exc:
                raise _context(exc, "failed to delete load balancer") from exc
            self.synced_hosts.pop(key, None)
            await self._set_finalizer(svc, present=False)
            self.ctx.recorder.event(svc, "Normal", "DeletedLoadBalancer", "Deleted load balancer")
            if _current_ingress(svc):
                await self._patch_status(svc, {"loadBalancer": {"ingress": None}})
            return DELETED
        self.ctx.recorder.event(svc, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer")
        try:
            target = load_balancer_service(svc)
        except InvalidConfiguration as exc:
            raise _context(exc, "failed to ensure load balancer") from exc
        # Before anything exists in the cloud: the Service cannot go without us cleaning up.
        await self._set_finalizer(svc, present=True)
        hosts = self.hosts(svc)
        if not hosts:
            self.ctx.recorder.event(
                svc, "Warning", "UnAvailableLoadBalancer", "There are no available nodes for LoadBalancer"
            )
        try:
            status = await self.balancers.ensure_load_balancer(
                cluster_id, target, [node_ref(h) for h in hosts]
            )
        except CloudError as exc:
            raise _context(exc, "failed to ensure load balancer") from exc
        self.synced_hosts[key] = _host_set(hosts)
        if _host_set(self.hosts(svc)) != self.synced_hosts[key]:
            # Nodes came or went while the load balancer was being made; the node sync that
            # ran meanwhile skipped it (it had no hosts yet, or held the lock), so sync again.
            self.enqueue(NODES_KEY)
        self.ctx.recorder.event(svc, "Normal", "EnsuredLoadBalancer", "Ensured load balancer")
        patch: dict[str, Any] = {}
        wanted = _ingress(status)
        if wanted != _current_ingress(svc):
            patch["loadBalancer"] = {"ingress": wanted or None}
        condition = _condition(svc)
        if condition is not None and condition.get("status") != "True":
            patch["conditions"] = self._conditions(
                svc, "True", "EnsuredLoadBalancer", "Ensured load balancer"
            )
        if patch:
            await self._patch_status(svc, patch)
        return ENSURED

    async def _delete_vanished(self, svc: Obj) -> None:
        """A Service gone without our finalizer (it never got one): delete what may exist."""
        self.ctx.recorder.event(svc, "Normal", "DeletingLoadBalancer", "Deleting load balancer")
        try:
            await self.balancers.ensure_load_balancer_deleted(self.settings.cluster_id, _cleanup_target(svc))
        except CloudError as exc:
            self.ctx.recorder.event(
                svc, "Warning", "DeleteLoadBalancerFailed", f"Error deleting load balancer: {exc}"
            )
            key = f"{_meta(svc).get('namespace')}/{_meta(svc).get('name')}"
            self.cache[key] = svc  # so that the retry knows what to delete
            raise
        self.ctx.recorder.event(svc, "Normal", "DeletedLoadBalancer", "Deleted load balancer")

    async def _set_finalizer(self, svc: Obj, *, present: bool) -> None:
        """Add or remove ours, compare-and-swap on a fresh read (other finalizers are kept)."""
        if has_finalizer(svc) == present:
            return
        namespace, name = str(_meta(svc).get("namespace")), str(_meta(svc).get("name"))
        current: Obj = svc
        for _ in range(5):
            finalizers = [f for f in _meta(current).get("finalizers") or [] if f != FINALIZER]
            if present:
                finalizers.append(FINALIZER)
            patch = {
                "metadata": {
                    "finalizers": finalizers or None,
                    "resourceVersion": _meta(current).get("resourceVersion"),
                }
            }
            try:
                await self.ctx.client.patch(R.SERVICES, name, patch, namespace)
                return
            except errors.NotFound:
                if present:
                    raise
                return
            except errors.Conflict:
                fresh = await fetch_service(self.ctx.client, namespace, name)
                if fresh is None:
                    if present:
                        raise
                    return
                current = fresh
                if has_finalizer(current) == present:
                    return
        raise errors.Conflict(message=f"service {namespace}/{name}: too many conflicts on its finalizers")

    async def _patch_status(self, svc: Obj, status: dict[str, Any]) -> None:
        with contextlib.suppress(errors.NotFound):  # gone right after the finalizer came off
            await self.ctx.client.patch(
                R.SERVICES,
                str(_meta(svc)["name"]),
                {"status": status},
                str(_meta(svc)["namespace"]),
                subresource="status",
            )

    def _conditions(self, svc: Obj, status: str, reason: str, message: str) -> list[dict[str, Any]]:
        existing = [dict(c) for c in (svc.get("status") or {}).get("conditions") or []]
        old = _condition(svc)
        now = rfc3339(self.ctx.clock.now())
        cond = {
            "type": CONDITION_TYPE,
            "status": status,
            "reason": reason,
            "message": message[:32768],
            "lastTransitionTime": old.get("lastTransitionTime", now)
            if old and old.get("status") == status
            else now,
            "observedGeneration": _meta(svc).get("generation", 0),
        }
        return [c for c in existing if c.get("type") != CONDITION_TYPE] + [cond]

    async def _set_condition(self, svc: Obj, status: str, reason: str, message: str) -> None:
        old = _condition(svc)
        if (
            old
            and old.get("status") == status
            and old.get("reason") == reason
            and old.get("message") == message
        ):
            return
        try:
            await self._patch_status(svc, {"conditions": self._conditions(svc, status, reason, message)})
        except errors.StatusError as exc:
            self.log.warning(
                "service %s: recording the failure in its status failed: %s", _meta(svc).get("name"), exc
            )

    # -- the node set -------------------------------------------------------------------------

    async def sync_nodes(self) -> None:
        """Upstream syncNodes: UpdateLoadBalancer for every load balancer whose hosts changed, by
        `workers` at a time; one that fails is retried through its Service's own sync (which
        ensures it whole)."""
        limit = asyncio.Semaphore(max(1, self.workers))

        async def one(key: str) -> None:
            async with limit:
                await self._sync_hosts(key)

        async with asyncio.TaskGroup() as group:
            for key in list(self.synced_hosts):
                group.create_task(one(key))

    def _stale_hosts(self, key: str) -> tuple[Obj, list[Obj]] | None:
        """The Service and its hosts when they differ from those its load balancer was last given."""
        svc = self.services.get(key)
        synced = self.synced_hosts.get(key)
        if (
            svc is None
            or synced is None
            or not wants_load_balancer(svc, self.cls)
            or needs_cleanup(svc, self.cls)
        ):
            return None
        hosts = self.hosts(svc)
        return None if _host_set(hosts) == synced else (svc, hosts)

    async def _sync_hosts(self, key: str) -> None:
        if self._stale_hosts(key) is None:
            return
        async with self._locks[key]:
            # Again under the lock: a sync of the Service may have run meanwhile.
            stale = self._stale_hosts(key)
            if stale is None:
                return
            svc, hosts = stale
            if not await self._update_hosts(svc, hosts):
                self.queue.add_rate_limited(key)
                return
            self.synced_hosts[key] = _host_set(hosts)

    async def _update_hosts(self, svc: Obj, hosts: Sequence[Obj]) -> bool:
        cluster_id = self.settings.cluster_id
        names = sorted(str(h["metadata"]["name"]) for h in hosts)
        try:
            target = load_balancer_service(svc)
            await self.balancers.update_load_balancer(cluster_id, target, [node_ref(h) for h in hosts])
        except CloudError as exc:
            try:
                if await self.balancers.get_load_balancer(cluster_id, _cleanup_target(svc)) is None:
                    return True  # nothing to update: not an error
            except CloudError as check:
                self.log.warning(
                    "failed to check if load balancer exists for service %s: %s",
                    _meta(svc).get("name"),
                    check,
                )
            self.ctx.recorder.event(
                svc,
                "Warning",
                "UpdateLoadBalancerFailed",
                f"Error updating load balancer with new hosts [{' '.join(names)}]: {exc}",
            )
            return False
        if hosts:
            self.ctx.recorder.event(
                svc, "Normal", "UpdatedLoadBalancer", "Updated load balancer with new hosts"
            )
        else:
            self.ctx.recorder.event(
                svc, "Warning", "UnAvailableLoadBalancer", "There are no available nodes for LoadBalancer"
            )
        return True


async def fetch_service(client: Client, namespace: str, name: str) -> dict[str, Any] | None:
    """A fresh read of one Service. Through a list with a name field selector: upstream's
    system:cloud-controller-manager role may list, watch, patch and update Services, not get them."""
    found = await client.list(R.SERVICES, namespace, params={"fieldSelector": f"metadata.name={name}"})
    items = found.get("items") or []
    if not items:
        return None
    item: dict[str, Any] = items[0]
    item.setdefault("kind", "Service")
    item.setdefault("apiVersion", "v1")
    return item


def _context(exc: CloudError, prefix: str) -> CloudError:
    """The same error (class, code, retry-after) with upstream's wording in front of it."""
    wrapped = copy.copy(exc)
    wrapped.message = f"{prefix}: {exc.message}"
    wrapped.args = (wrapped.message,)
    return wrapped


def _condition(svc: Obj) -> Mapping[str, Any] | None:
    for cond in (svc.get("status") or {}).get("conditions") or []:
        if cond.get("type") == CONDITION_TYPE:
            return cond  # type: ignore[no-any-return]
    return None


def _cleanup_target(svc: Obj) -> LoadBalancerService:
    """Enough of the Service to find and delete its load balancer, whatever its ports are now."""
    try:
        return load_balancer_service(svc)
    except InvalidConfiguration:
        meta = _meta(svc)
        return LoadBalancerService(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            ports=(),
            annotations=dict(meta.get("annotations") or {}),
        )
