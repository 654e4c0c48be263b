"""Cordon and drain a Node before its instance goes away, as `kubectl drain` does.

Pods are evicted through `pods/eviction`, so PodDisruptionBudgets are respected: a 429 means
the budget allows no disruption now and the pod is tried again on the next pass. DaemonSet pods
(their controller would recreate them on the same node) and mirror pods (the kubelet owns them)
are left alone; pods already terminating are waited for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.runtime import R

__all__ = ["MIRROR_ANNOTATION", "DrainResult", "cordon", "drain_pass", "pods_to_evict"]

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def _ignored(pod: Mapping[str, Any]) -> bool:
    meta = pod.get("metadata") or {}
    if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
        return True
    return any(
        ref.get("kind") == "DaemonSet" and ref.get("controller") for ref in meta.get("ownerReferences") or ()
    )


def pods_to_evict(
    pods: Sequence[Mapping[str, Any]], *, node_reachable: bool = True
) -> tuple[list[Mapping[str, Any]], int]:
    """(pods to evict now, pods still to wait for): DaemonSet and mirror pods count as neither.

    On a node that is not Ready no kubelet will ever confirm a terminating pod is gone, so
    those are not waited for (cluster-api's drain does the same for unreachable nodes)."""
    evict: list[Mapping[str, Any]] = []
    waiting = 0
    for pod in pods:
        if _ignored(pod):
            continue
        terminating = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
        if terminating and not node_reachable:
            continue
        waiting += 1
        if not terminating:
            evict.append(pod)
    return evict, waiting


@dataclass
class DrainResult:
    remaining: int = 0  # pods that must still leave the node
    evicted: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # refused by a PodDisruptionBudget (429)

    @property
    def done(self) -> bool:
        return self.remaining == 0


async def cordon(client: Client, node_name: str) -> bool:
    """Mark unschedulable; False when the Node is gone or already cordoned."""
    try:
        node = await client.get(R.NODES, node_name)
    except errors.NotFound:
        return False
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    try:
        await client.patch(R.NODES, node_name, {"spec": {"unschedulable": True}})
    except errors.NotFound:
        return False
    return True


async def drain_pass(
    client: Client, evict_client: Client, node_name: str, *, node_reachable: bool = True
) -> DrainResult:
    """One pass: evict what may go now. `evict_client` should not retry 429s itself (the next
    pass does), so one budget-blocked pod does not hold the whole pass."""
    listing = await client.list(R.PODS, None, params={"fieldSelector": f"spec.nodeName={node_name}"})
    evict, waiting = pods_to_evict(listing.get("items") or [], node_reachable=node_reachable)
    result = DrainResult(remaining=waiting)
    for pod in evict:
        meta = pod.get("metadata") or {}
        name, namespace = str(meta.get("name")), str(meta.get("namespace"))
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        }
        try:
            await evict_client.request("POST", R.PODS.url(namespace, name, "eviction"), body=body)
            result.evicted.append(f"{namespace}/{name}")
            if not node_reachable:
                result.remaining -= 1  # terminating now, and nobody will confirm it
        except errors.NotFound:
            result.remaining -= 1
        except errors.TooManyRequests:
            result.blocked.append(f"{namespace}/{name}")
    return result
