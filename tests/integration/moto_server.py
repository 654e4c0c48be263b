"""moto's server on loopback, an AWS account laid out as a cluster expects, and EC2 instances
registered as Nodes the way a kubelet with `--cloud-provider=external` registers them.

Shared by the aws integration tests (test_ccm_aws*.py). The test process talks to moto through
boto3 with fake credentials; `pinnace server` / `pinnace ccm` get the same credentials through
their environment (`aws_environment`) and moto's address through `endpointURL`.

Starting moto and waking its EC2 backend costs seconds of CPU, so `shared_moto` hands every
module one server for the whole session; each module keeps to a cluster id and VPC of its own
(`lay_out`, with a `cidr_index` of its own) and looks only at what is in its VPC or tagged for
its cluster.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from ccm.nodeutil import TAINT_UNINITIALIZED
from controlplane.client import Client
from controlplane.controllers.runtime import R
from providers.aws import create as create_aws
from providers.capabilities import CloudProvider
from providers.config import load_cloud_config
from tests.integration.conftest import free_port

REGION = "us-east-1"
ZONES = (f"{REGION}a", f"{REGION}b")
IMAGE = "ami-0123456789abcdef0"  # moto does not check AMIs
STRATEGIC = "application/strategic-merge-patch+json"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
    # Thousands of default AMIs per account otherwise: seconds of CPU for nothing.
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
}


@contextlib.contextmanager
def aws_environment() -> Iterator[None]:
    """Fake credentials in os.environ, so processes started meanwhile (which inherit it) use them."""
    saved = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class MotoServer:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_moto(log_dir: Path, timeout: float = 60) -> MotoServer:
    port = free_port()
    log_path = log_dir / f"moto-{port}.log"
    env = {**os.environ, **AWS_ENV}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    server = MotoServer(port, process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{server.url}/moto-api/", timeout=2):
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError("moto's server did not start")


_SHARED = pytest.StashKey[MotoServer]()


def shared_moto(config: pytest.Config, log_dir: Path) -> MotoServer:
    """The session's moto server: started on first use (its log in `log_dir`), stopped when
    pytest ends. Callers keep apart by cluster id and VPC, never by resetting moto."""
    server = config.stash.get(_SHARED, None)
    if server is None or server.process.poll() is not None:
        server = start_moto(log_dir)
        config.stash[_SHARED] = server
        config.add_cleanup(server.stop)
    return server


def session() -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token="testing",
        region_name=REGION,
    )


@dataclass
class Account:
    """One cluster's corner of the moto account."""

    endpoint: str
    cluster_id: str
    vpc_id: str
    subnets: dict[str, str]  # zone -> subnet id
    route_tables: list[str]
    node_group: str
    boto: boto3.Session = field(default_factory=session)
    # One client per service: making one costs tens of milliseconds of CPU, and the tests poll.
    # (botocore clients are thread-safe, so checks run with asyncio.to_thread may share them.)
    _clients: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def client(self, service: str) -> Any:
        made = self._clients.get(service)
        if made is None:
            made = self.boto.client(service, endpoint_url=self.endpoint, region_name=REGION)  # type: ignore[call-overload]
            self._clients[service] = made
        return made

    def in_vpc(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The load balancers or target groups (anything with a VpcId) of this account's VPC:
        other modules' clusters share the moto server."""
        return [item for item in items if item.get("VpcId") == self.vpc_id]

    def cloud_config(self, path: Path, **extra: Any) -> Path:
        doc: dict[str, Any] = {
            "clusterID": self.cluster_id,
            "region": REGION,
            "zone": ZONES[0],
            "vpcID": self.vpc_id,
            "subnetIDs": list(self.subnets.values()),
            "endpointURL": self.endpoint,
            "qps": 500,
            "burst": 500,
            **extra,
        }
        path.write_text(yaml.safe_dump(doc))
        return path

    def provider(self, config_path: Path) -> CloudProvider:
        """The provider as the test sees the cloud (no fault injection: the config given here has none)."""
        return create_aws(load_cloud_config(config_path), session=self.boto)

    def launch(self, count: int, *, instance_type: str = "t3.medium") -> list[dict[str, Any]]:
        """Instances spread over both zones, tagged as the cluster's own nodes, in the node group."""
        ec2 = self.client("ec2")
        out: list[dict[str, Any]] = []
        for index in range(count):
            zone = ZONES[index % len(ZONES)]
            reply = ec2.run_instances(
                ImageId=IMAGE,
                InstanceType=instance_type,
                MinCount=1,
                MaxCount=1,
                SubnetId=self.subnets[zone],
                SecurityGroupIds=[self.node_group],
                TagSpecifications=[
                    {
                        "ResourceType": "instance",
                        "Tags": [{"Key": f"kubernetes.io/cluster/{self.cluster_id}", "Value": "owned"}],
                    }
                ],
            )
            out.append(reply["Instances"][0])
        return out

    def route_targets(self) -> dict[str, dict[str, str]]:
        """route table -> {destination CIDR: instance id} for the routes to instances."""
        reply = self.client("ec2").describe_route_tables(RouteTableIds=self.route_tables)
        return {
            t["RouteTableId"]: {
                r["DestinationCidrBlock"]: r["InstanceId"]
                for r in t["Routes"]
                if r.get("InstanceId") and r.get("DestinationCidrBlock")
            }
            for t in reply["RouteTables"]
        }


def lay_out(endpoint: str, cluster_id: str, *, route_tables: int = 2, cidr_index: int = 0) -> Account:
    """A VPC with a subnet per zone, a node security group and `route_tables` route tables, all
    tagged `kubernetes.io/cluster/<id>=shared` (the cluster uses them, does not own them)."""
    boto = session()
    ec2: Any = boto.client("ec2", endpoint_url=endpoint, region_name=REGION)
    shared = [{"Key": f"kubernetes.io/cluster/{cluster_id}", "Value": "shared"}]
    vpc = ec2.create_vpc(CidrBlock=f"10.{cidr_index}.0.0/16")["Vpc"]["VpcId"]
    subnets = {}
    for index, zone in enumerate(ZONES):
        subnet = ec2.create_subnet(
            VpcId=vpc,
            CidrBlock=f"10.{cidr_index}.{index}.0/24",
            AvailabilityZone=zone,
            TagSpecifications=[
                {"ResourceType": "subnet", "Tags": [*shared, {"Key": "kubernetes.io/role/elb", "Value": "1"}]}
            ],
        )
        subnets[zone] = subnet["Subnet"]["SubnetId"]
    group = ec2.create_security_group(
        GroupName=f"nodes-{cluster_id}",
        Description="cluster nodes",
        VpcId=vpc,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": shared}],
    )["GroupId"]
    tables = [
        ec2.create_route_table(
            VpcId=vpc, TagSpecifications=[{"ResourceType": "route-table", "Tags": shared}]
        )["RouteTable"]["RouteTableId"]
        for _ in range(route_tables)
    ]
    return Account(endpoint, cluster_id, vpc, subnets, tables, group, boto)


def node_name(instance: Mapping[str, Any]) -> str:
    """What a kubelet on EC2 registers as: the private DNS name."""
    return str(instance["PrivateDnsName"])


def provider_id(instance: Mapping[str, Any]) -> str:
    return f"aws:///{instance['Placement']['AvailabilityZone']}/{instance['InstanceId']}"


async def register(client: Client, instance: Mapping[str, Any], name: str = "") -> str:
    """What a kubelet with --cloud-provider=external --provider-id=... --node-ip=... does; under
    the private DNS name unless given another (--hostname-override)."""
    name = name or node_name(instance)
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            "annotations": {"alpha.kubernetes.io/provided-node-ip": str(instance["PrivateIpAddress"])},
        },
        "spec": {
            "providerID": provider_id(instance),
            "taints": [{"key": TAINT_UNINITIALIZED, "value": "true", "effect": "NoSchedule"}],
        },
    }
    await client.create(R.NODES, node)
    await set_ready(client, name, "True")
    return name


async def set_ready(client: Client, name: str, status: str) -> None:
    cond = {
        "type": "Ready",
        "status": status,
        "reason": "KubeletReady" if status == "True" else "KubeletNotReady",
    }
    await client.patch(
        R.NODES, name, {"status": {"conditions": [cond]}}, subresource="status", patch_type=STRATEGIC
    )


def lb_service(name: str, ports: list[int], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": f"p{p}", "port": p, "targetPort": 8080} for p in ports],
        },
    }


def load_balancer_name(uid: str) -> str:
    """Upstream's cloudprovider.DefaultLoadBalancerName."""
    return ("a" + uid.replace("-", ""))[:32]
