"""Instances, InstanceMetadata and Zones: the contract every cloud honours."""

from __future__ import annotations

import contextlib

import pytest

from providers.capabilities import Instances
from providers.errors import CloudError, InvalidConfiguration, NotFound
from providers.model import InstanceState, NodeRef
from providers.tags import OWNER_KIND_TAG, OWNER_NAME_TAG, cluster_tag_key
from tests.unit.providers.contract.harness import ContractCloud, machine_owner, node_for


def _instances(cloud: ContractCloud) -> Instances:
    provider = cloud.provider
    return provider.require(provider.instances, "instances")


async def test_create_is_idempotent_by_name(cloud: ContractCloud) -> None:
    instances = _instances(cloud)
    cluster = cloud.config.cluster_id
    spec = cloud.helpers.instance_spec("machine-a", machine_owner("machine-a"))
    first = await instances.create_instance(cluster, spec)
    second = await instances.create_instance(cluster, spec)
    assert second.id == first.id
    assert [i.id for i in await instances.list_instances(cluster)] == [first.id]


async def test_created_instance_is_tagged_and_addressed(cloud: ContractCloud) -> None:
    instances = _instances(cloud)
    cluster = cloud.config.cluster_id
    owner = machine_owner("machine-b")
    instance = await instances.create_instance(cluster, cloud.helpers.instance_spec("machine-b", owner))
    assert instance.tags[cluster_tag_key(cluster)] == "owned"
    assert instance.tags[OWNER_KIND_TAG] == "Machine"
    assert instance.tags[OWNER_NAME_TAG] == owner.key
    assert instance.owner == owner
    assert instance.name == "machine-b"
    assert instance.state in (InstanceState.PENDING, InstanceState.RUNNING)
    assert instance.provider_id.startswith(f"{cloud.provider.name}://")
    assert instance.provider_id.endswith(f"/{instance.id}")
    assert {a.type for a in instance.addresses} >= {"InternalIP"}
    fetched = await instances.get_instance(cluster, instance.id)
    assert fetched.id == instance.id
    assert fetched.provider_id == instance.provider_id


async def test_list_only_the_clusters_live_instances(cloud: ContractCloud) -> None:
    instances = _instances(cloud)
    cluster = cloud.config.cluster_id
    ours = await instances.create_instance(
        cluster, cloud.helpers.instance_spec("ours", machine_owner("ours"))
    )
    theirs = await instances.create_instance(
        "another-cluster", cloud.helpers.instance_spec("theirs", machine_owner("theirs"))
    )
    gone = await instances.create_instance(
        cluster, cloud.helpers.instance_spec("gone", machine_owner("gone"))
    )
    await instances.delete_instance(cluster, gone.id)
    assert [i.id for i in await instances.list_instances(cluster)] == [ours.id]
    assert [i.id for i in await instances.list_instances("another-cluster")] == [theirs.id]
    with pytest.raises(NotFound):
        await instances.get_instance(cluster, theirs.id)


async def test_delete_is_idempotent_and_leaves_other_clusters_alone(cloud: ContractCloud) -> None:
    instances = _instances(cloud)
    cluster = cloud.config.cluster_id
    instance = await instances.create_instance(cluster, cloud.helpers.instance_spec("d", machine_owner("d")))
    theirs = await instances.create_instance(
        "another-cluster", cloud.helpers.instance_spec("t", machine_owner("t"))
    )
    await instances.delete_instance(cluster, instance.id)
    await instances.delete_instance(cluster, instance.id)
    await instances.delete_instance(cluster, cloud.helpers.unknown_instance_id())
    try:
        after = await instances.get_instance(cluster, instance.id)
    except NotFound:
        pass
    else:
        assert after.state in (InstanceState.SHUTTING_DOWN, InstanceState.TERMINATED)
    with contextlib.suppress(CloudError):
        await instances.delete_instance(cluster, theirs.id)
    assert [i.id for i in await instances.list_instances("another-cluster")] == [theirs.id]


async def test_a_name_can_be_reused_after_termination(cloud: ContractCloud) -> None:
    instances = _instances(cloud)
    cluster = cloud.config.cluster_id
    spec = cloud.helpers.instance_spec("again", machine_owner("again"))
    first = await instances.create_instance(cluster, spec)
    await instances.delete_instance(cluster, first.id)
    second = await instances.create_instance(cluster, spec)
    assert second.id != first.id


async def test_unknown_instance_is_not_found(cloud: ContractCloud) -> None:
    with pytest.raises(NotFound):
        await _instances(cloud).get_instance(cloud.config.cluster_id, cloud.helpers.unknown_instance_id())


async def test_metadata_of_a_running_instance(cloud: ContractCloud) -> None:
    provider = cloud.provider
    metadata = provider.require(provider.instance_metadata, "instance metadata")
    zones = provider.require(provider.zones, "zones")
    instance = await _instances(cloud).create_instance(
        cloud.config.cluster_id, cloud.helpers.instance_spec("meta", machine_owner("meta"))
    )
    node = node_for(instance)
    assert await metadata.instance_exists(node)
    assert not await metadata.instance_shutdown(node)
    details = await metadata.instance_metadata(node)
    assert details.provider_id == instance.provider_id
    assert details.instance_type == instance.instance_type
    assert details.zone == instance.zone
    assert details.region == instance.region
    assert any(a.type == "InternalIP" for a in details.addresses)
    assert details.zone in {z.failure_domain for z in await zones.list_zones()}
    zone = await zones.get_zone_by_provider_id(instance.provider_id)
    assert (zone.failure_domain, zone.region) == (instance.zone, instance.region)


async def test_stopped_is_shutdown_and_terminated_does_not_exist(cloud: ContractCloud) -> None:
    provider = cloud.provider
    metadata = provider.require(provider.instance_metadata, "instance metadata")
    instances = _instances(cloud)
    cluster = cloud.config.cluster_id
    instance = await instances.create_instance(cluster, cloud.helpers.instance_spec("s", machine_owner("s")))
    node = node_for(instance)
    await cloud.helpers.stop_instance(instance.id)
    assert await metadata.instance_exists(node)
    assert await metadata.instance_shutdown(node)
    await instances.delete_instance(cluster, instance.id)
    assert not await metadata.instance_exists(node)
    assert not await metadata.instance_shutdown(node)
    with pytest.raises(NotFound):
        await metadata.instance_metadata(node)


async def test_unknown_provider_id(cloud: ContractCloud) -> None:
    provider = cloud.provider
    metadata = provider.require(provider.instance_metadata, "instance metadata")
    zones = provider.require(provider.zones, "zones")
    node = NodeRef(name="nobody", provider_id=cloud.helpers.unknown_provider_id())
    assert not await metadata.instance_exists(node)
    assert not await metadata.instance_shutdown(node)
    with pytest.raises(NotFound):
        await metadata.instance_metadata(node)
    with pytest.raises(NotFound):
        await zones.get_zone_by_provider_id(node.provider_id)


async def test_foreign_provider_id_is_an_error_not_a_missing_instance(cloud: ContractCloud) -> None:
    """Answering "does not exist" for a providerID of another cloud would make the node
    lifecycle controller delete a healthy Node."""
    metadata = cloud.provider.require(cloud.provider.instance_metadata, "instance metadata")
    node = NodeRef(name="elsewhere", provider_id="othercloud:///zone-x/vm-1")
    with pytest.raises(InvalidConfiguration):
        await metadata.instance_exists(node)


async def test_an_unknown_zone_is_invalid_configuration(cloud: ContractCloud) -> None:
    spec = cloud.helpers.instance_spec("nowhere", machine_owner("nowhere"), zone="atlantis-9z")
    with pytest.raises(InvalidConfiguration):
        await _instances(cloud).create_instance(cloud.config.cluster_id, spec)
    assert await _instances(cloud).list_instances(cloud.config.cluster_id) == []
