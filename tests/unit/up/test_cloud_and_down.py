"""The cloud config `up` writes (default VPC discovery against moto's in-process mock), the
record it keeps, and `down`'s sweep and refusals."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from controlplane.up import cli, down
from controlplane.up.cloud import prepare_cloud_config
from controlplane.up.preflight import PreflightError
from controlplane.up.record import ClusterRecord, load_record, save_record
from providers.errors import Conflict, InvalidConfiguration, NotFound
from providers.model import CloudResource


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from moto import mock_aws

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


async def test_aws_config_uses_the_default_vpc(aws: None, tmp_path: Path) -> None:
    import boto3

    record = ClusterRecord(provider="aws", cluster_name="c1", region="eu-west-1")
    prepared = await prepare_cloud_config(record, tmp_path, None)
    path = prepared.config_path
    doc = yaml.safe_load(path.read_text())
    ec2 = boto3.client("ec2", region_name="eu-west-1")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    by_zone = {s["AvailabilityZone"]: s["SubnetId"] for s in subnets}
    main = ec2.describe_route_tables(
        Filters=[{"Name": "association.main", "Values": ["true"]}, {"Name": "vpc-id", "Values": [vpc]}]
    )
    assert doc["clusterID"] == "c1"
    assert doc["region"] == "eu-west-1"
    assert doc["vpcID"] == vpc
    zones = sorted(by_zone)[:3]
    assert prepared.zones == tuple(zones) == ("eu-west-1a", "eu-west-1b", "eu-west-1c")
    assert doc["subnetIDs"] == [by_zone[z] for z in zones]
    assert doc["routeTableIDs"] == [main["RouteTables"][0]["RouteTableId"]]
    assert doc["zone"] == "eu-west-1a"
    assert path.stat().st_mode & 0o077 == 0
    # Only the node security group it made is tagged: the rest is named in the config.
    tagged = ec2.describe_tags(Filters=[{"Name": "key", "Values": ["kubernetes.io/cluster/c1"]}])["Tags"]
    assert [(t["ResourceType"], t["ResourceId"], t["Value"]) for t in tagged] == [
        ("security-group", doc["securityGroupIDs"][0], "owned")
    ]
    group = ec2.describe_security_groups(GroupIds=doc["securityGroupIDs"])["SecurityGroups"][0]
    assert group["VpcId"] == vpc
    assert group["IpPermissions"][0]["UserIdGroupPairs"][0]["GroupId"] == group["GroupId"]
    # A second run finds the same group; after `down` deleted it, a third makes a new one.
    again = yaml.safe_load((await prepare_cloud_config(record, tmp_path, None)).config_path.read_text())
    assert again == doc
    ec2.delete_security_group(GroupId=group["GroupId"])
    third = yaml.safe_load((await prepare_cloud_config(record, tmp_path, None)).config_path.read_text())
    assert third["securityGroupIDs"] != doc["securityGroupIDs"]


async def test_a_configured_network_is_kept(aws: None, tmp_path: Path) -> None:
    given = tmp_path / "given.yaml"
    given.write_text(
        yaml.safe_dump(
            {"vpcID": "vpc-1", "subnetIDs": ["subnet-1"], "securityGroupIDs": ["sg-1"], "tags": {"team": "a"}}
        )
    )
    record = ClusterRecord(provider="aws", cluster_name="c1", region="us-east-1")
    doc = yaml.safe_load((await prepare_cloud_config(record, tmp_path / "d", given)).config_path.read_text())
    assert doc["vpcID"] == "vpc-1"
    assert doc["subnetIDs"] == ["subnet-1"]
    assert doc["tags"] == {"team": "a"}
    assert doc["securityGroupIDs"] == ["sg-1"]


async def test_unknown_region_is_refused_before_any_call(aws: None, tmp_path: Path) -> None:
    record = ClusterRecord(provider="aws", cluster_name="c1", region="mars-north-1")
    with pytest.raises(PreflightError, match="unknown AWS region 'mars-north-1'"):
        await prepare_cloud_config(record, tmp_path, None)


async def test_no_region_says_pass_region(aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(PreflightError, match="--region"):
        await prepare_cloud_config(ClusterRecord(provider="aws"), tmp_path, None)


async def test_local_config_has_the_cluster_id(tmp_path: Path) -> None:
    prepared = await prepare_cloud_config(ClusterRecord(provider="local", cluster_name="x"), tmp_path, None)
    assert yaml.safe_load(prepared.config_path.read_text()) == {"clusterID": "x"}
    assert prepared.zones == ()


def _args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"provider": None, "cluster_name": "", "region": "", "aws_endpoint_url": ""}
    return argparse.Namespace(**{**base, **kw})


def test_record_resumes_and_refuses_another_cloud(tmp_path: Path) -> None:
    assert cli._resolve_record(_args(), tmp_path) == ClusterRecord(provider="local", cluster_name="pinnace")
    save_record(
        tmp_path,
        ClusterRecord(provider="aws", cluster_name="c", region="us-east-1", aws_endpoint_url="http://m"),
    )
    assert load_record(tmp_path) == ClusterRecord("aws", "c", "us-east-1", "http://m")
    assert cli._resolve_record(_args(), tmp_path) == ClusterRecord("aws", "c", "us-east-1", "http://m")
    assert cli._resolve_record(_args(region="eu-west-1"), tmp_path).region == "eu-west-1"
    with pytest.raises(PreflightError, match="runs on the aws cloud, not local"):
        cli._resolve_record(_args(provider="local"), tmp_path)
    with pytest.raises(PreflightError, match="is named 'c'"):
        cli._resolve_record(_args(cluster_name="other"), tmp_path)


def test_aws_flags_need_the_aws_provider(tmp_path: Path) -> None:
    with pytest.raises(PreflightError, match="--provider aws"):
        cli._resolve_record(_args(region="us-east-1"), tmp_path)


class FakeInventory:
    """A cloud where a security group is busy until the instance using it is gone."""

    def __init__(self) -> None:
        self.resources = {
            "sg-1": CloudResource("security-group", "sg-1", "nodes"),
            "i-1": CloudResource("instance", "i-1", "m-1"),
            "lb-1": CloudResource("load-balancer", "lb-1", "web"),
        }
        self.calls: list[str] = []
        self.stuck: set[str] = set()

    async def list_owned(self, cluster_id: str) -> list[CloudResource]:
        assert cluster_id == "c"
        return list(self.resources.values())

    async def delete_resource(self, cluster_id: str, resource: CloudResource) -> None:
        self.calls.append(resource.id)
        if resource.id in self.stuck:
            raise InvalidConfiguration("no, never")
        if resource.id == "sg-1" and "i-1" in self.resources:
            raise Conflict("DependencyViolation")
        if resource.id not in self.resources:
            raise NotFound("gone")
        if resource.id == "i-1" and self.calls.count("i-1") == 1:
            return  # terminating: still listed once more
        del self.resources[resource.id]


async def test_sweep_deletes_in_dependency_order_and_retries_busy_ones() -> None:
    inventory = FakeInventory()
    result = await down.sweep(inventory, "c", timeout=10, interval=0)
    assert result.leftovers == []
    assert [r.id for r in result.deleted] == ["lb-1", "i-1", "sg-1"]
    assert inventory.calls[:3] == ["lb-1", "i-1", "sg-1"]
    assert inventory.resources == {}


async def test_sweep_gives_up_at_the_timeout_with_the_leftovers() -> None:
    inventory = FakeInventory()
    inventory.stuck = {"lb-1"}
    now = [0.0]

    def clock() -> float:
        now[0] += 1
        return now[0]

    result = await down.sweep(inventory, "c", timeout=5, interval=0, clock=clock)
    assert [r.id for r in result.leftovers] == ["lb-1"]
    assert result.errors["lb-1"] == "no, never"


async def test_down_without_a_running_server_needs_force(tmp_path: Path) -> None:
    record = ClusterRecord(provider="local", cluster_name="c")
    with pytest.raises(PreflightError, match="--force"):
        await down.down(tmp_path, record, force=False, timeout=5, out=io.StringIO())


async def test_down_force_sweeps_the_local_cloud(tmp_path: Path) -> None:
    from ccm.manager import open_provider
    from providers.model import InstanceSpec, Owner

    record = ClusterRecord(provider="local", cluster_name="c")
    await prepare_cloud_config(record, tmp_path, None)
    provider, _ = open_provider(
        "local", tmp_path / "cloud" / "config.yaml", cluster_name="c", data_dir=tmp_path
    )
    assert provider.instances is not None
    owner = Owner(kind="Machine", name="m-1")
    spec = InstanceSpec(name="m-1", owner=owner, instance_type="small", image="img")
    await provider.instances.create_instance("c", spec)
    out = io.StringIO()
    code = await down.down(tmp_path, record, force=True, timeout=10, out=out, sweep_interval=0)
    text = out.getvalue()
    assert code == 0, text
    assert "deleted instance" in text
    assert "nothing tagged kubernetes.io/cluster/c=owned is left in the local cloud" in text
    assert provider.inventory is not None
    assert await provider.inventory.list_owned("c") == []


async def test_a_cloud_config_for_another_cluster_is_refused(tmp_path: Path) -> None:
    given = tmp_path / "given.yaml"
    given.write_text("clusterID: prod\n")
    with pytest.raises(PreflightError, match="--cluster-name prod"):
        await prepare_cloud_config(ClusterRecord(provider="local", cluster_name="pinnace"), tmp_path, given)
    prepared = await prepare_cloud_config(
        ClusterRecord(provider="local", cluster_name="prod"), tmp_path, given
    )
    assert yaml.safe_load(prepared.config_path.read_text()) == {"clusterID": "prod"}
