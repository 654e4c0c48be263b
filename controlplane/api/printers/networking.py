"""Printers for `networking.k8s.io` (ingresses, ingress classes, network policies) and
`discovery.k8s.io` endpoint slices, after upstream `pkg/printers/internalversion/printers.go`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controlplane.api.printers.common import (
    AGE,
    NAME,
    Column,
    Doc,
    Printer,
    age,
    as_int,
    as_list,
    as_map,
    as_str,
    dig,
    format_label_selector,
    list_with_more,
    load_balancer_ingress,
    maps,
    name,
)

__all__ = ["PRINTERS"]


def _hosts(rules: Any) -> str:
    """`formatHosts`: up to three hosts then "+ N more...", `*` when no rule names a host."""
    rules = maps(rules)
    limit, more = 3, False
    listed: list[str] = []
    for rule in rules:
        if len(listed) == limit:
            more = True
        host = as_str(rule.get("host"))
        if not more and host:
            listed.append(host)
    if not listed:
        return "*"
    text = ",".join(listed)
    return f"{text} + {len(rules) - limit} more..." if more else text


def _ingress_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec = as_map(obj.get("spec"))
    class_name = spec.get("ingressClassName")
    return [
        name(obj),
        as_str(class_name) if class_name is not None else "<none>",
        _hosts(spec.get("rules")),
        load_balancer_ingress(dig(obj, "status", "loadBalancer")),
        "80, 443" if as_list(spec.get("tls")) else "80",
        age(obj, now),
    ]


_INGRESS = Printer(
    (
        NAME,
        Column(
            "Class",
            description="The name of the IngressClass resource that should be used for additional configuration",
        ),
        Column(
            "Hosts", description="Hosts that incoming requests are matched against before the ingress rule"
        ),
        Column("Address", description="Address is a list containing ingress points for the load-balancer"),
        Column("Ports", description="Ports of TLS configurations that open"),
        AGE,
    ),
    _ingress_row,
)


def _ingress_class_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    params = dig(obj, "spec", "parameters")
    text = "<none>"
    if isinstance(params, Mapping):
        text = as_str(params.get("kind"))
        if params.get("apiGroup") is not None:
            text += "." + as_str(params.get("apiGroup"))
        text += "/" + as_str(params.get("name"))
    return [name(obj), as_str(dig(obj, "spec", "controller")), text, age(obj, now)]


_INGRESS_CLASS = Printer(
    (
        NAME,
        Column("Controller", description="Controller that is responsible for handling this class"),
        Column("Parameters", description="A reference to a resource with additional parameters"),
        AGE,
    ),
    _ingress_class_row,
)

_NETWORK_POLICY = Printer(
    (NAME, Column("Pod-Selector", description=Doc("networking.v1.NetworkPolicySpec", "podSelector")), AGE),
    lambda obj, now: [
        name(obj),
        # podSelector is a struct upstream, never nil: a missing one selects every pod.
        format_label_selector(dig(obj, "spec", "podSelector") or {}),
        age(obj, now),
    ],
)


def _slice_ports(ports: Any) -> str:
    limit, more, count = 3, False, 0
    listed: list[str] = []
    for port in maps(ports):
        if len(listed) < limit:
            if port.get("port") is not None:
                listed.append(str(as_int(port.get("port"))))
            elif port.get("name") is not None:
                listed.append(as_str(port.get("name")))
            else:
                listed.append("*")
        elif len(listed) == limit:
            more = True
        count += 1
    return list_with_more(listed, more, count, limit)


def _slice_endpoints(endpoints: Any) -> str:
    limit, more, count = 3, False, 0
    listed: list[str] = []
    for endpoint in maps(endpoints):
        for address in as_list(endpoint.get("addresses")):
            if len(listed) < limit:
                listed.append(as_str(address))
            elif len(listed) == limit:
                more = True
            count += 1
    return list_with_more(listed, more, count, limit)


_ENDPOINT_SLICE = Printer(
    (
        NAME,
        Column("AddressType", description=Doc("discovery.v1.EndpointSlice", "addressType")),
        Column("Ports", description=Doc("discovery.v1.EndpointSlice", "ports")),
        Column("Endpoints", description=Doc("discovery.v1.EndpointSlice", "endpoints")),
        AGE,
    ),
    lambda obj, now: [
        name(obj),
        as_str(obj.get("addressType")),
        _slice_ports(obj.get("ports")),
        _slice_endpoints(obj.get("endpoints")),
        age(obj, now),
    ],
)

PRINTERS: dict[tuple[str, str], Printer] = {
    ("networking.k8s.io", "ingresses"): _INGRESS,
    ("networking.k8s.io", "ingressclasses"): _INGRESS_CLASS,
    ("networking.k8s.io", "networkpolicies"): _NETWORK_POLICY,
    ("discovery.k8s.io", "endpointslices"): _ENDPOINT_SLICE,
}
