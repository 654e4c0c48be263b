"""What the reconcilers share: the API clients, the settings, the event recorder, what is known
about Nodes, and how to ask for another look at a Machine or a pool."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ccm.provisioning import api
from ccm.provisioning.settings import ProvisionerSettings
from controlplane.client import Client, ResourcePath
from controlplane.controllers.runtime import EventRecorder
from providers.capabilities import Instances

__all__ = ["MACHINES", "NODEPOOLS", "Context", "NodeIndex"]

NODEPOOLS = ResourcePath(api.GROUP, api.VERSION, api.NODEPOOLS, namespaced=False)
MACHINES = ResourcePath(api.GROUP, api.VERSION, api.MACHINES, namespaced=False)


def _ready(node: Mapping[str, Any] | None) -> str:
    for condition in ((node or {}).get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return str(condition.get("status") or "Unknown")
    return "Unknown"


@dataclass
class NodeIndex:
    """Nodes by providerID, fed by the Node watch; Machines by providerID, to wake the right one
    (and their pools by Machine name, to wake the pool whose ready count moved)."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    machines: dict[str, str] = field(default_factory=dict)
    pools: dict[str, str] = field(default_factory=dict)

    def node_event(self, kind: str, node: Mapping[str, Any]) -> str | None:
        """Record a Node watch event; the name of the Machine it concerns when the change matters
        to that Machine (the Node appeared, went away, or its Ready status flipped). Heartbeats
        and label edits wake nothing: every Node writes its status every few seconds, and a
        Machine's pass is not free (a cloud call, a status patch)."""
        provider_id = str((node.get("spec") or {}).get("providerID") or "")
        if not provider_id:
            return None
        before = self.nodes.get(provider_id)
        if kind == "DELETED":
            self.nodes.pop(provider_id, None)
            matters = True
        else:
            self.nodes[provider_id] = dict(node)
            matters = before is None or _ready(before) != _ready(node)
        return self.machines.get(provider_id) if matters else None

    def machine_event(self, kind: str, machine: Mapping[str, Any]) -> None:
        meta = machine.get("metadata") or {}
        name = str(meta.get("name", ""))
        pool = str((meta.get("labels") or {}).get(api.LABEL_NODE_POOL) or "")
        if kind == "DELETED":
            self.pools.pop(name, None)
        elif pool:
            self.pools[name] = pool
        provider_id = str((machine.get("status") or {}).get("providerID") or "")
        if not provider_id:
            return
        if kind == "DELETED":
            self.machines.pop(provider_id, None)
        else:
            self.machines[provider_id] = name

    def node_ready(self, provider_id: str) -> bool | None:
        """Whether the Node with this providerID is Ready; None when no such Node was seen."""
        node = self.nodes.get(provider_id) if provider_id else None
        return None if node is None else _ready(node) == "True"


@dataclass
class Context:
    client: Client
    # Evictions are retried by the drain's next pass, not by the client: no client-side retries.
    evict_client: Client
    settings: ProvisionerSettings
    recorder: EventRecorder
    nodes: NodeIndex
    enqueue_machine: Callable[[str], None]
    enqueue_pool: Callable[[str], None]
    # Provider zones an instance could not be launched in with this cloud configuration (an
    # AWS config naming subnets in only some zones): no longer spread over.
    unusable_zones: set[str] = field(default_factory=set)

    @property
    def instances(self) -> Instances:
        provider = self.settings.provider
        return provider.require(provider.instances, "instances")

    def now(self) -> str:
        return self.settings.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
