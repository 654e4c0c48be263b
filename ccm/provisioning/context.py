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


@dataclass
class NodeIndex:
    """Nodes by providerID, fed by the Node watch; Machines by providerID, to wake the right one."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    machines: dict[str, str] = field(default_factory=dict)

    def node_event(self, kind: str, node: Mapping[str, Any]) -> str | None:
        """Record a Node watch event; the name of the Machine it concerns, if known."""
        provider_id = str((node.get("spec") or {}).get("providerID") or "")
        if not provider_id:
            return None
        if kind == "DELETED":
            self.nodes.pop(provider_id, None)
        else:
            self.nodes[provider_id] = dict(node)
        return self.machines.get(provider_id)

    def machine_event(self, kind: str, machine: Mapping[str, Any]) -> None:
        provider_id = str((machine.get("status") or {}).get("providerID") or "")
        if not provider_id:
            return
        if kind == "DELETED":
            self.machines.pop(provider_id, None)
        else:
            self.machines[provider_id] = str((machine.get("metadata") or {}).get("name", ""))


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

    @property
    def instances(self) -> Instances:
        provider = self.settings.provider
        return provider.require(provider.instances, "instances")

    def now(self) -> str:
        return self.settings.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
