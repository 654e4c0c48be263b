"""Where `pinnace up --provider aws` puts a cluster when the cloud config names no network: the
account's default VPC, its default subnets (one per zone) and its main route table, as
`eksctl`/`kops` fall back to. Also the cheap calls `up` makes first, so a missing credential or
an unknown region is reported before anything starts.

The ids found are written into the cluster's cloud config (vpcID, subnetIDs, routeTableIDs), so
the provider never needs tags on resources the cluster does not own, and nothing is left tagged
on them after `pinnace down`. The one thing made here is the nodes' security group (owned by
the cluster, so `pinnace down` deletes it): load balancers open their ports on it, and the
nodes reach each other through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError

from providers.config import CloudConfig
from providers.errors import InvalidConfiguration
from providers.tags import OWNED, cluster_tag_key

from .errors import translate
from .session import make_clients

ROLE_TAG = "pinnace.dev/role"
NODES_ROLE = "nodes"

__all__ = [
    "DefaultNetwork",
    "check_access",
    "discover_default_network",
    "ensure_node_security_group",
    "known_regions",
]


@dataclass(frozen=True)
class DefaultNetwork:
    vpc_id: str
    subnets: Mapping[str, str]  # zone -> the default subnet of that zone
    route_table_id: str  # the VPC's main route table ("" if it has none)

    @property
    def zones(self) -> list[str]:
        return sorted(self.subnets)


def known_regions() -> list[str]:
    """EC2's regions as this botocore knows them (all partitions), without a network call."""
    session = boto3.Session()
    regions: set[str] = set()
    try:
        for partition in session.get_available_partitions():
            regions.update(session.get_available_regions("ec2", partition_name=partition))
    except BotoCoreError as exc:
        raise translate(exc) from exc
    return sorted(regions)


async def check_access(config: CloudConfig, *, session: boto3.Session | None = None) -> list[str]:
    """The region's available zones: one call that needs valid credentials and a reachable,
    existing region. Raises `providers.errors` (AuthFailure for no or refused credentials)."""
    try:
        clients = make_clients(config, session=session)
    except BotoCoreError as exc:
        raise translate(exc) from exc
    reply = await clients.caller.call(
        clients.ec2.describe_availability_zones,
        Filters=[{"Name": "state", "Values": ["available"]}],
    )
    return sorted(str(z["ZoneName"]) for z in reply.get("AvailabilityZones", []))


async def discover_default_network(
    config: CloudConfig, *, session: boto3.Session | None = None
) -> DefaultNetwork:
    """The default VPC of the configured region, its default-for-az subnets and main route table."""
    clients = make_clients(config, session=session)
    ec2: Any = clients.ec2
    call = clients.caller.call
    vpcs = (await call(ec2.describe_vpcs, Filters=[{"Name": "is-default", "Values": ["true"]}])).get(
        "Vpcs", []
    )
    if not vpcs:
        raise InvalidConfiguration(
            f"aws: region {clients.region} has no default VPC: create one (`aws ec2 create-default-vpc`) "
            "or name the network in a cloud config (vpcID, subnetIDs, routeTableIDs) given with --cloud-config"
        )
    vpc_id = str(vpcs[0]["VpcId"])
    subnets = (
        await call(
            ec2.describe_subnets,
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "default-for-az", "Values": ["true"]},
            ],
        )
    ).get("Subnets", [])
    by_zone: dict[str, str] = {}
    for subnet in sorted(subnets, key=lambda s: str(s["SubnetId"])):
        by_zone.setdefault(str(subnet.get("AvailabilityZone", "")), str(subnet["SubnetId"]))
    if not by_zone:
        raise InvalidConfiguration(
            f"aws: the default VPC {vpc_id} has no default subnets: create them "
            "(`aws ec2 create-default-subnet --availability-zone <zone>`) or set subnetIDs in a cloud config"
        )
    tables = (
        await call(
            ec2.describe_route_tables,
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "association.main", "Values": ["true"]},
            ],
        )
    ).get("RouteTables", [])
    table = str(tables[0]["RouteTableId"]) if tables else ""
    return DefaultNetwork(vpc_id=vpc_id, subnets=by_zone, route_table_id=table)


async def ensure_node_security_group(
    config: CloudConfig, cluster_id: str, vpc_id: str, *, session: boto3.Session | None = None
) -> str:
    """The cluster's node security group in `vpc_id` (found by its tags, else created), which lets
    the nodes reach each other; tagged `kubernetes.io/cluster/<id>=owned` without owner tags, so
    the CCM's garbage sweep keeps it and `pinnace down` deletes it."""
    clients = make_clients(config, session=session)
    ec2: Any = clients.ec2
    call = clients.caller.call
    cluster_tag = cluster_tag_key(cluster_id)
    found = (
        await call(
            ec2.describe_security_groups,
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": f"tag:{cluster_tag}", "Values": [OWNED]},
                {"Name": f"tag:{ROLE_TAG}", "Values": [NODES_ROLE]},
            ],
        )
    ).get("SecurityGroups", [])
    if found:
        return str(found[0]["GroupId"])
    name = f"{cluster_id}-nodes"
    group = await call(
        ec2.create_security_group,
        GroupName=name,
        Description=f"Nodes of the Pinnace cluster {cluster_id}",
        VpcId=vpc_id,
        TagSpecifications=[
            {
                "ResourceType": "security-group",
                "Tags": [
                    {"Key": cluster_tag, "Value": OWNED},
                    {"Key": ROLE_TAG, "Value": NODES_ROLE},
                    {"Key": "Name", "Value": name},
                ],
            }
        ],
    )
    group_id = str(group["GroupId"])
    await call(
        ec2.authorize_security_group_ingress,
        GroupId=group_id,
        IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]}],
    )
    return group_id
