"""An AWS account in moto (in process) laid out as a cluster expects: a VPC with a subnet in two
zones, a route table and a node security group tagged for the cluster (`shared`: the cluster
uses them, does not own them), and an AMI. Shared by the aws unit tests and the aws parameter of
the provider contract suite."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3
from moto import mock_aws

from providers.aws import build
from providers.aws.describe import InstanceLookup
from providers.aws.errors import translate
from providers.aws.session import AwsClients, make_clients
from providers.calls import SdkCaller
from providers.capabilities import CloudProvider
from providers.config import CloudConfig

REGION = "us-east-1"
CLUSTER = "contract"


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


@dataclass
class AwsEnv:
    config: CloudConfig
    clients: AwsClients
    vpc_id: str
    subnets: dict[str, str]  # zone -> subnet id
    route_table: str
    node_group: str
    image: str

    @property
    def ec2(self):  # type: ignore[no-untyped-def]
        return self.clients.ec2

    def provider(
        self, *, lookup: InstanceLookup | None = None, config: CloudConfig | None = None
    ) -> CloudProvider:
        # No cache by default: the contract tests change instances out of band and look at once.
        return build(
            self.clients,
            config or self.config,
            lookup=lookup or InstanceLookup(self.clients, ttl=0, window=0),
        )

    def add_route_table(self, cluster_id: str, value: str = "shared") -> str:
        table = self.ec2.create_route_table(
            VpcId=self.vpc_id,
            TagSpecifications=[
                {
                    "ResourceType": "route-table",
                    "Tags": [{"Key": f"kubernetes.io/cluster/{cluster_id}", "Value": value}],
                }
            ],
        )
        return str(table["RouteTable"]["RouteTableId"])


def fast_caller() -> SdkCaller:
    return SdkCaller(translate, qps=1e6, burst=1_000_000, sleep=no_sleep, base_delay=0.0)


# One session for every test: a new boto3 Session loads every service model again (seconds).
_SESSION = boto3.Session()
IMAGE = "ami-0123456789abcdef0"  # moto does not check AMIs unless asked to


@contextmanager
def aws_env(cluster_id: str = CLUSTER, **config_overrides: object) -> Iterator[AwsEnv]:
    # moto loads thousands of default AMIs into every new account otherwise (seconds per test).
    saved = os.environ.get("MOTO_EC2_LOAD_DEFAULT_AMIS")
    os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
    try:
        with mock_aws():
            yield _layout(cluster_id, config_overrides)
    finally:
        if saved is None:
            os.environ.pop("MOTO_EC2_LOAD_DEFAULT_AMIS", None)
        else:
            os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = saved


def _layout(cluster_id: str, config_overrides: dict[str, object]) -> AwsEnv:
    clients = make_clients(
        CloudConfig(cluster_id=cluster_id, region=REGION), session=_SESSION, caller=fast_caller()
    )
    ec2 = clients.ec2
    shared = [{"Key": f"kubernetes.io/cluster/{cluster_id}", "Value": "shared"}]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = {}
    for index, zone in enumerate((f"{REGION}a", f"{REGION}b")):
        subnet = ec2.create_subnet(
            VpcId=vpc,
            CidrBlock=f"10.0.{index}.0/24",
            AvailabilityZone=zone,
            TagSpecifications=[
                {"ResourceType": "subnet", "Tags": [*shared, {"Key": "kubernetes.io/role/elb", "Value": "1"}]}
            ],
        )
        subnets[zone] = subnet["Subnet"]["SubnetId"]
    group = ec2.create_security_group(
        GroupName="nodes",
        Description="cluster nodes",
        VpcId=vpc,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": shared}],
    )["GroupId"]
    settings: dict[str, object] = {
        "cluster_id": cluster_id,
        "region": REGION,
        "zone": f"{REGION}a",
        "vpc_id": vpc,
        "subnet_ids": tuple(subnets.values()),
        "security_group_ids": (group,),
    }
    settings.update(config_overrides)
    config = CloudConfig(**settings)  # type: ignore[arg-type]
    env = AwsEnv(config, clients, vpc, subnets, "", group, IMAGE)
    env.route_table = env.add_route_table(cluster_id)
    return env
