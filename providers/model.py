"""Plain data exchanged between the cloud controllers and providers: no Kubernetes types, no SDK types.

The CCM turns Nodes and Services into these records; providers answer with them. Field names
follow k8s.io/cloud-provider's (Route, Zone, InstanceMetadata, LoadBalancerStatus) so that a
reader of upstream finds their way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "CloudResource",
    "Instance",
    "InstanceDetails",
    "InstanceSpec",
    "InstanceState",
    "LoadBalancerIngress",
    "LoadBalancerService",
    "LoadBalancerStatus",
    "NodeAddress",
    "NodeRef",
    "Owner",
    "Route",
    "ServicePort",
    "Zone",
]


class InstanceState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    SHUTTING_DOWN = "shutting-down"
    TERMINATED = "terminated"


@dataclass(frozen=True)
class NodeAddress:
    """`type` is a NodeAddressType: InternalIP, ExternalIP, InternalDNS, ExternalDNS or Hostname."""

    type: str
    address: str


@dataclass(frozen=True)
class Owner:
    """What a cloud resource was made for; recorded in its tags so that ownership is never guessed.

    `kind` is the Kubernetes kind (Service, Node, Machine); `namespace` is empty for cluster-scoped owners.
    """

    kind: str
    name: str
    namespace: str = ""
    uid: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True)
class InstanceSpec:
    """What to launch. `name` is deterministic (the Machine's name) so a retried create finds the
    instance an earlier, interrupted attempt launched instead of launching a second one."""

    name: str
    owner: Owner
    instance_type: str
    image: str
    zone: str = ""
    subnet: str = ""
    security_groups: tuple[str, ...] = ()
    instance_profile: str = ""
    key_name: str = ""
    user_data: bytes = b""
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Instance:
    id: str
    provider_id: str
    name: str
    state: InstanceState
    instance_type: str
    zone: str
    region: str
    addresses: tuple[NodeAddress, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    owner: Owner | None = None


@dataclass(frozen=True)
class InstanceDetails:
    """Upstream's cloudprovider.InstanceMetadata: what the cloud node controller writes on a Node."""

    provider_id: str
    instance_type: str
    zone: str
    region: str
    addresses: tuple[NodeAddress, ...] = ()
    additional_labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeRef:
    """A Node as providers see it."""

    name: str
    provider_id: str = ""
    uid: str = ""
    addresses: tuple[NodeAddress, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Zone:
    failure_domain: str
    region: str


@dataclass(frozen=True)
class Route:
    """One pod-CIDR route. `target_node` is the Node's name, `target_provider_id` its instance (the
    next hop). `name` is the provider's own name for it (empty when asking to create one)."""

    destination_cidr: str
    target_node: str = ""
    target_provider_id: str = ""
    name: str = ""
    blackhole: bool = False
    route_table: str = ""


@dataclass(frozen=True)
class ServicePort:
    name: str
    protocol: str
    port: int
    node_port: int


@dataclass(frozen=True)
class LoadBalancerService:
    """A Service of type LoadBalancer as providers see it."""

    namespace: str
    name: str
    uid: str
    ports: tuple[ServicePort, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    load_balancer_source_ranges: tuple[str, ...] = ()
    external_traffic_policy: str = "Cluster"
    health_check_node_port: int = 0
    session_affinity: str = "None"
    load_balancer_ip: str = ""

    @property
    def owner(self) -> Owner:
        return Owner(kind="Service", namespace=self.namespace, name=self.name, uid=self.uid)


@dataclass(frozen=True)
class LoadBalancerIngress:
    """A load balancer answers with an IP, a hostname (AWS), or both."""

    ip: str = ""
    hostname: str = ""


@dataclass(frozen=True)
class LoadBalancerStatus:
    ingress: tuple[LoadBalancerIngress, ...] = ()


@dataclass(frozen=True)
class CloudResource:
    """Anything a provider created for the cluster, as the garbage sweep lists it.

    `kind` is the provider's word for it ("instance", "load-balancer", "target-group",
    "security-group", "route", ...); `id` is what `Inventory.delete_resource` needs to delete it.
    """

    kind: str
    id: str
    name: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    owner: Owner | None = None
