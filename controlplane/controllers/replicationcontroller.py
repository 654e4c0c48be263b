"""The ReplicationController controller: the ReplicaSet engine on v1 ReplicationControllers,
whose selector is a plain label map (upstream pkg/controller/replication, which adapts the
ReplicaSet controller the same way)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.api.selectors import LabelSelector, label_selector_from_dict
from controlplane.controllers.controller_ref import OwnerKind
from controlplane.controllers.replica_engine import ManagedKind, ReplicaManagerBase
from controlplane.controllers.runtime import resources as R

__all__ = ["ReplicationManager"]


class ReplicationManager(ReplicaManagerBase):
    name = "replicationcontroller"
    event_source = "replication-controller"
    managed = ManagedKind(R.REPLICATIONCONTROLLERS, OwnerKind("v1", "ReplicationController"))

    def selector_of(self, owner: Mapping[str, Any]) -> LabelSelector:
        """The map as matchLabels (the v1 -> apps conversion); absent selects nothing."""
        selector = (owner.get("spec") or {}).get("selector")
        return label_selector_from_dict(None if selector is None else {"matchLabels": selector})
