"""The Endpoints object a Service should have, as pure functions (upstream endpoints_controller's
syncService body and pkg/api/v1/endpoints RepackSubsets).

Every (pod, port) pair starts as its own subset; repacking then groups addresses by the exact set
of ports they serve, so pods whose named target ports resolve differently land in different
subsets. A pod that is not ready on any port is not ready everywhere ("not ready trumps ready").
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from typing import Any

from controlplane.controllers.endpointslice_util import (
    find_port,
    is_ipv6,
    pod_target_ref,
    should_pod_be_in_endpoints,
    should_set_hostname,
    stable_hash,
)
from controlplane.controllers.podutil import is_pod_ready

__all__ = [
    "MAX_CAPACITY",
    "OVER_CAPACITY",
    "TRUNCATED",
    "capacity_annotation_set_correctly",
    "desired_subsets",
    "normalize_subsets",
    "pod_address",
    "repack_subsets",
    "truncate",
]

Obj = Mapping[str, Any]
Subset = dict[str, Any]

MAX_CAPACITY = 1000
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
TRUNCATED = "truncated"

# A port that stands for "no ports" while repacking, so a headless Service without ports keeps
# its addresses (upstream uses the same sentinel).
_NO_PORT: dict[str, Any] = {"port": -1}


def pod_address(service: Obj, pod: Obj) -> dict[str, Any] | None:
    """Upstream podToEndpointAddressForService: the pod IP of the Service's (first) family."""
    spec = service.get("spec") or {}
    families = spec.get("ipFamilies") or []
    if families:
        want_v6 = families[0] == "IPv6"
    else:
        cluster_ip = spec.get("clusterIP") or ""
        if cluster_ip and cluster_ip != "None":
            want_v6 = is_ipv6(cluster_ip)
        else:
            want_v6 = is_ipv6(str((pod.get("status") or {}).get("podIP") or ""))
    status = pod.get("status") or {}
    ips = [str(e.get("ip", "")) for e in status.get("podIPs") or []]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    ip = next((candidate for candidate in ips if is_ipv6(candidate) == want_v6), "")
    if not ip:
        return None
    address: dict[str, Any] = {"ip": ip}
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        address["nodeName"] = node
    address["targetRef"] = pod_target_ref(pod)
    return address


def _endpoint_port(service_port: Obj, number: int) -> dict[str, Any]:
    port: dict[str, Any] = {}
    if service_port.get("name"):
        port["name"] = service_port["name"]
    port["port"] = number
    port["protocol"] = service_port.get("protocol") or "TCP"
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


def desired_subsets(service: Obj, pods: Iterable[Obj]) -> tuple[list[Subset], int, int]:
    """(subsets, ready count, not-ready count) for a Service that has a selector."""
    spec = service.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    ports = spec.get("ports") or []
    subsets: list[Subset] = []
    ready_total = not_ready_total = 0
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, publish):
            continue
        address = pod_address(service, pod)
        if address is None:
            continue
        if should_set_hostname(pod, service):
            address = {"ip": address["ip"], "hostname": pod["spec"]["hostname"], **address}
        ready = publish or is_pod_ready(pod)
        field = "addresses" if ready else "notReadyAddresses"
        if not ports:
            # A headless Service may have no ports: its addresses still count.
            if spec.get("clusterIP") == "None":
                subsets.append({field: [address], "ports": []})
                ready_total, not_ready_total = ready_total + ready, not_ready_total + (not ready)
            continue
        for service_port in ports:
            number = find_port(pod, service_port)
            if number is None:
                continue
            subsets.append({field: [address], "ports": [_endpoint_port(service_port, number)]})
            ready_total, not_ready_total = ready_total + ready, not_ready_total + (not ready)
    return repack_subsets(subsets), ready_total, not_ready_total


def _address_key(address: Obj) -> tuple[str, str]:
    return str(address.get("ip", "")), str((address.get("targetRef") or {}).get("uid", ""))


def _address_order(address: Obj) -> tuple[bytes, int, str]:
    """Upstream LessEndpointAddress: by IP bytes, then no targetRef first, then by UID."""
    ref = address.get("targetRef")
    return str(address.get("ip", "")).encode(), 0 if ref is None else 1, str((ref or {}).get("uid", ""))


def _port_key(port: Obj) -> str:
    return stable_hash(dict(port))


def repack_subsets(subsets: Iterable[Obj]) -> list[Subset]:
    """The canonical form: addresses grouped by the set of ports they serve, sorted."""
    addresses: dict[tuple[str, str], dict[str, Any]] = {}
    ports: dict[str, dict[str, Any]] = {}
    # port hash -> address key -> ready
    by_port: dict[str, dict[tuple[str, str], bool]] = {}
    for subset in subsets:
        subset_ports = subset.get("ports") or [_NO_PORT]
        for port in subset_ports:
            pkey = _port_key(port)
            ports.setdefault(pkey, dict(port))
            members = by_port.setdefault(pkey, {})
            for field, ready in (("addresses", True), ("notReadyAddresses", False)):
                for address in subset.get(field) or []:
                    akey = _address_key(address)
                    addresses.setdefault(akey, copy.deepcopy(dict(address)))
                    # Not ready trumps ready.
                    if members.get(akey, True):
                        members[akey] = ready
    groups: dict[tuple[tuple[tuple[str, str], bool], ...], list[str]] = {}
    for pkey, members in by_port.items():
        group = tuple(sorted(members.items()))
        groups.setdefault(group, []).append(pkey)
    final: list[Subset] = []
    for group, pkeys in groups.items():
        ready_addrs = sorted((addresses[a] for a, ok in group if ok), key=_address_order)
        not_ready = sorted((addresses[a] for a, ok in group if not ok), key=_address_order)
        grouped_ports = sorted((ports[p] for p in pkeys), key=_port_key)
        packed: Subset = {}
        if ready_addrs:
            packed["addresses"] = ready_addrs
        if not_ready:
            packed["notReadyAddresses"] = not_ready
        if grouped_ports and grouped_ports != [_NO_PORT]:
            packed["ports"] = grouped_ports
        final.append(packed)
    final.sort(key=stable_hash)
    return final


def _count(subsets: Iterable[Obj]) -> tuple[int, int]:
    ready = not_ready = 0
    for subset in subsets:
        ready += len(subset.get("addresses") or [])
        not_ready += len(subset.get("notReadyAddresses") or [])
    return ready, not_ready


def capacity_annotation_set_correctly(annotations: Mapping[str, str] | None, subsets: Iterable[Obj]) -> bool:
    ready, not_ready = _count(subsets)
    if ready + not_ready > MAX_CAPACITY:
        return False
    return OVER_CAPACITY not in (annotations or {})


def truncate(subsets: list[Subset]) -> bool:
    """Cut the subsets down to MAX_CAPACITY addresses in place, each subset keeping its share
    (rounded up) and ready addresses kept before not-ready ones. True when something was cut."""
    total_ready, total_not_ready = _count(subsets)
    if total_ready + total_not_ready <= MAX_CAPACITY:
        return False
    truncate_ready = total_ready > MAX_CAPACITY
    if truncate_ready:
        budget, total = MAX_CAPACITY, total_ready
    else:
        budget, total = MAX_CAPACITY - total_ready, total_not_ready
    can_add = budget
    for subset in subsets:
        field = "addresses" if truncate_ready else "notReadyAddresses"
        in_subset = len(subset.get(field) or [])
        to_add = min(math.ceil(in_subset / total * budget), can_add)
        kept = (subset.get(field) or [])[:to_add]
        if kept:
            subset[field] = kept
        else:
            subset.pop(field, None)
        if truncate_ready:
            subset.pop("notReadyAddresses", None)
        can_add -= len(kept)
    return True


def normalize_subsets(subsets: Iterable[Obj] | None) -> list[Subset]:
    """Subsets as compared for "is there anything to write": empty lists dropped, and the
    resourceVersion of target references ignored (a pod's unrelated changes must not rewrite)."""
    out: list[Subset] = []
    for subset in subsets or []:
        norm: Subset = {}
        for field in ("addresses", "notReadyAddresses"):
            addrs = []
            for address in subset.get(field) or []:
                clean = {k: v for k, v in address.items() if v not in (None, "")}
                if "targetRef" in clean:
                    clean["targetRef"] = {
                        k: v for k, v in clean["targetRef"].items() if k != "resourceVersion" and v
                    }
                addrs.append(clean)
            if addrs:
                norm[field] = addrs
        ports = [{k: v for k, v in p.items() if v not in (None, "")} for p in subset.get("ports") or []]
        if ports:
            norm["ports"] = ports
        out.append(norm)
    return out
