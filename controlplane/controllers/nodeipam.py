"""Node IPAM controller with upstream's RangeAllocator (pkg/controller/nodeipam/ipam): a pod CIDR
per node (`spec.podCIDR` and `spec.podCIDRs`, one per cluster CIDR for dual-stack) carved from
`--cluster-cidr`, released when the node goes.

The allocation map is rebuilt from the nodes that already have CIDRs before the first node is
served, so a restarted controller never hands out a CIDR twice. Assignments are written with the
node's resourceVersion as a precondition: a node whose CIDRs landed while the cache lagged gets a
Conflict instead of a second CIDR, and the reserved one goes back to the pool.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from controlplane.api import errors
from controlplane.controllers.cidrset import (
    CIDRRangeNoCIDRsRemainingError,
    CIDRSet,
    IPNetwork,
    parse_cidrs,
)
from controlplane.controllers.runtime import Controller, R

__all__ = ["NodeIPAMController", "build_cidr_sets"]

Obj = Mapping[str, Any]

DEFAULT_IPV6_MASK = 64


def build_cidr_sets(
    cluster_cidr: str, ipv4_mask: int, ipv6_mask: int = DEFAULT_IPV6_MASK, service_cidr: str = ""
) -> list[CIDRSet]:
    """One CIDR set per cluster CIDR, with the Service range (if it overlaps) taken out."""
    sets = [
        CIDRSet(cidr, ipv4_mask if cidr.version == 4 else ipv6_mask) for cidr in parse_cidrs(cluster_cidr)
    ]
    for service in parse_cidrs(service_cidr) if service_cidr else []:
        for cidr_set in sets:
            if service.version == cidr_set.cluster.version and service.overlaps(cidr_set.cluster):
                cidr_set.occupy(service)
    return sets


def _pod_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = list(spec.get("podCIDRs") or [])
    if not cidrs and spec.get("podCIDR"):
        cidrs = [spec["podCIDR"]]
    return [str(c) for c in cidrs]


class NodeIPAMController(Controller):
    name = "nodeipam"
    event_source = "cidrAllocator"
    workers = 30  # upstream cidrUpdateWorkers

    def setup(self) -> None:
        config = self.ctx.config
        self.cidr_sets = build_cidr_sets(
            config.cluster_cidr,
            config.node_cidr_mask_size,
            int(config.extra.get("node_cidr_mask_size_ipv6", DEFAULT_IPV6_MASK)),
            str(config.extra.get("service_cluster_ip_range", "")),
        )
        self.nodes = self.ctx.informers.informer(R.NODES)
        self._initialised = False
        self.nodes.add_handler(self._on_node)

    def _on_node(self, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if event == "DELETED":
            # Nodes carry no finalizer, so the deletion event is the last word on their CIDRs.
            gone = old or new
            if gone is not None and self._initialised:
                self._release(gone)
            if gone is not None:
                self.enqueue_obj(gone)
            return
        self.enqueue_obj(new)

    def _initialise(self) -> None:
        """Occupy every CIDR the existing nodes hold, before the first allocation."""
        if self._initialised:
            return
        for node in self.nodes.list():
            try:
                self._occupy(node)
            except ValueError as exc:
                self.log.error("node %s: %s", node["metadata"].get("name"), exc)  # noqa: TRY400
        self._initialised = True

    def _parse(self, node: Obj) -> list[IPNetwork]:
        name = node["metadata"].get("name")
        cidrs = []
        for index, text in enumerate(_pod_cidrs(node)):
            try:
                cidr = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(f"failed to parse node {name}, CIDR {text}") from None
            if index >= len(self.cidr_sets):
                raise ValueError(
                    f"node:{name} has an allocated cidr: {text} at index:{index} "
                    "that does not exist in cluster cidrs configuration"
                )
            cidrs.append(cidr)
        return cidrs

    def _occupy(self, node: Obj) -> None:
        for index, cidr in enumerate(self._parse(node)):
            self.cidr_sets[index].occupy(cidr)

    def _release(self, node: Obj) -> None:
        try:
            for index, cidr in enumerate(self._parse(node)):
                self.cidr_sets[index].release(cidr)
        except ValueError as exc:
            self.log.error("releasing CIDRs: %s", exc)  # noqa: TRY400

    async def reconcile(self, key: str) -> float | None:
        self._initialise()
        node = self.nodes.get(key)
        if node is None:
            return None
        if node["metadata"].get("deletionTimestamp"):
            self._release(node)
            return None
        if _pod_cidrs(node):
            try:
                self._occupy(node)
            except ValueError as exc:
                raise errors.InternalError(message=str(exc)) from None
            return None

        allocated: list[IPNetwork] = []
        for index, cidr_set in enumerate(self.cidr_sets):
            try:
                allocated.append(cidr_set.allocate_next())
            except CIDRRangeNoCIDRsRemainingError as exc:
                for i, cidr in enumerate(allocated):
                    self.cidr_sets[i].release(cidr)
                self.ctx.recorder.event(
                    {**node, "apiVersion": "v1", "kind": "Node"},
                    "Warning",
                    "CIDRNotAvailable",
                    f"Node {key} status is now: CIDRNotAvailable",
                )
                raise errors.InternalError(
                    message=f"failed to allocate cidr from cluster cidr at idx:{index}: {exc}"
                ) from None
        await self._assign(node, allocated)
        return None

    async def _assign(self, node: Obj, allocated: list[IPNetwork]) -> None:
        texts = [str(c) for c in allocated]
        name = node["metadata"]["name"]
        patch = {
            "metadata": {"resourceVersion": node["metadata"].get("resourceVersion")},
            "spec": {"podCIDR": texts[0], "podCIDRs": texts},
        }
        try:
            await self.ctx.client.patch(R.NODES, name, patch)
        except errors.StatusError as exc:
            # The CIDRs were not assigned (a Conflict means the node changed under us, maybe
            # gaining CIDRs): give them back; the retry looks at the node afresh.
            for index, cidr in enumerate(allocated):
                self.cidr_sets[index].release(cidr)
            if not isinstance(exc, errors.Conflict | errors.NotFound):
                self.ctx.recorder.event(
                    {**node, "apiVersion": "v1", "kind": "Node"},
                    "Warning",
                    "CIDRAssignmentFailed",
                    f"Node {name} status is now: CIDRAssignmentFailed",
                )
            if isinstance(exc, errors.NotFound):
                return
            raise
        self.log.info("Set node %s PodCIDR to %s", name, texts)
