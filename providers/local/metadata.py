"""Upstream's InstancesV2 for the local cloud: exists, shutdown, metadata.

As cloud-provider-aws: a terminated (or unknown) instance does not exist, so the node lifecycle
controller deletes its Node; a stopped one exists and is shut down, so the Node is tainted
instead. Shutdown of an unknown instance is False, not an error, so that the controller goes on
to ask whether it exists.
"""

from __future__ import annotations

from providers.errors import NotFound
from providers.local.cloud import LocalCloud, instance_from_record
from providers.local.nodes import find_instance
from providers.local.state import Record, Tx
from providers.model import InstanceDetails, InstanceState, NodeRef

__all__ = ["LocalInstanceMetadata"]


class LocalInstanceMetadata:
    def __init__(self, cloud: LocalCloud) -> None:
        self._cloud = cloud

    async def _find(self, node: NodeRef) -> Record | None:
        def run(tx: Tx) -> Record | None:
            self._cloud.refresh(tx)
            return find_instance(tx, node)

        return await self._cloud.call("DescribeInstances", run)

    async def instance_exists(self, node: NodeRef) -> bool:
        record = await self._find(node)
        return record is not None and record.data["state"] != InstanceState.TERMINATED

    async def instance_shutdown(self, node: NodeRef) -> bool:
        record = await self._find(node)
        return record is not None and record.data["state"] == InstanceState.STOPPED

    async def instance_metadata(self, node: NodeRef) -> InstanceDetails:
        record = await self._find(node)
        if record is None or record.data["state"] == InstanceState.TERMINATED:
            raise NotFound(
                f"no instance for node {node.name!r} (providerID {node.provider_id!r})",
                code="InvalidInstanceID.NotFound",
            )
        instance = instance_from_record(record)
        return InstanceDetails(
            provider_id=instance.provider_id,
            instance_type=instance.instance_type,
            zone=instance.zone,
            region=instance.region,
            addresses=instance.addresses,
        )
