"""Conversions between EC2's response shapes and `providers.model`: provider IDs, tags, node
addresses and instances. Pure functions, no calls."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from providers.errors import InvalidConfiguration
from providers.model import Instance, InstanceState, NodeAddress
from providers.tags import owner_from_tags

__all__ = [
    "chunks",
    "instance_from_ec2",
    "instance_id_from_provider_id",
    "instance_state",
    "instance_zone",
    "node_addresses",
    "parse_provider_id",
    "provider_id",
    "tag_list",
    "tags_of",
]

_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")


def provider_id(zone: str, instance_id: str) -> str:
    """Upstream's form: `aws:///<zone>/<instance-id>`."""
    return f"aws:///{zone}/{instance_id}"


def parse_provider_id(value: str) -> tuple[str, str]:
    """(zone, instance id) from `aws:///<zone>/<id>`, `aws:////<id>` or a bare `i-...` (zone "").

    The same forms upstream's KubernetesInstanceID.MapToAWSInstanceID accepts.
    """
    rest = value
    if value.startswith("aws://"):
        rest = value[len("aws://") :]
        if not rest.startswith("/"):
            raise InvalidConfiguration(
                f"invalid AWS providerID {value!r}: expected aws:///<zone>/<instance-id>"
            )
        parts = rest[1:].split("/")
        if len(parts) != 2:
            raise InvalidConfiguration(
                f"invalid AWS providerID {value!r}: expected aws:///<zone>/<instance-id>"
            )
        zone, instance_id = parts
    else:
        zone, instance_id = "", value
    if not _INSTANCE_ID.match(instance_id):
        raise InvalidConfiguration(f"invalid AWS providerID {value!r}: {instance_id!r} is not an instance id")
    return zone, instance_id


def instance_id_from_provider_id(value: str) -> str:
    return parse_provider_id(value)[1]


def tags_of(resource: Mapping[str, Any]) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in resource.get("Tags", []) or []}


def tag_list(tags: Mapping[str, str]) -> list[Any]:
    """Tags as the AWS APIs take them (typed Any: each API has its own TypedDict for them)."""
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def node_addresses(instance: Mapping[str, Any]) -> tuple[NodeAddress, ...]:
    """Upstream's extractIPv4NodeAddresses: every private IP of every ENI (primary ENI and primary
    address first) as InternalIP, the public IP as ExternalIP, PrivateDnsName as InternalDNS and
    Hostname, PublicDnsName as ExternalDNS."""
    out: list[NodeAddress] = []
    seen: set[tuple[str, str]] = set()

    def add(kind: str, value: str | None) -> None:
        if value and (kind, value) not in seen:
            seen.add((kind, value))
            out.append(NodeAddress(kind, value))

    add("InternalIP", instance.get("PrivateIpAddress"))
    enis = sorted(
        instance.get("NetworkInterfaces", []) or [],
        key=lambda e: int((e.get("Attachment") or {}).get("DeviceIndex", 0)),
    )
    for eni in enis:
        if eni.get("Status") == "detaching":
            continue
        ips = sorted(eni.get("PrivateIpAddresses", []) or [], key=lambda p: not p.get("Primary", False))
        for ip in ips:
            add("InternalIP", ip.get("PrivateIpAddress"))
    add("ExternalIP", instance.get("PublicIpAddress"))
    private_dns = instance.get("PrivateDnsName")
    add("InternalDNS", private_dns)
    add("Hostname", private_dns)
    add("ExternalDNS", instance.get("PublicDnsName"))
    return tuple(out)


def instance_state(instance: Mapping[str, Any]) -> InstanceState:
    name = str((instance.get("State") or {}).get("Name", "pending"))
    try:
        return InstanceState(name)
    except ValueError:
        return InstanceState.PENDING


def instance_zone(instance: Mapping[str, Any]) -> str:
    return str((instance.get("Placement") or {}).get("AvailabilityZone", ""))


def instance_from_ec2(instance: Mapping[str, Any], region: str) -> Instance:
    tags = tags_of(instance)
    zone = instance_zone(instance)
    return Instance(
        id=str(instance["InstanceId"]),
        provider_id=provider_id(zone, str(instance["InstanceId"])),
        name=tags.get("Name", ""),
        state=instance_state(instance),
        instance_type=str(instance.get("InstanceType", "")),
        zone=zone,
        region=region,
        addresses=node_addresses(instance),
        tags=tags,
        owner=owner_from_tags(tags),
    )


def chunks(items: Iterable[str], size: int) -> list[list[str]]:
    seq = list(items)
    return [seq[i : i + size] for i in range(0, len(seq), size)]
