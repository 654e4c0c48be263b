"""The local cloud in the contract suite: a fresh in-memory cloud per test, no rate limit wait,
retries without real sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from providers.calls import SdkCaller
from providers.config import CloudConfig
from providers.local import LocalCloud, LocalSettings, provider_for
from providers.local.cloud import LOAD_BALANCER, TARGET_GROUP, translate
from providers.local.load_balancers import LocalLoadBalancers
from providers.model import InstanceSpec, LoadBalancerService, Owner
from tests.unit.providers.contract.harness import (
    ContractCloud,
    LoadBalancerView,
    contract_provider,
)


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


class LocalHelpers:
    def __init__(self, cloud: LocalCloud) -> None:
        self.cloud = cloud

    def instance_spec(self, name: str, owner: Owner, *, zone: str = "") -> InstanceSpec:
        return InstanceSpec(
            name=name, owner=owner, instance_type="local.small", image="local-image", zone=zone
        )

    def unknown_provider_id(self) -> str:
        return f"local:///{self.cloud.settings.zones[0]}/i-0000000000000dead"

    def unknown_instance_id(self) -> str:
        return "i-0000000000000dead"

    async def stop_instance(self, instance_id: str) -> None:
        await self.cloud.stop_instance(instance_id)

    async def add_route_table(self, cluster_id: str) -> str:
        return await self.cloud.add_route_table(cluster_id)

    async def load_balancer_view(
        self, cluster_id: str, service: LoadBalancerService
    ) -> LoadBalancerView | None:
        name = LocalLoadBalancers(self.cloud).load_balancer_name(cluster_id, service)
        record = await self.cloud.describe(LOAD_BALANCER, name)
        if record is None:
            return None
        targets: dict[tuple[str, int], frozenset[str]] = {}
        health: set[int] = set()
        for listener in record.data["listeners"]:
            group = await self.cloud.describe(TARGET_GROUP, listener["target_group"])
            assert group is not None, f"listener {listener} forwards to a missing target group"
            targets[(listener["protocol"], listener["port"])] = frozenset(group.data["targets"])
            health.add(int(group.data["health_check"]["port"]))
        return LoadBalancerView(
            listeners=frozenset(
                (li["protocol"], li["port"], li["node_port"]) for li in record.data["listeners"]
            ),
            targets=targets,
            health_check_ports=frozenset(health),
        )


def local_cloud(config: CloudConfig) -> LocalCloud:
    settings = LocalSettings.from_config(config)
    caller = SdkCaller(translate, qps=1e6, burst=1_000_000, sleep=_no_sleep)
    return LocalCloud(settings, caller=caller)


@contract_provider("local")
@asynccontextmanager
async def local() -> AsyncIterator[ContractCloud]:
    config = CloudConfig(cluster_id="contract")
    cloud = local_cloud(config)
    try:
        yield ContractCloud(provider_for(cloud), config, LocalHelpers(cloud))
    finally:
        cloud.close()
