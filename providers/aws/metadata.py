"""InstanceMetadata (upstream's InstancesV2) for EC2: what the cloud node and node lifecycle
controllers ask about each Node, answered from the batched, cached DescribeInstances.

A Node is found by its providerID (`aws:///<zone>/<id>`, `aws:////<id>`); a Node without one
(the kubelet did not set --provider-id) by its name as the instance's private DNS name, as
upstream does. `terminated` or unknown -> does not exist; `stopped` -> shut down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.errors import NotFound
from providers.model import InstanceDetails, NodeRef

from .describe import BY_ID, BY_PRIVATE_DNS, InstanceLookup
from .session import AwsClients
from .shapes import instance_zone, node_addresses, parse_provider_id, provider_id
from .zones import AwsZones

__all__ = ["ZONE_ID_LABEL", "AwsInstanceMetadata"]

ZONE_ID_LABEL = "topology.k8s.aws/zone-id"


class AwsInstanceMetadata:
    def __init__(self, clients: AwsClients, lookup: InstanceLookup, zones: AwsZones) -> None:
        self._c = clients
        self._lookup = lookup
        self._zones = zones

    async def _find(self, node: NodeRef) -> Mapping[str, Any] | None:
        if node.provider_id:
            _, instance_id = parse_provider_id(node.provider_id)
            return await self._lookup.get(BY_ID, instance_id)
        return await self._lookup.get(BY_PRIVATE_DNS, node.name)

    async def instance_exists(self, node: NodeRef) -> bool:
        inst = await self._find(node)
        return inst is not None and (inst.get("State") or {}).get("Name") != "terminated"

    async def instance_shutdown(self, node: NodeRef) -> bool:
        inst = await self._find(node)
        return inst is not None and (inst.get("State") or {}).get("Name") == "stopped"

    async def instance_metadata(self, node: NodeRef) -> InstanceDetails:
        inst = await self._find(node)
        if inst is None or (inst.get("State") or {}).get("Name") == "terminated":
            raise NotFound(f"no EC2 instance for node {node.name} ({node.provider_id or 'no providerID'})")
        zone = instance_zone(inst)
        labels: dict[str, str] = {}
        zone_id = await self._zones.zone_id(zone)
        if zone_id:
            labels[ZONE_ID_LABEL] = zone_id
        return InstanceDetails(
            provider_id=provider_id(zone, str(inst["InstanceId"])),
            instance_type=str(inst.get("InstanceType", "")),
            zone=zone,
            region=self._c.region,
            addresses=node_addresses(inst),
            additional_labels=labels,
        )
