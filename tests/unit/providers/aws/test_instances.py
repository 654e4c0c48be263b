"""RunInstances: IMDSv2, tags on instance and volumes, the 16 KiB user-data rule, idempotency."""

from __future__ import annotations

import base64
import gzip
import os
import uuid

import boto3
import pytest

from providers.aws.instances import USER_DATA_LIMIT, AwsInstances, client_token, prepare_user_data
from providers.errors import InvalidConfiguration
from providers.model import InstanceSpec, Owner
from providers.tags import OWNER_UID_TAG, cluster_tag_key
from tests.unit.providers.aws.conftest import Calls
from tests.unit.providers.aws.moto_env import AwsEnv


def owner(name: str = "m1") -> Owner:
    return Owner(kind="Machine", name=name, namespace="kube-system", uid=str(uuid.uuid4()))


def spec(env: AwsEnv, name: str = "m1", **kw: object) -> InstanceSpec:
    settings: dict[str, object] = {
        "name": name,
        "owner": owner(name),
        "instance_type": "t3.micro",
        "image": env.image,
    }
    settings.update(kw)
    return InstanceSpec(**settings)  # type: ignore[arg-type]


def instances(env: AwsEnv) -> AwsInstances:
    capability = env.provider().instances
    assert isinstance(capability, AwsInstances)
    return capability


def test_small_user_data_is_sent_as_is() -> None:
    raw = b"#cloud-config\n" + b"x" * 100
    assert prepare_user_data(raw) == raw
    assert prepare_user_data(b"a" * USER_DATA_LIMIT) == b"a" * USER_DATA_LIMIT


def test_large_user_data_is_gzipped_deterministically() -> None:
    raw = b"#cloud-config\n" + b"write_files: []\n" * 2000
    assert len(raw) > USER_DATA_LIMIT
    packed = prepare_user_data(raw)
    assert len(packed) <= USER_DATA_LIMIT
    assert gzip.decompress(packed) == raw
    assert prepare_user_data(raw) == packed  # same bytes every time (mtime=0)


def test_user_data_too_big_even_gzipped_is_refused() -> None:
    with pytest.raises(InvalidConfiguration, match="16384"):
        prepare_user_data(os.urandom(40_000))


async def test_run_instances_request(env: AwsEnv, calls: Calls) -> None:
    raw = b"#cloud-config\n" + b"runcmd: [true]\n" * 2000
    boto3.client("iam", region_name="us-east-1").create_instance_profile(InstanceProfileName="node-profile")
    made = await instances(env).create_instance(
        env.config.cluster_id,
        spec(
            env,
            "m1",
            zone="us-east-1b",
            instance_profile="node-profile",
            tags={"team": "infra"},
            user_data=raw,
        ),
    )
    [(_, request)] = [p for p in calls.params if p[0] == "RunInstances"]
    assert request["MetadataOptions"] == {
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 1,
        "HttpEndpoint": "enabled",
    }
    assert request["SubnetId"] == env.subnets["us-east-1b"]
    assert request["SecurityGroupIds"] == [env.node_group]
    assert request["IamInstanceProfile"] == {"Name": "node-profile"}
    assert request["ClientToken"].startswith("pinnace-") and len(request["ClientToken"]) <= 64
    kinds = {
        t["ResourceType"]: {x["Key"]: x["Value"] for x in t["Tags"]} for t in request["TagSpecifications"]
    }
    assert set(kinds) == {"instance", "volume"}
    for tags in kinds.values():
        assert tags[cluster_tag_key(env.config.cluster_id)] == "owned"
        assert tags["Name"] == "m1"
        assert tags["team"] == "infra"
    # What EC2 got is the gzip of the user-data (botocore base64-encodes it on the wire).
    attr = env.ec2.describe_instance_attribute(InstanceId=made.id, Attribute="userData")
    assert gzip.decompress(base64.b64decode(attr["UserData"]["Value"])) == raw
    described = env.ec2.describe_instances(InstanceIds=[made.id])["Reservations"][0]["Instances"][0]
    assert described["MetadataOptions"]["HttpTokens"] == "required"
    assert described["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert made.zone == "us-east-1b"
    assert made.provider_id == f"aws:///us-east-1b/{made.id}"


async def test_oversized_user_data_launches_nothing(env: AwsEnv, calls: Calls) -> None:
    with pytest.raises(InvalidConfiguration):
        await instances(env).create_instance(env.config.cluster_id, spec(env, user_data=os.urandom(40_000)))
    assert calls.mutating() == []


async def test_retried_create_finds_the_first_launch(env: AwsEnv, calls: Calls) -> None:
    cap = instances(env)
    s = spec(env, "m2")
    first = await cap.create_instance(env.config.cluster_id, s)
    second = await cap.create_instance(env.config.cluster_id, s)
    assert first.id == second.id
    assert calls.count("RunInstances") == 1
    assert first.tags[OWNER_UID_TAG] == s.owner.uid


def test_client_token_is_stable_and_changes_after_termination() -> None:
    s = InstanceSpec(
        name="m", owner=Owner("Machine", "m", "ns", "uid-1"), instance_type="t3.micro", image="ami-1"
    )
    assert client_token("c", s) == client_token("c", s)
    assert client_token("c", s) != client_token("other", s)
    assert client_token("c", s, ["i-0aaa"]) != client_token("c", s)
    assert client_token("c", s, ["i-1", "i-2"]) == client_token("c", s, ["i-2", "i-1"])


async def test_list_pages_through_every_instance(
    env: AwsEnv, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = instances(env)
    made = {(await cap.create_instance(env.config.cluster_id, spec(env, f"n{i}"))).id for i in range(5)}
    monkeypatch.setattr(AwsInstances, "page_size", 2)
    calls.reset()
    listed = await cap.list_instances(env.config.cluster_id)
    assert {i.id for i in listed} == made
    assert calls.count("DescribeInstances") == 3


async def test_terminate_is_idempotent(env: AwsEnv, calls: Calls) -> None:
    cap = instances(env)
    made = await cap.create_instance(env.config.cluster_id, spec(env, "t"))
    await cap.delete_instance(env.config.cluster_id, made.id)
    await cap.delete_instance(env.config.cluster_id, made.id)
    assert calls.count("TerminateInstances") == 1
    assert await cap.list_instances(env.config.cluster_id) == []
