"""The garbage sweep: nothing the cluster made in the cloud outlives its owner.

Every `sweep_period` (and once as soon as it leads, which is what recovers from a CCM that
crashed half-way through creating or deleting a load balancer) it lists what the cloud holds
tagged `kubernetes.io/cluster/<id>=owned` and deletes what belongs to a Service or a Node that no
longer exists. Owners come from the resources' own tags, never from names, and every verdict is
checked against the API server (not only the cache) before anything is deleted. Resources only
`shared` with the cluster, or without owner tags, or owned by kinds other controllers manage
(Machines and their instances), are never touched.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Mapping
from typing import Any

from ccm.base import CloudController
from ccm.service import FINALIZER, fetch_service, wants_load_balancer
from ccm.settings import CloudSettings, cloud_settings
from controlplane.api import errors
from controlplane.controllers.runtime import R
from providers.capabilities import Inventory
from providers.errors import CloudError
from providers.model import CloudResource, LoadBalancerService, Owner
from providers.tags import is_owned

__all__ = ["GarbageSweep"]

Obj = Mapping[str, Any]
SWEPT_KINDS = ("Service", "Node")


class GarbageSweep(CloudController):
    name = "cloud-garbage-sweep"
    event_source = "cloud-garbage-sweep"
    workers = 0

    def setup(self) -> None:
        self.settings: CloudSettings = cloud_settings(self.ctx)
        self.inventory: Inventory = self.settings.provider.require(
            self.settings.provider.inventory, "inventory"
        )
        self.services = self.ctx.informers.informer(R.SERVICES)
        self.nodes = self.ctx.informers.informer(R.NODES)
        self.deleted = 0  # resources deleted since start (tests and metrics read it)

    async def run_extra(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep()
            except CloudError as exc:
                self.log.warning("garbage sweep failed: %s", exc)
            await self.sleep_or_stop(stop, self.settings.sweep_period)

    async def sweep(self) -> int:
        """One pass; returns how many resources it deleted."""
        cluster_id = self.settings.cluster_id
        resources = await self.inventory.list_owned(cluster_id)
        by_owner: dict[Owner, list[CloudResource]] = collections.defaultdict(list)
        for resource in resources:
            owner = resource.owner
            if owner is None or owner.kind not in SWEPT_KINDS or not is_owned(resource.tags, cluster_id):
                continue
            by_owner[owner].append(resource)
        deleted = 0
        for owner, owned in by_owner.items():
            if not self._cached_orphan(owner) or not await self._confirmed_orphan(owner):
                continue
            deleted += await self._delete(owner, owned)
        self.deleted += deleted
        return deleted

    def _cached_orphan(self, owner: Owner) -> bool:
        if owner.kind == "Service":
            return _service_orphan(self.services.get(owner.key), owner, self.settings.load_balancer_class)
        return _node_orphan(self.nodes.get(owner.name), owner)

    async def _confirmed_orphan(self, owner: Owner) -> bool:
        """The cache may lag: ask the API server before deleting anything."""
        try:
            if owner.kind == "Service":
                live = await fetch_service(self.ctx.client, owner.namespace, owner.name)
                return _service_orphan(live, owner, self.settings.load_balancer_class)
            return _node_orphan(await self.ctx.client.get(R.NODES, owner.name), owner)
        except errors.NotFound:
            return True
        except (errors.StatusError, OSError, TimeoutError) as exc:
            self.log.warning("garbage sweep: cannot check %s %s: %s", owner.kind, owner.key, exc)
            return False

    async def _delete(self, owner: Owner, owned: list[CloudResource]) -> int:
        cluster_id = self.settings.cluster_id
        balancers = self.settings.provider.load_balancers
        if owner.kind == "Service" and balancers is not None:
            # The provider knows the order its pieces must go in (listeners before target groups...).
            target = LoadBalancerService(namespace=owner.namespace, name=owner.name, uid=owner.uid, ports=())
            try:
                await balancers.ensure_load_balancer_deleted(cluster_id, target)
            except CloudError as exc:
                self.log.warning("garbage sweep: deleting the load balancer of %s failed: %s", owner.key, exc)
        deleted = 0
        for resource in owned:
            try:
                await self.inventory.delete_resource(cluster_id, resource)
            except CloudError as exc:
                self.log.warning("garbage sweep: deleting %s %s failed: %s", resource.kind, resource.id, exc)
                continue
            deleted += 1
            self.log.info(
                "garbage sweep: deleted %s %s of %s %s, which no longer exists",
                resource.kind,
                resource.id,
                owner.kind,
                owner.key,
            )
        return deleted


def _service_orphan(svc: Obj | None, owner: Owner, our_class: str) -> bool:
    if svc is None:
        return True
    meta = svc.get("metadata") or {}
    if owner.uid and meta.get("uid") != owner.uid:
        return True  # deleted and re-created: the new one gets its own resources
    # A Service that no longer wants a load balancer and carries no finalizer of ours has nobody
    # left to clean up after it (e.g. the finalizer was removed by hand).
    return not wants_load_balancer(svc, our_class) and FINALIZER not in (meta.get("finalizers") or [])


def _node_orphan(node: Obj | None, owner: Owner) -> bool:
    if node is None:
        return True
    return bool(owner.uid) and (node.get("metadata") or {}).get("uid") != owner.uid
