"""The upstream `service.beta.kubernetes.io/aws-load-balancer-*` annotations, parsed up front.

Pure: a Service in, a `LoadBalancerOptions` out, or InvalidConfiguration / NotSupported naming
the annotation and the value that is wrong. Everything is checked before the first cloud call,
so a bad annotation never leaves a half-made load balancer (upstream finds some errors only
after creating the ELB).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from providers.errors import InvalidConfiguration, NotSupported
from providers.model import LoadBalancerService, ServicePort
from providers.tags import CLUSTER_TAG_PREFIX

__all__ = [
    "ANNOTATION_PREFIX",
    "HealthCheck",
    "LoadBalancerOptions",
    "parse_bool",
    "parse_key_values",
    "parse_options",
    "parse_source_ranges",
]

ANNOTATION_PREFIX = "service.beta.kubernetes.io/"
A = "service.beta.kubernetes.io/aws-load-balancer-"
TYPE = A + "type"
INTERNAL = A + "internal"
HC_PROTOCOL = A + "healthcheck-protocol"
HC_PORT = A + "healthcheck-port"
HC_PATH = A + "healthcheck-path"
HC_HEALTHY = A + "healthcheck-healthy-threshold"
HC_UNHEALTHY = A + "healthcheck-unhealthy-threshold"
HC_TIMEOUT = A + "healthcheck-timeout"
HC_INTERVAL = A + "healthcheck-interval"
TARGET_NODE_LABELS = A + "target-node-labels"
ADDITIONAL_TAGS = A + "additional-resource-tags"
SECURITY_GROUPS = A + "security-groups"
EXTRA_SECURITY_GROUPS = A + "extra-security-groups"
SOURCE_RANGES = ANNOTATION_PREFIX + "load-balancer-source-ranges"

Kind = Literal["nlb", "classic"]
TRAFFIC_PORT = "traffic-port"
KUBE_PROXY_HEALTHZ = "/healthz"


@dataclass(frozen=True)
class HealthCheck:
    protocol: str  # TCP, HTTP, HTTPS (classic ELB also SSL)
    port: str  # "traffic-port" or a port number
    path: str  # "" for TCP/SSL
    healthy_threshold: int
    unhealthy_threshold: int
    timeout: int
    interval: int


@dataclass(frozen=True)
class LoadBalancerOptions:
    kind: Kind
    internal: bool
    ports: tuple[ServicePort, ...]
    health_check: HealthCheck
    source_ranges: tuple[str, ...]
    target_node_labels: Mapping[str, str] = field(default_factory=dict)
    additional_tags: Mapping[str, str] = field(default_factory=dict)
    security_groups: tuple[str, ...] = ()
    extra_security_groups: tuple[str, ...] = ()


def _bad(annotation: str, value: str, why: str) -> InvalidConfiguration:
    return InvalidConfiguration(f"annotation {annotation}={value!r}: {why}", code="InvalidAnnotation")


def parse_bool(annotation: str, value: str) -> bool:
    """Go's strconv.ParseBool, which upstream uses."""
    if value in {"1", "t", "T", "true", "TRUE", "True"}:
        return True
    if value in {"0", "f", "F", "false", "FALSE", "False"}:
        return False
    raise _bad(annotation, value, "not a boolean")


def parse_key_values(annotation: str, value: str) -> dict[str, str]:
    """`k1=v1,k2=v2` (upstream's getKeyValuePropertiesFromAnnotation; `k` alone means an empty value)."""
    out: dict[str, str] = {}
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, val = item.partition("=")
        key, val = key.strip(), val.strip()
        if not key:
            raise _bad(annotation, value, f"{item!r} has no key")
        if sep and "=" in val:
            raise _bad(annotation, value, f"{item!r} has more than one '='")
        out[key] = val
    return out


def _tags(value: str) -> dict[str, str]:
    tags = parse_key_values(ADDITIONAL_TAGS, value)
    for key, val in tags.items():
        if key.lower().startswith("aws:"):
            raise _bad(ADDITIONAL_TAGS, value, f"tag key {key!r}: the aws: prefix is reserved by AWS")
        if (
            key.startswith(CLUSTER_TAG_PREFIX)
            or key.startswith("pinnace.dev/")
            or key == "kubernetes.io/service-name"
        ):
            raise _bad(ADDITIONAL_TAGS, value, f"tag key {key!r} is set by the cloud controller")
        if len(key) > 128 or len(val) > 256:
            raise _bad(ADDITIONAL_TAGS, value, f"tag {key!r}: keys are at most 128 and values 256 characters")
    return tags


def parse_source_ranges(annotation: str, values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Normalised CIDRs (host bits cleared, as Go's ParseCIDR does), duplicates dropped, order kept."""
    out: list[str] = []
    for raw in values:
        text = raw.strip()
        if not text:
            continue
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise _bad(annotation, ",".join(values), f"{text!r} is not a CIDR") from None
        if str(net) not in out:
            out.append(str(net))
    return tuple(out)


def _int(annotation: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise _bad(annotation, value, "not an integer") from None
    if not low <= number <= high:
        raise _bad(annotation, value, f"must be between {low} and {high}")
    return number


def _security_groups(annotation: str, value: str) -> tuple[str, ...]:
    groups = tuple(g.strip() for g in value.split(",") if g.strip())
    for g in groups:
        if not g.startswith("sg-"):
            raise _bad(annotation, value, f"{g!r} is not a security group id (sg-...)")
    return groups


def _kind(annotations: Mapping[str, str], default: Kind) -> Kind:
    value = annotations.get(TYPE)
    if value is None or value == "":
        return default
    if value == "nlb":
        return "nlb"
    if value in {"classic", "elb", "clb"}:
        return "classic"
    if value in {"nlb-ip", "external"}:
        raise NotSupported(
            f"annotation {TYPE}={value!r} is handled by the AWS Load Balancer Controller, not by this cloud controller",
            code="ImplementedElsewhere",
        )
    raise _bad(TYPE, value, "expected nlb or classic")


def _health_check(service: LoadBalancerService, kind: Kind, ports: tuple[ServicePort, ...]) -> HealthCheck:
    a = service.annotations
    local = service.external_traffic_policy == "Local"
    if local:
        if not service.health_check_node_port:
            raise InvalidConfiguration(
                "externalTrafficPolicy is Local but the Service has no healthCheckNodePort",
                code="InvalidService",
            )
        # kube-proxy answers /healthz on the health-check node port only where a local endpoint runs.
        hc = HealthCheck("HTTP", str(service.health_check_node_port), KUBE_PROXY_HEALTHZ, 2, 2, 10, 10)
        if kind == "classic":
            hc = HealthCheck("HTTP", str(service.health_check_node_port), KUBE_PROXY_HEALTHZ, 2, 6, 5, 10)
    elif kind == "nlb":
        hc = HealthCheck("TCP", TRAFFIC_PORT, "", 3, 3, 10, 30)
    else:
        first = ports[0].node_port if ports else 0
        hc = HealthCheck("TCP", str(first), "", 2, 6, 5, 10)

    protocol = hc.protocol
    if HC_PROTOCOL in a:
        protocol = a[HC_PROTOCOL].strip().upper()
        allowed = {"TCP", "HTTP", "HTTPS"} | ({"SSL"} if kind == "classic" else set())
        if protocol not in allowed:
            raise _bad(HC_PROTOCOL, a[HC_PROTOCOL], f"expected one of {', '.join(sorted(allowed))}")
    path = hc.path if protocol in {"HTTP", "HTTPS"} else ""
    if protocol in {"HTTP", "HTTPS"}:
        path = a.get(HC_PATH, hc.path or "/").strip()
        if not path.startswith("/") or len(path) > 1024:
            raise _bad(HC_PATH, a.get(HC_PATH, ""), "must be an absolute path of at most 1024 characters")
    port = hc.port
    if HC_PORT in a:
        port = a[HC_PORT].strip()
        if port != TRAFFIC_PORT:
            port = str(_int(HC_PORT, port, 1, 65535))
    if kind == "classic" and port == TRAFFIC_PORT:
        port = str(ports[0].node_port) if ports else port
    limits = {"timeout": (2, 60 if kind == "classic" else 120), "interval": (5, 300)}
    healthy = _int(HC_HEALTHY, a[HC_HEALTHY], 2, 10) if HC_HEALTHY in a else hc.healthy_threshold
    unhealthy = _int(HC_UNHEALTHY, a[HC_UNHEALTHY], 2, 10) if HC_UNHEALTHY in a else hc.unhealthy_threshold
    timeout = _int(HC_TIMEOUT, a[HC_TIMEOUT], *limits["timeout"]) if HC_TIMEOUT in a else hc.timeout
    interval = _int(HC_INTERVAL, a[HC_INTERVAL], *limits["interval"]) if HC_INTERVAL in a else hc.interval
    if kind == "classic" and timeout >= interval:
        raise _bad(HC_TIMEOUT, str(timeout), f"must be less than the interval ({interval}s)")
    return HealthCheck(protocol, port, path, healthy, unhealthy, timeout, interval)


def _ports(service: LoadBalancerService, kind: Kind) -> tuple[ServicePort, ...]:
    if not service.ports:
        raise InvalidConfiguration("requested load balancer with no ports", code="InvalidService")
    allowed = {"TCP", "UDP"} if kind == "nlb" else {"TCP"}
    seen: set[int] = set()
    for p in service.ports:
        if p.protocol.upper() not in allowed:
            raise InvalidConfiguration(
                f"port {p.name or p.port}: protocol {p.protocol} is not supported by "
                f"{'an NLB' if kind == 'nlb' else 'a classic ELB'} (supported: {', '.join(sorted(allowed))})",
                code="UnsupportedProtocol",
            )
        if p.port in seen:
            # One listener per port: AWS load balancers cannot listen on a port twice (TCP and UDP).
            raise InvalidConfiguration(
                f"port {p.port} is listed twice (mixed protocols on one port are not supported)",
                code="MixedProtocol",
            )
        seen.add(p.port)
    # Ports without a node port (allocateLoadBalancerNodePorts: false) cannot be served by instance targets.
    served = tuple(p for p in service.ports if p.node_port)
    if not served:
        raise InvalidConfiguration(
            "no Service port has a nodePort; instance targets need one", code="InvalidService"
        )
    return served


def parse_options(service: LoadBalancerService, *, default_kind: Kind = "nlb") -> LoadBalancerOptions:
    a = service.annotations
    kind = _kind(a, default_kind)
    if service.session_affinity not in {"", "None"}:
        raise NotSupported(
            f"unsupported load balancer affinity: {service.session_affinity}", code="UnsupportedAffinity"
        )
    if service.load_balancer_ip:
        raise InvalidConfiguration("LoadBalancerIP cannot be specified for AWS ELB", code="InvalidService")
    ports = _ports(service, kind)
    internal = False
    if INTERNAL in a:
        value = a[INTERNAL].strip()
        # Upstream: "false" means public, any other non-empty value (true, 0.0.0.0/0...) internal.
        internal = value != "" and value.lower() != "false"
    if service.load_balancer_source_ranges:
        ranges = parse_source_ranges("spec.loadBalancerSourceRanges", service.load_balancer_source_ranges)
    elif a.get(SOURCE_RANGES, "").strip():
        ranges = parse_source_ranges(SOURCE_RANGES, a[SOURCE_RANGES].split(","))
    else:
        ranges = ("0.0.0.0/0",)
    labels = parse_key_values(TARGET_NODE_LABELS, a.get(TARGET_NODE_LABELS, ""))
    return LoadBalancerOptions(
        kind=kind,
        internal=internal,
        ports=ports,
        health_check=_health_check(service, kind, ports),
        source_ranges=ranges,
        target_node_labels=labels,
        additional_tags=_tags(a.get(ADDITIONAL_TAGS, "")),
        security_groups=_security_groups(SECURITY_GROUPS, a.get(SECURITY_GROUPS, "")),
        extra_security_groups=_security_groups(EXTRA_SECURITY_GROUPS, a.get(EXTRA_SECURITY_GROUPS, "")),
    )
