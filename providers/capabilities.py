"""What a cloud can do, as Protocols, and the frozen record of the ones a given cloud supports.

The Protocols mirror k8s.io/cloud-provider's interfaces (InstancesV2, LoadBalancer, Routes,
Zones) plus what Pinnace needs on top: `Instances` to launch and terminate machines, and
`Inventory` for the garbage sweep that proves nothing the cluster made was leaked.

Contracts every implementation honours (the shared contract suite in
tests/unit/providers/contract checks them for every provider):
- every delete is idempotent: deleting what is already gone succeeds;
- every resource created is tagged with the cluster id and its owner (see `providers.tags`);
- names are deterministic, so a create retried after a crash finds what the first attempt made;
- errors are `providers.errors` classes, never SDK exceptions;
- only resources tagged for `cluster_id` are listed, changed or deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from providers.errors import NotSupported
from providers.model import (
    CloudResource,
    Instance,
    InstanceDetails,
    InstanceSpec,
    LoadBalancerService,
    LoadBalancerStatus,
    NodeRef,
    Route,
    Zone,
)

__all__ = [
    "CloudProvider",
    "InstanceMetadata",
    "Instances",
    "Inventory",
    "LoadBalancers",
    "Routes",
    "Zones",
]


class Instances(Protocol):
    """Launching and terminating machines (used by the NodePool/Machine operator)."""

    async def create_instance(self, cluster_id: str, spec: InstanceSpec) -> Instance:
        """Launch, or return the live instance of this cluster already named `spec.name`."""
        ...

    async def delete_instance(self, cluster_id: str, instance_id: str) -> None:
        """Terminate; succeeds when the instance is already gone or terminating."""
        ...

    async def get_instance(self, cluster_id: str, instance_id: str) -> Instance:
        """Raises `NotFound` for unknown ids and for instances not tagged for `cluster_id`."""
        ...

    async def list_instances(self, cluster_id: str) -> list[Instance]:
        """Every instance tagged for the cluster that is not terminated."""
        ...

    async def get_user_data(self, cluster_id: str, instance_id: str) -> bytes:
        """The user-data the instance was launched with, byte for byte as the cloud holds it
        (gzip-compressed when it was too large to launch uncompressed; empty when there was
        none). Raises `NotFound` as `get_instance` does. The simulated nodes boot from it."""
        ...


class InstanceMetadata(Protocol):
    """Upstream's InstancesV2: what the cloud node and node lifecycle controllers ask."""

    async def instance_exists(self, node: NodeRef) -> bool: ...

    async def instance_shutdown(self, node: NodeRef) -> bool: ...

    async def instance_metadata(self, node: NodeRef) -> InstanceDetails:
        """Raises `NotFound` when there is no such instance."""
        ...


class LoadBalancers(Protocol):
    """Upstream's cloudprovider.LoadBalancer."""

    def load_balancer_name(self, cluster_id: str, service: LoadBalancerService) -> str: ...

    async def get_load_balancer(
        self, cluster_id: str, service: LoadBalancerService
    ) -> LoadBalancerStatus | None:
        """The status when the load balancer exists, `None` when it does not."""
        ...

    async def ensure_load_balancer(
        self, cluster_id: str, service: LoadBalancerService, nodes: Sequence[NodeRef]
    ) -> LoadBalancerStatus:
        """Create or converge the load balancer (listeners, targets, health checks, firewall rules)."""
        ...

    async def update_load_balancer(
        self, cluster_id: str, service: LoadBalancerService, nodes: Sequence[NodeRef]
    ) -> None:
        """Only the set of nodes changed."""
        ...

    async def ensure_load_balancer_deleted(self, cluster_id: str, service: LoadBalancerService) -> None:
        """Delete it and everything made for it; succeeds when it is already gone."""
        ...


class Routes(Protocol):
    """Upstream's cloudprovider.Routes: pod-CIDR routes whose next hop is an instance."""

    async def list_routes(self, cluster_id: str) -> list[Route]: ...

    async def create_route(self, cluster_id: str, name_hint: str, route: Route) -> None:
        """`name_hint` is the Node's UID, as upstream's route controller passes it."""
        ...

    async def delete_route(self, cluster_id: str, route: Route) -> None: ...


class Zones(Protocol):
    async def list_zones(self) -> list[Zone]: ...

    async def get_zone_by_provider_id(self, provider_id: str) -> Zone: ...


class Inventory(Protocol):
    """What the garbage sweep needs: everything tagged for the cluster, and a way to delete any of it."""

    async def list_owned(self, cluster_id: str) -> list[CloudResource]: ...

    async def delete_resource(self, cluster_id: str, resource: CloudResource) -> None:
        """Idempotent, like every delete."""
        ...


_C = TypeVar("_C")


@dataclass(frozen=True)
class CloudProvider:
    """One cloud: its name and the capabilities it has (`None` where it has none).

    The fields are typed with the Protocols, so mypy checks statically that each provider's
    classes implement what they are registered as.
    """

    name: str
    instances: Instances | None = None
    instance_metadata: InstanceMetadata | None = None
    load_balancers: LoadBalancers | None = None
    routes: Routes | None = None
    zones: Zones | None = None
    inventory: Inventory | None = None

    @property
    def capabilities(self) -> frozenset[str]:
        names = ("instances", "instance_metadata", "load_balancers", "routes", "zones", "inventory")
        return frozenset(n for n in names if getattr(self, n) is not None)

    def require(self, capability: _C | None, what: str) -> _C:
        """`provider.require(provider.routes, "routes")`: the capability, or `NotSupported`."""
        if capability is None:
            raise NotSupported(f"cloud provider {self.name!r} does not support {what}")
        return capability
