"""Pure helpers over Node objects (plain dicts) shared by the cloud controllers."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from providers.model import NodeAddress, NodeRef

__all__ = [
    "ANNOTATION_PROVIDED_NODE_IP",
    "LABEL_EXCLUDE_FROM_LB",
    "LABEL_LIFECYCLE_EXCLUDE",
    "TAINT_SHUTDOWN",
    "TAINT_TO_BE_DELETED",
    "TAINT_UNINITIALIZED",
    "addresses_changed",
    "addresses_from_node_ip",
    "condition",
    "has_taint",
    "is_ready",
    "node_addresses",
    "node_ref",
    "pod_cidrs",
    "provider_id",
    "to_api_addresses",
    "without_taint",
]

Obj = Mapping[str, Any]

TAINT_UNINITIALIZED = "node.cloudprovider.kubernetes.io/uninitialized"
TAINT_SHUTDOWN = "node.cloudprovider.kubernetes.io/shutdown"
TAINT_TO_BE_DELETED = "ToBeDeletedByClusterAutoscaler"
ANNOTATION_PROVIDED_NODE_IP = "alpha.kubernetes.io/provided-node-ip"
LABEL_EXCLUDE_FROM_LB = "node.kubernetes.io/exclude-from-external-load-balancers"
LABEL_LIFECYCLE_EXCLUDE = "node.kubernetes.io/exclude-from-lifecycle-management"


def _meta(node: Obj) -> Mapping[str, Any]:
    return node.get("metadata") or {}


def provider_id(node: Obj) -> str:
    return str((node.get("spec") or {}).get("providerID") or "")


def taints(node: Obj) -> list[dict[str, Any]]:
    return [dict(t) for t in (node.get("spec") or {}).get("taints") or []]


def has_taint(node: Obj, key: str) -> bool:
    return any(t.get("key") == key for t in taints(node))


def without_taint(node: Obj, key: str) -> list[dict[str, Any]]:
    return [t for t in taints(node) if t.get("key") != key]


def condition(node: Obj, type_: str) -> Mapping[str, Any] | None:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond  # type: ignore[no-any-return]
    return None


def is_ready(node: Obj) -> bool:
    cond = condition(node, "Ready")
    return cond is not None and cond.get("status") == "True"


def pod_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = list(spec.get("podCIDRs") or [])
    if not cidrs and spec.get("podCIDR"):
        cidrs = [spec["podCIDR"]]
    return [str(c) for c in cidrs]


def node_addresses(node: Obj) -> tuple[NodeAddress, ...]:
    return tuple(
        NodeAddress(type=str(a.get("type", "")), address=str(a.get("address", "")))
        for a in (node.get("status") or {}).get("addresses") or []
    )


def to_api_addresses(addresses: Iterable[NodeAddress]) -> list[dict[str, str]]:
    return [{"type": a.type, "address": a.address} for a in addresses]


def node_ref(node: Obj) -> NodeRef:
    meta = _meta(node)
    return NodeRef(
        name=str(meta.get("name", "")),
        provider_id=provider_id(node),
        uid=str(meta.get("uid") or ""),
        addresses=node_addresses(node),
        labels=dict(meta.get("labels") or {}),
    )


def addresses_changed(old: Sequence[NodeAddress], new: Sequence[NodeAddress]) -> bool:
    """Upstream's nodeAddressesChangeDetected: a different length, or an address of a type that differs."""
    if len(old) != len(new):
        return True
    by_type = {a.type: a.address for a in old}
    return any(by_type.get(a.type) != a.address for a in new)


def _parse_node_ips(annotation: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """component-helpers' ParseNodeIPAnnotation: one IP, or two of different families."""
    parts = [p.strip() for p in annotation.split(",")]
    if not 1 <= len(parts) <= 2:
        raise ValueError(f"failed to parse node IP {annotation!r}: must contain 1 or 2 IPs")
    try:
        ips = [ipaddress.ip_address(p) for p in parts]
    except ValueError:
        raise ValueError(f"failed to parse node IP {annotation!r}: not an IP address") from None
    if len(ips) == 2 and ips[0].version == ips[1].version:
        raise ValueError(
            f"failed to parse node IP {annotation!r}: dual-stack IPs must be of different families"
        )
    return ips


def _same_ip(text: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(text) == ip
    except ValueError:
        return False


def addresses_from_node_ip(provided: str, cloud: Sequence[NodeAddress]) -> tuple[NodeAddress, ...]:
    """Upstream's GetNodeAddressesFromNodeIP: each provided IP must be among the cloud's addresses,
    and goes first within its type; everything else follows in the cloud's order. Raises
    ValueError when the kubelet's node IP is not one the cloud knows (the node stays tainted)."""
    result = list(cloud)
    for ip in reversed(_parse_node_ips(provided)):
        matched = [a for a in result if _same_ip(a.address, ip)]
        if not matched:
            raise ValueError(f"failed to get node address from cloud provider that matches ip: {ip}")
        rest = [a for a in result if not _same_ip(a.address, ip)]
        result = matched + rest
    return tuple(result)
