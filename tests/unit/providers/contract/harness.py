"""What the provider contract suite needs from each cloud, and the registry of clouds it runs on.

A provider joins the suite by adding one module `provider_<name>.py` next to this file with an
async context manager decorated with `@contract_provider("<name>")` that yields a
`ContractCloud(provider, config, helpers)`; conftest.py imports every `provider_*.py` module and
parametrizes the `cloud` fixture over the registry. `helpers` does, through the cloud's own API
(moto's boto3 clients for aws, the console of `LocalCloud` for local), what the contract tests
need but the capability interfaces deliberately do not offer: stopping an instance out of band,
looking inside a load balancer, adding a route table.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from providers.capabilities import CloudProvider
from providers.config import CloudConfig
from providers.model import (
    Instance,
    InstanceSpec,
    LoadBalancerService,
    NodeRef,
    Owner,
    ServicePort,
)

__all__ = [
    "PROVIDERS",
    "CloudHelpers",
    "ContractCloud",
    "LoadBalancerView",
    "contract_provider",
    "machine_owner",
    "node_for",
    "service",
]


@dataclass(frozen=True)
class LoadBalancerView:
    """A load balancer as the cloud has it, provider-neutral.

    `listeners`: (protocol, port, node port) per Service port; `targets`: the instance ids
    registered behind each listener, keyed by (protocol, port); `health_check_ports`: the node
    ports health-checked (the healthCheckNodePort under externalTrafficPolicy Local).
    """

    listeners: frozenset[tuple[str, int, int]]
    targets: dict[tuple[str, int], frozenset[str]] = field(default_factory=dict)
    health_check_ports: frozenset[int] = frozenset()

    @property
    def all_targets(self) -> frozenset[str]:
        return frozenset().union(*self.targets.values()) if self.targets else frozenset()


class CloudHelpers(Protocol):
    def instance_spec(self, name: str, owner: Owner, *, zone: str = "") -> InstanceSpec:
        """A spec the cloud accepts (a real image id, an instance type, a subnet)."""
        ...

    def unknown_provider_id(self) -> str:
        """A well-formed providerID of this cloud naming no instance."""
        ...

    def unknown_instance_id(self) -> str: ...

    async def stop_instance(self, instance_id: str) -> None:
        """Stop it out of band, as a person in the console would."""
        ...

    async def add_route_table(self, cluster_id: str) -> str:
        """Another route table tagged for the cluster; returns its id."""
        ...

    async def load_balancer_view(
        self, cluster_id: str, service: LoadBalancerService
    ) -> LoadBalancerView | None:
        """What the cloud holds for the Service's load balancer, or None when there is none."""
        ...


class ContractCloud(NamedTuple):
    provider: CloudProvider
    config: CloudConfig
    helpers: CloudHelpers


ProviderFactory = Callable[[], AbstractAsyncContextManager[ContractCloud]]
PROVIDERS: dict[str, ProviderFactory] = {}


def contract_provider(name: str) -> Callable[[ProviderFactory], ProviderFactory]:
    """Register a cloud for the contract suite (see the module docstring)."""

    def register(factory: ProviderFactory) -> ProviderFactory:
        PROVIDERS[name] = factory
        return factory

    return register


# -- builders shared by the tests -----------------------------------------------------------


def machine_owner(name: str) -> Owner:
    return Owner(kind="Machine", name=name, namespace="kube-system", uid=str(uuid.uuid4()))


def node_for(instance: Instance) -> NodeRef:
    """The Node a kubelet on this instance registers: named after its host name, as on EC2."""
    hostname = next((a.address for a in instance.addresses if a.type == "Hostname"), "")
    dns = next((a.address for a in instance.addresses if a.type == "InternalDNS"), "")
    return NodeRef(
        name=hostname or dns or instance.name,
        provider_id=instance.provider_id,
        uid=str(uuid.uuid5(uuid.NAMESPACE_URL, instance.provider_id)),
        addresses=instance.addresses,
    )


def service(
    name: str = "web",
    ports: Iterable[tuple[str, int, int]] = (("TCP", 80, 30080),),
    *,
    namespace: str = "default",
    uid: str | None = None,
    external_traffic_policy: str = "Cluster",
    health_check_node_port: int = 0,
    source_ranges: tuple[str, ...] = (),
) -> LoadBalancerService:
    return LoadBalancerService(
        namespace=namespace,
        name=name,
        uid=uid or str(uuid.uuid4()),
        ports=tuple(
            ServicePort(name=f"p{port}-{protocol.lower()}", protocol=protocol, port=port, node_port=node_port)
            for protocol, port, node_port in ports
        ),
        external_traffic_policy=external_traffic_policy,
        health_check_node_port=health_check_node_port,
        load_balancer_source_ranges=source_ranges,
    )
