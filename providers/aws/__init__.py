"""The `aws` provider on boto3: instances, instance metadata, zones, routes, load balancers (NLB
by default, classic ELB on request) and the inventory for the garbage sweep. Tested against
moto; `endpointURL` in the cloud config points it at moto's server or another AWS-compatible API.
"""

from __future__ import annotations

import boto3

from providers.calls import SdkCaller
from providers.capabilities import CloudProvider
from providers.config import CloudConfig

from .describe import InstanceLookup
from .faults import install_from_options
from .instances import AwsInstances
from .inventory import AwsInventory
from .load_balancers import AwsLoadBalancers
from .metadata import AwsInstanceMetadata
from .routes import AwsRoutes
from .security_groups import SecurityGroups
from .session import AwsClients, make_clients
from .subnets import Subnets
from .zones import AwsZones

__all__ = ["AwsClients", "build", "create"]


def build(clients: AwsClients, config: CloudConfig, *, lookup: InstanceLookup | None = None) -> CloudProvider:
    """Wire the capabilities around one set of clients (tests pass their own clients or lookup)."""
    lookup = lookup or InstanceLookup(clients)
    groups = SecurityGroups(clients, config)
    instances = AwsInstances(clients, config, lookup)
    zones = AwsZones(clients, lookup)
    routes = AwsRoutes(clients, config, lookup)
    return CloudProvider(
        name="aws",
        instances=instances,
        instance_metadata=AwsInstanceMetadata(clients, lookup, zones),
        load_balancers=AwsLoadBalancers(
            clients, config, lookup, subnets=Subnets(clients, config), groups=groups
        ),
        routes=routes,
        zones=zones,
        inventory=AwsInventory(clients, config, lookup, instances, routes, groups),
    )


def create(
    config: CloudConfig, *, session: boto3.Session | None = None, caller: SdkCaller | None = None
) -> CloudProvider:
    """The registry's factory: `providers.registry.create("aws", config)`."""
    clients = make_clients(config, session=session, caller=caller)
    install_from_options(clients, config.options("aws"))
    return build(clients, config)
