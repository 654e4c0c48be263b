"""Zones: the region's availability zones (DescribeAvailabilityZones, read once) and the zone of
an instance by its providerID (from the providerID itself when it names one)."""

from __future__ import annotations

import asyncio

from providers.errors import NotFound
from providers.model import Zone

from .describe import BY_ID, InstanceLookup
from .session import AwsClients
from .shapes import instance_zone, parse_provider_id

__all__ = ["AwsZones"]


class AwsZones:
    def __init__(self, clients: AwsClients, lookup: InstanceLookup) -> None:
        self._c = clients
        self._lookup = lookup
        self._zone_ids: dict[str, str] | None = None
        self._lock = asyncio.Lock()

    async def _load(self) -> dict[str, str]:
        # Zones do not change while we run; one call for the life of the provider.
        async with self._lock:
            if self._zone_ids is None:
                reply = await self._c.caller.call(
                    self._c.ec2.describe_availability_zones,
                    Filters=[{"Name": "state", "Values": ["available"]}],
                )
                self._zone_ids = {
                    str(z["ZoneName"]): str(z.get("ZoneId", "")) for z in reply.get("AvailabilityZones", [])
                }
            return self._zone_ids

    async def zone_id(self, zone: str) -> str:
        return (await self._load()).get(zone, "")

    async def list_zones(self) -> list[Zone]:
        return [Zone(failure_domain=name, region=self._c.region) for name in sorted(await self._load())]

    async def get_zone_by_provider_id(self, provider_id: str) -> Zone:
        _, instance_id = parse_provider_id(provider_id)
        # Even when the providerID names the zone, ask: a providerID of a long-gone instance
        # must not look like a live one.
        inst = await self._lookup.get(BY_ID, instance_id)
        if inst is None or (inst.get("State") or {}).get("Name") == "terminated":
            raise NotFound(f"no EC2 instance {instance_id}")
        return Zone(failure_domain=instance_zone(inst), region=self._c.region)
