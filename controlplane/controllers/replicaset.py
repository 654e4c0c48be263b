"""The ReplicaSet controller: keeps `spec.replicas` pods that match a ReplicaSet's selector
running, owned through controller references (upstream pkg/controller/replicaset)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.api.selectors import LabelSelector, label_selector_from_dict
from controlplane.controllers.controller_ref import OwnerKind
from controlplane.controllers.replica_engine import ManagedKind, ReplicaManagerBase
from controlplane.controllers.runtime import resources as R

__all__ = ["ReplicaSetController"]


class ReplicaSetController(ReplicaManagerBase):
    name = "replicaset"
    event_source = "replicaset-controller"
    managed = ManagedKind(R.REPLICASETS, OwnerKind("apps/v1", "ReplicaSet"))

    def selector_of(self, owner: Mapping[str, Any]) -> LabelSelector:
        """metav1.LabelSelectorAsSelector: a missing selector selects nothing."""
        return label_selector_from_dict((owner.get("spec") or {}).get("selector"))
