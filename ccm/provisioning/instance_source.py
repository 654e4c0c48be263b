"""The cloud's instances as the simulated fleet sees them (node_bootstrap may not import providers)."""

from __future__ import annotations

from node_bootstrap.fleet import BootTarget
from providers.capabilities import CloudProvider, Instances
from providers.model import Instance

__all__ = ["ProviderInstanceSource", "boot_target"]


def boot_target(instance: Instance) -> BootTarget:
    private_ip = next((a.address for a in instance.addresses if a.type == "InternalIP"), "")
    return BootTarget(
        instance_id=instance.id,
        zone=instance.zone,
        region=instance.region,
        private_ip=private_ip,
        instance_type=instance.instance_type,
        state=instance.state.value,
        name=instance.name,
    )


class ProviderInstanceSource:
    """`node_bootstrap.fleet.InstanceSource` over a provider's Instances capability."""

    def __init__(self, provider: CloudProvider, cluster_id: str) -> None:
        self._instances: Instances = provider.require(provider.instances, "instances")
        self.cluster_id = cluster_id

    async def list_instances(self) -> list[BootTarget]:
        return [boot_target(i) for i in await self._instances.list_instances(self.cluster_id)]

    async def user_data(self, instance_id: str) -> bytes:
        return await self._instances.get_user_data(self.cluster_id, instance_id)
