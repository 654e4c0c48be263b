"""Addresses, host names and provider ids of the local cloud, shaped like EC2's."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from providers.errors import InvalidConfiguration, QuotaExceeded

__all__ = [
    "PROVIDER_NAME",
    "allocate_address",
    "private_dns_name",
    "provider_id",
    "split_provider_id",
]

PROVIDER_NAME = "local"
_RESERVED_AT_START = 4  # as in an AWS subnet: network, router, DNS, reserved


def allocate_address(network: ipaddress.IPv4Network, used: Iterable[str], what: str) -> str:
    """The lowest free host address, so the same sequence of creates gives the same addresses."""
    taken = {int.from_bytes(socket.inet_aton(u), "big") for u in used if u}
    first = int(network.network_address) + _RESERVED_AT_START
    last = int(network.broadcast_address) - 1
    for value in range(first, last + 1):
        if value not in taken:
            return str(ipaddress.IPv4Address(value))
    raise QuotaExceeded(f"local cloud: no free {what} address left in {network}", code="AddressLimitExceeded")


def private_dns_name(ip: str, region: str) -> str:
    return f"ip-{ip.replace('.', '-')}.{region}.compute.internal"


def provider_id(zone: str, instance_id: str) -> str:
    return f"{PROVIDER_NAME}:///{zone}/{instance_id}"


def split_provider_id(value: str) -> tuple[str, str]:
    """`local:///<zone>/<id>` (or `local:////<id>`, as cloud-provider-aws also accepts) -> (zone, id)."""
    prefix = f"{PROVIDER_NAME}://"
    if not value.startswith(prefix):
        raise InvalidConfiguration(
            f"providerID {value!r} is not a local cloud provider id ({prefix}/<zone>/<id>)"
        )
    parts = value[len(prefix) :].strip("/").split("/")
    if not parts or not parts[-1] or len(parts) > 2:
        raise InvalidConfiguration(
            f"providerID {value!r} is malformed; expected {prefix}/<zone>/<instance-id>"
        )
    zone = parts[0] if len(parts) == 2 else ""
    return zone, parts[-1]
