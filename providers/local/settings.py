"""The local cloud's settings, read from the `local:` section of the cloud config.

local:
  stateFile: /var/lib/pinnace/cloud.db   # shared by every process that opens it; default in memory
  zones: [local-1a, local-1b, local-1c]  # default: the region + a, b, c
  instanceCIDR: 10.0.0.0/16              # InternalIPs of instances
  publicIPs: false                       # also give each instance an ExternalIP
  publicCIDR: 198.51.100.0/24
  loadBalancerCIDR: 192.0.2.0/24         # load balancer addresses
  loadBalancerIngress: ip                # ip | hostname | both
  routeTables: 1                         # cluster route tables made on first use
  routeLimit: 50                         # routes per table, as AWS's default quota
  bootSeconds: 0                         # how long an instance stays pending
  terminatedRetentionSeconds: 3600       # terminated instances stay visible this long, as on EC2
  qps: 10                                # default: the top-level qps / burst
  burst: 20
  faults: {rate: 0.2, seed: 1, throttleShare: 0.5, afterShare: 0.0, retryAfter: 0.1}
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from providers.config import CloudConfig
from providers.errors import InvalidConfiguration

__all__ = ["DEFAULT_REGION", "FaultSettings", "LocalSettings"]

DEFAULT_REGION = "local-1"
_INGRESS_MODES = ("ip", "hostname", "both")
_INSTANCE_CIDR = ipaddress.IPv4Network("10.0.0.0/16")
_PUBLIC_CIDR = ipaddress.IPv4Network("198.51.100.0/24")  # TEST-NET-2
_LOAD_BALANCER_CIDR = ipaddress.IPv4Network("192.0.2.0/24")  # TEST-NET-1


@dataclass(frozen=True)
class FaultSettings:
    rate: float = 0.0
    seed: int = 0
    throttle_share: float = 0.5
    after_share: float = 0.0
    retry_after: float | None = None


@dataclass(frozen=True)
class LocalSettings:
    region: str
    zones: tuple[str, ...]
    default_zone: str
    state_file: str = ":memory:"
    instance_cidr: ipaddress.IPv4Network = _INSTANCE_CIDR
    public_ips: bool = False
    public_cidr: ipaddress.IPv4Network = _PUBLIC_CIDR
    load_balancer_cidr: ipaddress.IPv4Network = _LOAD_BALANCER_CIDR
    load_balancer_ingress: str = "ip"
    route_tables: int = 1
    route_limit: int = 50
    boot_seconds: float = 0.0
    terminated_retention: float = 3600.0
    qps: float = 10.0
    burst: int = 20
    faults: FaultSettings = FaultSettings()
    route_table_ids: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)  # the cloud config's tags, on every resource

    @classmethod
    def from_config(cls, config: CloudConfig) -> LocalSettings:
        opts = config.options("local")
        region = config.region or DEFAULT_REGION
        zones = _strings(opts, "zones") or (f"{region}a", f"{region}b", f"{region}c")
        default_zone = config.zone or zones[0]
        if default_zone not in zones:
            raise InvalidConfiguration(f"local cloud: zone {default_zone!r} is not one of {', '.join(zones)}")
        ingress = _string(opts, "loadBalancerIngress", "ip")
        if ingress not in _INGRESS_MODES:
            raise InvalidConfiguration(
                f"local cloud: loadBalancerIngress must be one of {', '.join(_INGRESS_MODES)}, not {ingress!r}"
            )
        qps = _number(opts, "qps", config.qps)
        burst = int(_number(opts, "burst", config.burst))
        if qps <= 0 or burst < 1:
            raise InvalidConfiguration("local cloud: qps must be > 0 and burst >= 1")
        route_tables = int(_number(opts, "routeTables", 1))
        route_limit = int(_number(opts, "routeLimit", 50))
        if route_tables < 0 or route_limit < 1:
            raise InvalidConfiguration("local cloud: routeTables must be >= 0 and routeLimit >= 1")
        boot = _number(opts, "bootSeconds", 0.0)
        retention = _number(opts, "terminatedRetentionSeconds", 3600.0)
        if boot < 0 or retention < 0:
            raise InvalidConfiguration("local cloud: bootSeconds and terminatedRetentionSeconds must be >= 0")
        public_ips = opts.get("publicIPs", False)
        if not isinstance(public_ips, bool):
            raise InvalidConfiguration("local cloud: publicIPs must be true or false")
        return cls(
            region=region,
            zones=zones,
            default_zone=default_zone,
            state_file=_string(opts, "stateFile", ":memory:") or ":memory:",
            instance_cidr=_network(opts, "instanceCIDR", "10.0.0.0/16"),
            public_ips=public_ips,
            public_cidr=_network(opts, "publicCIDR", "198.51.100.0/24"),
            load_balancer_cidr=_network(opts, "loadBalancerCIDR", "192.0.2.0/24"),
            load_balancer_ingress=ingress,
            route_tables=route_tables,
            route_limit=route_limit,
            boot_seconds=boot,
            terminated_retention=retention,
            qps=qps,
            burst=burst,
            faults=_faults(opts.get("faults", {})),
            route_table_ids=config.route_table_ids,
            tags=dict(config.tags),
        )


def _faults(doc: Any) -> FaultSettings:
    if not isinstance(doc, dict):
        raise InvalidConfiguration("local cloud: faults must be a mapping")
    rate = _number(doc, "rate", 0.0)
    throttle_share = _number(doc, "throttleShare", 0.5)
    after_share = _number(doc, "afterShare", 0.0)
    for name, value in (("rate", rate), ("throttleShare", throttle_share), ("afterShare", after_share)):
        if not 0.0 <= value <= 1.0:
            raise InvalidConfiguration(f"local cloud: faults.{name} must be between 0 and 1")
    retry_after = doc.get("retryAfter")
    if retry_after is not None:
        retry_after = _number(doc, "retryAfter", 0.0)
    return FaultSettings(
        rate=rate,
        seed=int(_number(doc, "seed", 0)),
        throttle_share=throttle_share,
        after_share=after_share,
        retry_after=retry_after,
    )


def _string(doc: Mapping[str, Any], key: str, default: str) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise InvalidConfiguration(f"local cloud: {key} must be a string")
    return value


def _strings(doc: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidConfiguration(f"local cloud: {key} must be a list of non-empty strings")
    return tuple(value)


def _number(doc: Mapping[str, Any], key: str, default: float) -> float:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidConfiguration(f"local cloud: {key} must be a number")
    return float(value)


def _network(doc: Mapping[str, Any], key: str, default: str) -> ipaddress.IPv4Network:
    text = _string(doc, key, default)
    try:
        network = ipaddress.IPv4Network(text)
    except ValueError as exc:
        raise InvalidConfiguration(f"local cloud: {key} {text!r} is not an IPv4 CIDR: {exc}") from exc
    if network.num_addresses < 8:
        raise InvalidConfiguration(f"local cloud: {key} {text!r} is too small (at least a /29)")
    return network
