"""The EndpointSlice reconciler as a pure function (upstream k8s.io/endpointslice reconciler.go and
utils.go): from a Service, its pods and its current slices, the slices to create, update and
delete, with upstream's minimal-churn strategy.

1. Endpoints no longer wanted leave the slices that hold them; changed endpoints are updated in
   place (an endpoint's identity is its addresses, hostname and pod, so a readiness or zone
   change is an update, not a move).
2. New endpoints fill the slices already being updated, fullest first.
3. What remains goes into the unchanged slice that it fills closest to full, or new slices.
4. Creates are turned into updates of slices that would otherwise be deleted.
A Service with nothing to publish keeps one empty placeholder slice per address type.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controlplane.controllers.controller_ref import OwnerKind, owner_reference
from controlplane.controllers.endpointslice_util import (
    HEADLESS_LABEL,
    find_port,
    is_ipv6,
    is_service_ip_set,
    pod_target_ref,
    should_pod_be_in_endpoints,
    should_set_hostname,
    stable_hash,
)
from controlplane.controllers.podutil import is_pod_ready

__all__ = [
    "LABEL_MANAGED_BY",
    "LABEL_SERVICE_NAME",
    "MANAGED_BY",
    "Plan",
    "address_types_for_service",
    "endpoint_hash",
    "owned_by",
    "reconcile",
]

Obj = Mapping[str, Any]
Slice = dict[str, Any]
NodeLookup = Callable[[str], Obj | None]

LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
_RESERVED = (LABEL_SERVICE_NAME, LABEL_MANAGED_BY, HEADLESS_LABEL)
SERVICE_KIND = OwnerKind("v1", "Service")


@dataclass
class Plan:
    create: list[Slice] = field(default_factory=list)
    update: list[Slice] = field(default_factory=list)
    delete: list[Slice] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


# -- endpoints ------------------------------------------------------------------------------


def endpoint_hash(endpoint: Obj) -> str:
    """Identity of an endpoint: addresses, hostname and the pod it points to."""
    ref = endpoint.get("targetRef") or {}
    return stable_hash(
        [
            sorted(endpoint.get("addresses") or []),
            endpoint.get("hostname") or "",
            ref.get("namespace") or "",
            ref.get("name") or "",
        ]
    )


def _equal_beyond_hash(a: Obj, b: Obj) -> bool:
    """Upstream EndpointsEqualBeyondHash (target reference resourceVersion ignored)."""
    for key in ("nodeName", "zone"):
        if (a.get(key) or None) != (b.get(key) or None):
            return False
    ca, cb = a.get("conditions") or {}, b.get("conditions") or {}
    for key in ("ready", "serving", "terminating"):
        if ca.get(key) != cb.get(key):
            return False

    def ref(e: Obj) -> dict[str, Any]:
        return {k: v for k, v in (e.get("targetRef") or {}).items() if k != "resourceVersion" and v}

    return ref(a) == ref(b)


def _pod_to_endpoint(pod: Obj, node: Obj | None, service: Obj, address_type: str) -> dict[str, Any]:
    meta = pod.get("metadata") or {}
    serving = is_pod_ready(pod)
    terminating = bool(meta.get("deletionTimestamp"))
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    ready = publish or (serving and not terminating)
    addresses = []
    for entry in (pod.get("status") or {}).get("podIPs") or []:
        ip = str(entry.get("ip", ""))
        if is_ipv6(ip) == (address_type == "IPv6"):
            addresses.append(ip)
    endpoint: dict[str, Any] = {
        "addresses": addresses,
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
    }
    if should_set_hostname(pod, service):
        endpoint["hostname"] = pod["spec"]["hostname"]
    endpoint["targetRef"] = pod_target_ref(pod)
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        endpoint["nodeName"] = node_name
    zone = ((node or {}).get("metadata") or {}).get("labels", {}).get(ZONE_LABEL) if node else None
    if zone:
        endpoint["zone"] = zone
    return endpoint


def _endpoint_ports(service: Obj, pod: Obj) -> list[dict[str, Any]]:
    spec = service.get("spec") or {}
    ports = spec.get("ports") or []
    if not ports and spec.get("clusterIP") == "None":
        return []
    out = []
    for service_port in ports:
        number = find_port(pod, service_port)
        if number is None:
            continue
        port: dict[str, Any] = {
            "name": service_port.get("name") or "",
            "port": number,
            "protocol": service_port.get("protocol") or "TCP",
        }
        if service_port.get("appProtocol"):
            port["appProtocol"] = service_port["appProtocol"]
        out.append(port)
    return out


def _normal_port(port: Obj) -> dict[str, Any]:
    """A port as the API returns it or as we build it, in one comparable form."""
    out: dict[str, Any] = {
        "name": port.get("name") or "",
        "port": port.get("port"),
        "protocol": port.get("protocol") or "TCP",
    }
    if port.get("appProtocol"):
        out["appProtocol"] = port["appProtocol"]
    return out


def _sorted_ports(ports: Iterable[Obj]) -> list[dict[str, Any]]:
    return sorted((dict(p) for p in ports), key=lambda p: stable_hash(_normal_port(p)))


def _port_map_key(ports: Iterable[Obj]) -> str:
    return stable_hash(sorted(stable_hash(_normal_port(p)) for p in ports))


# -- slices ---------------------------------------------------------------------------------


def address_types_for_service(service: Obj) -> list[str]:
    spec = service.get("spec") or {}
    families = spec.get("ipFamilies") or []
    types: list[str] = []
    for family in families:
        kind = "IPv4" if family == "IPv4" else "IPv6" if family == "IPv6" else ""
        if kind and kind not in types:
            types.append(kind)
    if types:
        return types
    cluster_ip = spec.get("clusterIP") or ""
    if cluster_ip and cluster_ip != "None":
        return ["IPv6" if is_ipv6(cluster_ip) else "IPv4"]
    # Headless without families (an old API server): both, until defaulted.
    return ["IPv4", "IPv6"]


def owned_by(endpoint_slice: Obj, service: Obj) -> bool:
    uid = (service.get("metadata") or {}).get("uid")
    return any(
        ref.get("uid") == uid and ref.get("kind") == "Service" and ref.get("apiVersion") == "v1"
        for ref in (endpoint_slice.get("metadata") or {}).get("ownerReferences") or []
    )


def slice_labels(endpoint_slice: Obj, service: Obj, controller_name: str) -> tuple[dict[str, str], bool]:
    """Upstream setEndpointSliceLabels: the Service's labels plus the reserved ones, and whether
    the slice's copy of the Service labels differs."""
    current = {
        k: v
        for k, v in ((endpoint_slice.get("metadata") or {}).get("labels") or {}).items()
        if k not in _RESERVED
    }
    wanted = {
        k: v for k, v in ((service.get("metadata") or {}).get("labels") or {}).items() if k not in _RESERVED
    }
    changed = current != wanted
    if not is_service_ip_set(service):
        wanted[HEADLESS_LABEL] = ""
    wanted[LABEL_SERVICE_NAME] = str((service.get("metadata") or {}).get("name", ""))
    wanted[LABEL_MANAGED_BY] = controller_name
    return wanted, changed


def _prefix(service_name: str) -> str:
    prefix = f"{service_name}-"
    # A generated name must stay a DNS subdomain; drop the dash when it would not fit.
    return prefix if len(prefix) <= 253 - 5 else service_name


def new_slice(service: Obj, ports: list[dict[str, Any]], address_type: str, controller_name: str) -> Slice:
    meta = service.get("metadata") or {}
    owner = owner_reference(service, SERVICE_KIND)
    endpoint_slice: Slice = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": _prefix(str(meta.get("name", ""))),
            "namespace": meta.get("namespace", ""),
            "ownerReferences": [owner],
        },
        "addressType": address_type,
        "endpoints": [],
        "ports": ports,
    }
    labels, _ = slice_labels(endpoint_slice, service, controller_name)
    endpoint_slice["metadata"]["labels"] = labels
    return endpoint_slice


def _name(endpoint_slice: Obj) -> str:
    return str((endpoint_slice.get("metadata") or {}).get("name") or "")


def _is_placeholder_of(existing: Obj, placeholder: Obj) -> bool:
    """Upstream placeholderSliceCompare: namespace, labels and the slice body alike."""
    em, pm = existing.get("metadata") or {}, placeholder.get("metadata") or {}
    return (
        em.get("namespace") == pm.get("namespace")
        and (em.get("labels") or {}) == (pm.get("labels") or {})
        and existing.get("addressType") == placeholder.get("addressType")
        and not existing.get("endpoints")
        and not existing.get("ports")
    )


def reconcile(
    service: Obj,
    pods: Iterable[Obj],
    existing: Iterable[Obj],
    node_lookup: NodeLookup,
    *,
    max_endpoints: int = 100,
    controller_name: str = MANAGED_BY,
) -> Plan:
    """The whole plan for one Service. `existing` are its slices managed by this controller that
    are not being deleted; they are never mutated (updates are deep copies)."""
    pod_list = list(pods)
    supported = address_types_for_service(service)
    plan = Plan()
    by_type: dict[str, list[Obj]] = {}
    stale_type: list[Obj] = []
    for endpoint_slice in existing:
        kind = str(endpoint_slice.get("addressType", ""))
        if kind not in supported:
            stale_type.append(endpoint_slice)
        else:
            by_type.setdefault(kind, []).append(endpoint_slice)
    for kind in supported:
        part = _reconcile_address_type(
            service, pod_list, by_type.get(kind, []), node_lookup, kind, max_endpoints, controller_name
        )
        plan.create += part.create
        plan.update += part.update
        plan.delete += part.delete
        plan.errors += part.errors
    plan.delete += [copy.deepcopy(dict(s)) for s in stale_type]
    return plan


def _reconcile_address_type(
    service: Obj,
    pods: list[Obj],
    existing: list[Obj],
    node_lookup: NodeLookup,
    address_type: str,
    max_endpoints: int,
    controller_name: str,
) -> Plan:
    plan = Plan()
    to_delete: list[Slice] = []
    existing_by_ports: dict[str, list[Obj]] = {}
    for endpoint_slice in existing:
        if owned_by(endpoint_slice, service):
            existing_by_ports.setdefault(_port_map_key(endpoint_slice.get("ports") or []), []).append(
                endpoint_slice
            )
        else:
            to_delete.append(copy.deepcopy(dict(endpoint_slice)))

    spec = service.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    svc_meta = service.get("metadata") or {}
    desired_ports: dict[str, list[dict[str, Any]]] = {}
    desired: dict[str, dict[str, dict[str, Any]]] = {}  # port key -> endpoint hash -> endpoint
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, True):
            continue
        ports = _endpoint_ports(service, pod)
        pkey = _port_map_key(ports)
        endpoints = desired.setdefault(pkey, {})
        desired_ports.setdefault(pkey, _sorted_ports(ports))
        node_name = str((pod.get("spec") or {}).get("nodeName") or "")
        node = node_lookup(node_name) if node_name else None
        if node is None and not publish:
            # Keep the rest of the Service published; retry this pod when its node shows up.
            plan.errors.append(
                f"skipping Pod {pod['metadata'].get('name')} for Service "
                f"{svc_meta.get('namespace')}/{svc_meta.get('name')}: Node {node_name} Not Found"
            )
            continue
        endpoint = _pod_to_endpoint(pod, node, service, address_type)
        if endpoint["addresses"]:
            endpoints[endpoint_hash(endpoint)] = endpoint

    creates: list[Slice] = []
    updates: list[Slice] = []
    for pkey, endpoints in desired.items():
        c, u, d = _reconcile_port_mapping(
            service,
            existing_by_ports.get(pkey, []),
            endpoints,
            desired_ports[pkey],
            address_type,
            max_endpoints,
            controller_name,
        )
        creates += c
        updates += u
        to_delete += d
    for pkey, slices in existing_by_ports.items():
        if pkey not in desired:
            to_delete += [copy.deepcopy(dict(s)) for s in slices]

    if len(existing) == len(to_delete) and not creates:
        placeholder = new_slice(service, [], address_type, controller_name)
        if len(to_delete) == 1 and _is_placeholder_of(to_delete[0], placeholder):
            to_delete = []  # the placeholder is already there
        else:
            creates.append(placeholder)

    # Reuse slices about to be deleted for creates: an update is cheaper than delete + create.
    i = 0
    while i < len(to_delete) and creates:
        doomed = to_delete[i]
        candidate = creates[-1]
        if doomed.get("addressType") == candidate.get("addressType") and owned_by(doomed, service):
            candidate["metadata"]["name"] = _name(doomed)
            candidate["metadata"].pop("generateName", None)
            candidate["metadata"]["resourceVersion"] = (doomed.get("metadata") or {}).get("resourceVersion")
            creates.pop()
            updates.append(candidate)
            to_delete.pop(i)
        else:
            i += 1
    plan.create, plan.update, plan.delete = creates, updates, to_delete
    return plan


def _reconcile_port_mapping(
    service: Obj,
    existing: list[Obj],
    desired: dict[str, dict[str, Any]],
    ports: list[dict[str, Any]],
    address_type: str,
    max_endpoints: int,
    controller_name: str,
) -> tuple[list[Slice], list[Slice], list[Slice]]:
    desired = dict(desired)
    originals: dict[str, Obj] = {}
    copies: dict[str, Slice] = {}  # slices this sync changes, deep-copied from the cache
    unchanged: list[str] = []
    to_update: list[str] = []
    to_delete: list[str] = []

    # 1. Drop endpoints no longer wanted, refresh changed ones, keep the rest in place.
    for endpoint_slice in existing:
        name = _name(endpoint_slice)
        originals[name] = endpoint_slice
        kept: list[dict[str, Any]] = []
        changed = False
        for endpoint in endpoint_slice.get("endpoints") or []:
            got = desired.pop(endpoint_hash(endpoint), None)
            if got is not None:
                kept.append(got)
                if not _equal_beyond_hash(got, endpoint):
                    changed = True
        labels, labels_changed = slice_labels(endpoint_slice, service, controller_name)
        if changed or len(kept) != len(endpoint_slice.get("endpoints") or []):
            if not kept:
                to_delete.append(name)
            else:
                copied = copy.deepcopy(dict(endpoint_slice))
                copied["endpoints"] = kept
                copied.setdefault("metadata", {})["labels"] = labels
                copies[name] = copied
                to_update.append(name)
        elif labels_changed:
            copied = copy.deepcopy(dict(endpoint_slice))
            copied.setdefault("metadata", {})["labels"] = labels
            copies[name] = copied
            to_update.append(name)
        else:
            unchanged.append(name)

    remaining = list(desired.values())

    # 2. Top up the slices being updated anyway, fullest first.
    if remaining and to_update:
        for name in sorted(to_update, key=lambda n: -len(copies[n]["endpoints"])):
            endpoint_slice = copies[name]
            while remaining and len(endpoint_slice["endpoints"]) < max_endpoints:
                endpoint_slice["endpoints"].append(remaining.pop(0))

    # 3. Fit the rest into the unchanged slice they fill best, else into new slices.
    creates: list[Slice] = []
    while remaining:
        target: Slice | None = None
        if len(remaining) < max_endpoints and unchanged:
            best = _slice_to_fill([originals[n] for n in unchanged], len(remaining), max_endpoints)
            if best is not None:
                target = copy.deepcopy(dict(best))
                target["endpoints"] = list(target.get("endpoints") or [])
                copies[_name(target)] = target
        if target is None:
            target = new_slice(service, copy.deepcopy(ports), address_type, controller_name)
        while remaining and len(target["endpoints"]) < max_endpoints:
            target["endpoints"].append(remaining.pop(0))
        name = _name(target)
        if name:
            if name not in to_update:
                to_update.append(name)
            if name in unchanged:
                unchanged.remove(name)
        else:
            creates.append(target)

    return (
        creates,
        [copies[n] for n in to_update],
        [copy.deepcopy(dict(originals[n])) for n in to_delete],
    )


def _slice_to_fill(slices: list[Obj], count: int, max_endpoints: int) -> Obj | None:
    """The slice that ends up closest to full with `count` more endpoints, if any has room."""
    closest_diff = max_endpoints
    closest: Obj | None = None
    for endpoint_slice in slices:
        diff = max_endpoints - (count + len(endpoint_slice.get("endpoints") or []))
        if 0 <= diff < closest_diff:
            closest_diff, closest = diff, endpoint_slice
            if diff == 0:
                break
    return closest
