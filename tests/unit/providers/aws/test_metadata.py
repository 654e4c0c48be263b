"""InstanceMetadata: batched and cached DescribeInstances, upstream's addresses and states."""

from __future__ import annotations

import asyncio

import pytest

from providers.aws.describe import BY_ID, InstanceLookup
from providers.aws.shapes import node_addresses, parse_provider_id
from providers.errors import InvalidConfiguration, NotFound
from providers.model import NodeAddress, NodeRef
from tests.unit.providers.aws.conftest import Calls
from tests.unit.providers.aws.moto_env import AwsEnv


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def launch(env: AwsEnv, count: int, zone: str = "us-east-1a") -> list[str]:
    reply = env.ec2.run_instances(
        ImageId=env.image, MinCount=count, MaxCount=count, SubnetId=env.subnets[zone], InstanceType="m5.large"
    )
    return [i["InstanceId"] for i in reply["Instances"]]


def node(instance_id: str, zone: str = "us-east-1a") -> NodeRef:
    return NodeRef(name=f"n-{instance_id}", provider_id=f"aws:///{zone}/{instance_id}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("aws:///us-east-1a/i-0123456789abcdef0", ("us-east-1a", "i-0123456789abcdef0")),
        ("aws:////i-0123456789abcdef0", ("", "i-0123456789abcdef0")),
        ("i-0123456789abcdef0", ("", "i-0123456789abcdef0")),
    ],
)
def test_provider_id_forms(value: str, expected: tuple[str, str]) -> None:
    assert parse_provider_id(value) == expected


@pytest.mark.parametrize(
    "value",
    ["gce://p/z/vm", "aws://us-east-1a/i-0123456789abcdef0", "aws:///a/b/i-01234567", "aws:///z/vol-1"],
)
def test_bad_provider_ids(value: str) -> None:
    with pytest.raises(InvalidConfiguration):
        parse_provider_id(value)


def test_addresses_follow_upstream() -> None:
    instance = {
        "PrivateIpAddress": "10.0.0.5",
        "PublicIpAddress": "54.1.2.3",
        "PrivateDnsName": "ip-10-0-0-5.ec2.internal",
        "PublicDnsName": "ec2-54-1-2-3.compute-1.amazonaws.com",
        "NetworkInterfaces": [
            {
                "Attachment": {"DeviceIndex": 1},
                "PrivateIpAddresses": [{"PrivateIpAddress": "10.0.1.9", "Primary": True}],
            },
            {
                "Attachment": {"DeviceIndex": 0},
                "PrivateIpAddresses": [
                    {"PrivateIpAddress": "10.0.0.6", "Primary": False},
                    {"PrivateIpAddress": "10.0.0.5", "Primary": True},
                ],
            },
        ],
    }
    assert node_addresses(instance) == (
        NodeAddress("InternalIP", "10.0.0.5"),
        NodeAddress("InternalIP", "10.0.0.6"),
        NodeAddress("InternalIP", "10.0.1.9"),
        NodeAddress("ExternalIP", "54.1.2.3"),
        NodeAddress("InternalDNS", "ip-10-0-0-5.ec2.internal"),
        NodeAddress("Hostname", "ip-10-0-0-5.ec2.internal"),
        NodeAddress("ExternalDNS", "ec2-54-1-2-3.compute-1.amazonaws.com"),
    )


async def test_concurrent_lookups_are_one_call(env: AwsEnv, calls: Calls) -> None:
    ids = launch(env, 30)
    provider = env.provider(lookup=InstanceLookup(env.clients, ttl=5))
    metadata = provider.instance_metadata
    assert metadata is not None
    calls.reset()
    answers = await asyncio.gather(*(metadata.instance_exists(node(i)) for i in ids))
    assert all(answers)
    assert calls.count("DescribeInstances") == 1


async def test_batches_are_capped_and_unknown_ids_do_not_spoil_them(env: AwsEnv, calls: Calls) -> None:
    ids = launch(env, 25)
    lookup = InstanceLookup(env.clients, max_batch=10)
    calls.reset()
    unknown = "i-0000000000000dead"
    found = await lookup.get_many(BY_ID, [*ids, unknown])
    assert found[unknown] is None
    assert all(found[i] is not None for i in ids)
    assert calls.count("DescribeInstances") == 3
    [(_, params)] = [p for p in calls.params if p[0] == "DescribeInstances"][:1]
    assert params["Filters"][0]["Name"] == "instance-id"  # a filter, so unknown ids are no error


async def test_answers_are_cached_for_the_ttl(env: AwsEnv, calls: Calls) -> None:
    [iid] = launch(env, 1)
    clock = Clock()
    metadata = env.provider(lookup=InstanceLookup(env.clients, ttl=10, clock=clock)).instance_metadata
    assert metadata is not None
    calls.reset()
    await metadata.instance_exists(node(iid))
    await metadata.instance_shutdown(node(iid))
    await metadata.instance_metadata(node(iid))
    assert calls.count("DescribeInstances") == 1
    clock.now += 11
    await metadata.instance_exists(node(iid))
    assert calls.count("DescribeInstances") == 2


async def test_a_cancelled_leader_hands_over(env: AwsEnv, calls: Calls) -> None:
    ids = launch(env, 2)
    gate = asyncio.Event()

    async def slow_sleep(_: float) -> None:
        await gate.wait()

    lookup = InstanceLookup(env.clients, sleep=slow_sleep)
    leader = asyncio.create_task(lookup.get(BY_ID, ids[0]))
    await asyncio.sleep(0)
    follower = asyncio.create_task(lookup.get(BY_ID, ids[1]))
    await asyncio.sleep(0)
    leader.cancel()
    await asyncio.sleep(0)
    gate.set()
    found = await asyncio.wait_for(follower, 10)
    assert found is not None and found["InstanceId"] == ids[1]


async def test_metadata_and_states(env: AwsEnv) -> None:
    [iid] = launch(env, 1, "us-east-1b")
    metadata = env.provider().instance_metadata
    assert metadata is not None
    n = node(iid, "us-east-1b")
    details = await metadata.instance_metadata(n)
    assert details.provider_id == f"aws:///us-east-1b/{iid}"
    assert details.instance_type == "m5.large"
    assert (details.zone, details.region) == ("us-east-1b", "us-east-1")
    assert details.additional_labels.get("topology.k8s.aws/zone-id")
    assert [a.type for a in details.addresses][:1] == ["InternalIP"]
    assert {"InternalDNS", "Hostname"} <= {a.type for a in details.addresses}
    assert await metadata.instance_exists(NodeRef(name="x", provider_id=f"aws:////{iid}"))

    env.ec2.stop_instances(InstanceIds=[iid])
    assert await metadata.instance_shutdown(n)
    assert await metadata.instance_exists(n)
    env.ec2.terminate_instances(InstanceIds=[iid])
    assert not await metadata.instance_exists(n)
    with pytest.raises(NotFound):
        await metadata.instance_metadata(n)


async def test_a_node_without_provider_id_is_found_by_its_private_dns_name(env: AwsEnv) -> None:
    [iid] = launch(env, 1)
    dns = env.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["PrivateDnsName"]
    metadata = env.provider().instance_metadata
    assert metadata is not None
    details = await metadata.instance_metadata(NodeRef(name=dns))
    assert details.provider_id.endswith(f"/{iid}")
    assert not await metadata.instance_exists(NodeRef(name="ip-10-9-9-9.ec2.internal"))


async def test_zones(env: AwsEnv, calls: Calls) -> None:
    zones = env.provider().zones
    assert zones is not None
    listed = await zones.list_zones()
    assert {"us-east-1a", "us-east-1b"} <= {z.failure_domain for z in listed}
    assert {z.region for z in listed} == {"us-east-1"}
    await zones.list_zones()
    assert calls.count("DescribeAvailabilityZones") == 1


async def test_a_sync_of_160_nodes_costs_at_most_one_call_per_150_nodes(env: AwsEnv, calls: Calls) -> None:
    # The default VPC's subnets are large enough for 160 (the cluster's /24s are not).
    reply = env.ec2.run_instances(ImageId=env.image, MinCount=160, MaxCount=160, InstanceType="m5.large")
    ids = [i["InstanceId"] for i in reply["Instances"]]
    metadata = env.provider(lookup=InstanceLookup(env.clients)).instance_metadata
    assert metadata is not None
    calls.reset()
    details = await asyncio.gather(*(metadata.instance_metadata(node(i)) for i in ids))
    assert {d.provider_id.rsplit("/", 1)[1] for d in details} == set(ids)
    assert calls.count("DescribeInstances") <= 160 // 150 + 1
    calls.reset()
    assert all(await asyncio.gather(*(metadata.instance_exists(node(i)) for i in ids)))
    assert calls.count("DescribeInstances") == 0  # within the cache's few seconds
