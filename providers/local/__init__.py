"""`local`: an in-process simulated cloud whose state lives in SQLite, for the embedded default,
tests and chaos tests. It honours the same contracts as `aws` (tests/unit/providers/contract).

`create(config)` builds one from the cloud config's `local:` section (see
`providers.local.settings`); two processes given the same `stateFile` see the same cloud.
Tests may pass their own `LocalCloud` (an injected clock, caller, fault injector) to
`provider_for`, and use the cloud's console methods to stop or terminate instances out of band.
"""

from __future__ import annotations

from providers.capabilities import CloudProvider
from providers.config import CloudConfig
from providers.errors import NotSupported
from providers.local.addresses import PROVIDER_NAME, provider_id, split_provider_id
from providers.local.cloud import LocalCloud
from providers.local.faults import FaultInjector
from providers.local.instances import LocalInstances
from providers.local.inventory import LocalInventory
from providers.local.load_balancers import LocalLoadBalancers
from providers.local.metadata import LocalInstanceMetadata
from providers.local.routes import LocalRoutes
from providers.local.settings import LocalSettings
from providers.local.zones import LocalZones

__all__ = [
    "PROVIDER_NAME",
    "FaultInjector",
    "LocalCloud",
    "LocalSettings",
    "cloud_of",
    "create",
    "open_cloud",
    "provider_for",
    "provider_id",
    "split_provider_id",
]


def open_cloud(config: CloudConfig) -> LocalCloud:
    """The local cloud `config` describes (its `stateFile`, zones, ranges, faults)."""
    return LocalCloud(LocalSettings.from_config(config))


def provider_for(cloud: LocalCloud) -> CloudProvider:
    return CloudProvider(
        name=PROVIDER_NAME,
        instances=LocalInstances(cloud),
        instance_metadata=LocalInstanceMetadata(cloud),
        load_balancers=LocalLoadBalancers(cloud),
        routes=LocalRoutes(cloud),
        zones=LocalZones(cloud),
        inventory=LocalInventory(cloud),
    )


def create(config: CloudConfig) -> CloudProvider:
    return provider_for(open_cloud(config))


def cloud_of(provider: CloudProvider) -> LocalCloud:
    """The `LocalCloud` behind a provider made here (an in-process test reaching its console or
    fault injector when the server built the provider from the registry)."""
    if not isinstance(provider.instances, LocalInstances):
        raise NotSupported(f"cloud provider {provider.name!r} is not the local cloud")
    return provider.instances.cloud
