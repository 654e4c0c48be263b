"""Everything the local cloud holds for a cluster, for the garbage sweep (the `Inventory` capability)."""

from __future__ import annotations

from providers.errors import Conflict, NotSupported
from providers.local.cloud import FIREWALL, INSTANCE, LOAD_BALANCER, ROUTE, TARGET_GROUP, LocalCloud
from providers.local.state import Tx
from providers.model import CloudResource, InstanceState
from providers.tags import is_owned, owner_from_tags

__all__ = ["KINDS", "LocalInventory"]

KINDS = (INSTANCE, LOAD_BALANCER, TARGET_GROUP, FIREWALL, ROUTE)


class LocalInventory:
    def __init__(self, cloud: LocalCloud) -> None:
        self._cloud = cloud

    async def list_owned(self, cluster_id: str) -> list[CloudResource]:
        def run(tx: Tx) -> list[CloudResource]:
            self._cloud.refresh(tx)
            return [
                CloudResource(
                    kind=r.kind, id=r.id, name=r.name, tags=dict(r.tags), owner=owner_from_tags(r.tags)
                )
                for r in tx.all_owned(cluster_id)
                if r.kind in KINDS
                and not (r.kind == INSTANCE and r.data["state"] == InstanceState.TERMINATED)
            ]

        return await self._cloud.call("GetResources", run)

    async def delete_resource(self, cluster_id: str, resource: CloudResource) -> None:
        if resource.kind not in KINDS:
            raise NotSupported(f"the local cloud has no resources of kind {resource.kind!r}")

        def run(tx: Tx) -> None:
            record = tx.get(resource.kind, resource.id)
            # Not there, or not the cluster's: nothing of ours to delete.
            if record is None or not is_owned(record.tags, cluster_id):
                return
            if record.kind == INSTANCE:
                if record.data["state"] != InstanceState.TERMINATED:
                    tx.put(self._cloud.transition(record, InstanceState.TERMINATED))
                return
            users = []
            if record.kind == TARGET_GROUP:
                users = [
                    lb.id
                    for lb in tx.all_of(LOAD_BALANCER)
                    if any(listener["target_group"] == record.id for listener in lb.data["listeners"])
                ]
            elif record.kind == FIREWALL:
                users = [lb.id for lb in tx.where(LOAD_BALANCER, "security_group", record.id)]
            if users:
                # As AWS's ResourceInUse / DependencyViolation: delete the load balancer first.
                raise Conflict(
                    f"{record.kind} {record.id} is in use by load balancer {', '.join(users)}",
                    code="ResourceInUse",
                )
            tx.delete(record.kind, record.id)

        await self._cloud.call(f"Delete:{resource.kind}", run)
