from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from providers.capabilities import CloudProvider
from providers.config import CloudConfig
from providers.errors import InvalidConfiguration, NotFound, NotSupported, QuotaExceeded
from providers.local import cloud_of, create, open_cloud, provider_for, split_provider_id
from providers.local.instances import LocalInstances
from providers.local.metadata import LocalInstanceMetadata
from providers.model import InstanceSpec, InstanceState, NodeAddress, NodeRef, Owner
from providers.registry import create as create_by_name
from tests.unit.providers.local.conftest import FakeClock, MakeCloud

OWNER = Owner(kind="Machine", name="m", namespace="kube-system", uid="u-1")


def spec(name: str, **kw: object) -> InstanceSpec:
    return InstanceSpec(name=name, owner=OWNER, instance_type="local.small", image="img", **kw)  # type: ignore[arg-type]


def test_registry_builds_every_capability() -> None:
    provider = create_by_name("local", CloudConfig(cluster_id="c"))
    assert provider.name == "local"
    assert provider.capabilities == {
        "instances",
        "instance_metadata",
        "load_balancers",
        "routes",
        "zones",
        "inventory",
    }
    assert create(CloudConfig(cluster_id="c")).capabilities == provider.capabilities


async def test_addresses_and_provider_id_look_like_ec2(make_cloud: MakeCloud) -> None:
    instances = LocalInstances(make_cloud())
    first = await instances.create_instance("test", spec("a"))
    second = await instances.create_instance("test", spec("b", zone="local-1b"))
    assert first.addresses == (
        NodeAddress("InternalIP", "10.0.0.4"),
        NodeAddress("InternalDNS", "ip-10-0-0-4.local-1.compute.internal"),
        NodeAddress("Hostname", "ip-10-0-0-4.local-1.compute.internal"),
    )
    assert second.addresses[0] == NodeAddress("InternalIP", "10.0.0.5")
    assert first.provider_id == f"local:///local-1a/{first.id}"
    assert second.provider_id == f"local:///local-1b/{second.id}"
    assert split_provider_id(second.provider_id) == ("local-1b", second.id)
    assert split_provider_id(f"local:////{second.id}") == ("", second.id)
    assert (first.zone, first.region, first.instance_type) == ("local-1a", "local-1", "local.small")
    assert first.tags["Name"] == "a"


async def test_public_ips_and_configured_tags(make_cloud: MakeCloud) -> None:
    instances = LocalInstances(make_cloud(publicIPs=True, tags={"team": "infra"}))
    instance = await instances.create_instance("test", spec("pub", tags={"extra": "1"}))
    assert NodeAddress("ExternalIP", "198.51.100.4") in instance.addresses
    assert instance.tags["team"] == "infra"
    assert instance.tags["extra"] == "1"


async def test_user_tags_cannot_override_ownership(make_cloud: MakeCloud) -> None:
    instances = LocalInstances(make_cloud())
    instance = await instances.create_instance(
        "test",
        spec("sneaky", tags={"kubernetes.io/cluster/test": "shared", "pinnace.dev/owner-kind": "Node"}),
    )
    assert instance.tags["kubernetes.io/cluster/test"] == "owned"
    assert instance.owner == OWNER


async def test_an_address_is_reused_only_after_termination(make_cloud: MakeCloud) -> None:
    instances = LocalInstances(make_cloud(instanceCIDR="10.9.0.0/29"))  # 8 addresses, 4 usable
    made = [await instances.create_instance("test", spec(f"n{i}")) for i in range(3)]
    with pytest.raises(QuotaExceeded):
        await instances.create_instance("test", spec("n3"))
    await instances.delete_instance("test", made[1].id)
    again = await instances.create_instance("test", spec("n3"))
    assert again.addresses[0].address == made[1].addresses[0].address


async def test_pending_until_boot_is_over(make_cloud: MakeCloud, clock: FakeClock) -> None:
    cloud = make_cloud(bootSeconds=30)
    instances = LocalInstances(cloud)
    instance = await instances.create_instance("test", spec("slow"))
    assert instance.state == InstanceState.PENDING
    clock.advance(29)
    assert (await instances.get_instance("test", instance.id)).state == InstanceState.PENDING
    clock.advance(1)
    assert (await instances.get_instance("test", instance.id)).state == InstanceState.RUNNING
    await cloud.stop_instance(instance.id)
    assert (await instances.get_instance("test", instance.id)).state == InstanceState.STOPPED
    await cloud.start_instance(instance.id)
    assert (await instances.get_instance("test", instance.id)).state == InstanceState.PENDING
    await cloud.mark_running(instance.id)
    assert (await instances.get_instance("test", instance.id)).state == InstanceState.RUNNING


async def test_terminated_instances_vanish_after_the_retention(
    make_cloud: MakeCloud, clock: FakeClock
) -> None:
    cloud = make_cloud(terminatedRetentionSeconds=60)
    instances = LocalInstances(cloud)
    instance = await instances.create_instance("test", spec("t"))
    await cloud.terminate_instance(instance.id)
    assert (await instances.get_instance("test", instance.id)).state == InstanceState.TERMINATED
    assert await instances.list_instances("test") == []
    clock.advance(60)
    with pytest.raises(NotFound):
        await instances.get_instance("test", instance.id)


async def test_unknown_zone_and_missing_name_are_refused(make_cloud: MakeCloud) -> None:
    instances = LocalInstances(make_cloud())
    with pytest.raises(InvalidConfiguration, match="zone 'mars-1a' does not exist"):
        await instances.create_instance("test", spec("z", zone="mars-1a"))
    with pytest.raises(InvalidConfiguration):
        await instances.create_instance("test", spec(""))


async def test_user_data_is_kept_for_the_node_agent(make_cloud: MakeCloud) -> None:
    cloud = make_cloud()
    payload = b"#cloud-config\n" + bytes(range(256))
    instance = await LocalInstances(cloud).create_instance("test", spec("ud", user_data=payload))
    assert await cloud.user_data(instance.id) == payload
    with pytest.raises(NotFound):
        await cloud.user_data("i-nope")


async def test_concurrent_creates_of_one_name_launch_one_instance(make_cloud: MakeCloud) -> None:
    instances = LocalInstances(make_cloud())
    same = await asyncio.gather(*(instances.create_instance("test", spec("one")) for _ in range(10)))
    assert len({i.id for i in same}) == 1
    many = await asyncio.gather(*(instances.create_instance("test", spec(f"m{i}")) for i in range(20)))
    assert len({i.addresses[0].address for i in [*many, same[0]]}) == 21


async def test_metadata_finds_a_node_by_name_before_it_has_a_provider_id(make_cloud: MakeCloud) -> None:
    cloud = make_cloud()
    instance = await LocalInstances(cloud).create_instance("test", spec("by-name"))
    metadata = LocalInstanceMetadata(cloud)
    for name in ("by-name", instance.id, "ip-10-0-0-4.local-1.compute.internal"):
        details = await metadata.instance_metadata(NodeRef(name=name))
        assert details.provider_id == instance.provider_id
    assert not await metadata.instance_exists(NodeRef(name="nobody"))
    with pytest.raises(InvalidConfiguration):
        await metadata.instance_exists(NodeRef(name="x", provider_id="local:///a/b/c"))


async def test_two_clouds_on_one_state_file_are_one_cloud(tmp_path: Path) -> None:
    path = tmp_path / "cloud.db"
    config = CloudConfig(
        cluster_id="shared", provider_options={"local": {"stateFile": str(path), "qps": 1000}}
    )
    one, two = open_cloud(config), open_cloud(config)
    try:
        made = (
            await provider_for(one)
            .require(provider_for(one).instances, "instances")
            .create_instance("shared", spec("seen"))
        )
        instances_two = LocalInstances(two)
        assert [i.id for i in await instances_two.list_instances("shared")] == [made.id]
        await two.terminate_instance(made.id)
        assert await LocalInstances(one).list_instances("shared") == []
    finally:
        one.close()
        two.close()


async def test_another_process_sees_the_same_cloud(tmp_path: Path) -> None:
    """What `pinnace server --cloud-provider local` and a test (or the node operator) rely on."""
    path = tmp_path / "cloud.db"
    config = CloudConfig(cluster_id="shared", provider_options={"local": {"stateFile": str(path)}})
    cloud = open_cloud(config)
    try:
        made = await LocalInstances(cloud).create_instance("shared", spec("from-parent"))
        script = (
            "import asyncio, sys\n"
            "from providers.config import CloudConfig\n"
            "from providers.local import open_cloud\n"
            "from providers.local.instances import LocalInstances\n"
            "c = open_cloud(CloudConfig(cluster_id='shared', provider_options={'local': {'stateFile': sys.argv[1]}}))\n"
            "ids = [i.id for i in asyncio.run(LocalInstances(c).list_instances('shared'))]\n"
            "asyncio.run(c.stop_instance(ids[0]))\n"
            "print(','.join(ids))\n"
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            str(path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 0, err.decode()
        assert out.decode().strip() == made.id
        assert (await LocalInstances(cloud).get_instance("shared", made.id)).state == InstanceState.STOPPED
    finally:
        cloud.close()


def test_cloud_of_reaches_the_console_behind_a_registry_made_provider() -> None:
    provider = create_by_name("local", CloudConfig(cluster_id="c"))
    cloud = cloud_of(provider)
    assert cloud.settings.region == "local-1"
    cloud.close()
    with pytest.raises(NotSupported):
        cloud_of(CloudProvider(name="none"))
