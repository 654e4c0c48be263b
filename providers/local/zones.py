"""The local cloud's region and zones."""

from __future__ import annotations

from providers.errors import NotFound
from providers.local.addresses import split_provider_id
from providers.local.cloud import INSTANCE, LocalCloud
from providers.local.state import Tx
from providers.model import Zone

__all__ = ["LocalZones"]


class LocalZones:
    def __init__(self, cloud: LocalCloud) -> None:
        self._cloud = cloud

    async def list_zones(self) -> list[Zone]:
        region = self._cloud.settings.region
        return [Zone(failure_domain=z, region=region) for z in self._cloud.settings.zones]

    async def get_zone_by_provider_id(self, provider_id: str) -> Zone:
        _, instance_id = split_provider_id(provider_id)

        def run(tx: Tx) -> Zone:
            record = tx.get(INSTANCE, instance_id)
            if record is None:
                raise NotFound(
                    f"no instance for providerID {provider_id!r}", code="InvalidInstanceID.NotFound"
                )
            return Zone(failure_domain=record.data["zone"], region=record.data["region"])

        return await self._cloud.call("DescribeInstances", run)
